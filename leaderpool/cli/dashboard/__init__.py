"""``leaderpool-cli dashboard``: a live web page of every pool, on aiohttp.

:mod:`.command` (the command: flags, binding, signals), :mod:`.server` (the routes, the action
guard), :mod:`.event_hub` (one shared reader of the pools fanned out to every browser), and
``static/`` (the page, its script and style sheet: no build step, nothing from a CDN).
"""
