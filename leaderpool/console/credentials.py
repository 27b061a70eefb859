"""Where the Redis URL and its password come from, for ``leaderpool-worker`` and ``leaderpool-cli``,
so credentials need not be on a command line (where the process list shows them)::

    --redis URL                  LEADERPOOL_REDIS_URL             the URL itself
    --redis-url-file PATH        LEADERPOOL_REDIS_URL_FILE        the URL, read from a file (a secret)
    --redis-password-file PATH   LEADERPOOL_REDIS_PASSWORD_FILE   the password, read from a file
                                 LEADERPOOL_REDIS_PASSWORD        the password

The ACL user, if any, stays in the URL (``redis://USER@HOST:PORT/DB``).

These variables (:data:`CREDENTIAL_VARIABLES`) are withheld from the commands leaderpool runs
(``--exec``, ``lock -- COMMAND``) unless ``--pass-env NAME`` names them (:func:`pass_env`).

A password given apart from the URL goes into the URL in memory only; every message shows the
URL without it (:func:`leaderpool.backend.urls.redact`).
"""

from __future__ import annotations

import argparse
from urllib.parse import quote, urlsplit, urlunsplit

from leaderpool.console.args import Options, UsageError, redis_url_arg

CREDENTIAL_VARIABLES = (
    "LEADERPOOL_REDIS_URL",
    "LEADERPOOL_REDIS_URL_FILE",
    "LEADERPOOL_REDIS_PASSWORD",
    "LEADERPOOL_REDIS_PASSWORD_FILE",
)
"""What a command started by leaderpool does not inherit unless asked: the URL (it may hold the
password) and the password, and the paths of the files holding them."""
PASS_ENV_HELP = (
    "let the command inherit this credential variable (repeatable; withheld by default: "
    + ", ".join(CREDENTIAL_VARIABLES)
    + ")"
)


def pass_env(raw: object) -> tuple[str, ...]:
    """``--pass-env`` values (repeated, or comma-separated in a variable): each must be one of
    :data:`CREDENTIAL_VARIABLES` (every other variable is inherited anyway)."""
    items = raw if isinstance(raw, list) else str(raw).split(",")
    chosen = [str(item).strip() for item in items if str(item).strip()]
    for name in chosen:
        if name not in CREDENTIAL_VARIABLES:
            raise ValueError(
                f"{name!r} is not withheld (only these are: {', '.join(CREDENTIAL_VARIABLES)}; "
                "every other variable is inherited)"
            )
    return tuple(dict.fromkeys(chosen))


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, default: object = None) -> None:
    """The flags besides ``--redis`` (``default``: argparse.SUPPRESS for a CLI subcommand)."""
    parser.add_argument(
        "--redis-url-file", metavar="PATH", default=default,
        help="read the Redis URL from this file (a mounted secret) [LEADERPOOL_REDIS_URL_FILE]",
    )  # fmt: skip
    parser.add_argument(
        "--redis-password-file", metavar="PATH", default=default,
        help="read the Redis password from this file; also LEADERPOOL_REDIS_PASSWORD [LEADERPOOL_REDIS_PASSWORD_FILE]",
    )  # fmt: skip


def _read(where: str, path: object) -> str:
    try:
        with open(str(path), encoding="utf-8") as f:
            text = f.read().strip()
    except OSError as exc:
        raise UsageError(where, f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(where, f"{path} is not UTF-8 text") from None
    if not text or "\n" in text:
        raise UsageError(where, f"{path} must hold one line, got {'nothing' if not text else 'several lines'}")
    return text


def redis_url(o: Options, default: str) -> str:
    """The URL from ``--redis`` or ``--redis-url-file`` (or their variables; a flag wins over
    any variable), with the user and password given apart from it; :class:`UsageError` naming
    the argument (never the secret) when something is wrong."""
    given = o.source("redis", "--redis", "LEADERPOOL_REDIS_URL")
    from_file = o.source("redis_url_file", "--redis-url-file", "LEADERPOOL_REDIS_URL_FILE")
    if given is not None and from_file is not None:
        given_flag, file_flag = given[0].startswith("--"), from_file[0].startswith("--")
        if given_flag == file_flag:
            raise UsageError(from_file[0], f"give the URL one way: {given[0]} or {from_file[0]}")
        if file_flag:  # a flag wins over a variable
            given = None
        else:
            from_file = None
    if from_file is not None:
        where, raw = from_file[0], _read(*from_file)
    elif given is not None:
        where, raw = given
    else:
        where, raw = "--redis", default
    try:
        url = redis_url_arg(raw)
    except ValueError as exc:
        raise UsageError(where, str(exc)) from None
    password = o.source("redis_password_file", "--redis-password-file", "LEADERPOOL_REDIS_PASSWORD_FILE")
    secret = _read(*password) if password is not None else o.env.get("LEADERPOOL_REDIS_PASSWORD")
    if secret is None:
        return url
    if not secret:
        raise UsageError("LEADERPOOL_REDIS_PASSWORD", "is empty")
    if urlsplit(url).password is not None:
        pw_where = password[0] if password is not None else "LEADERPOOL_REDIS_PASSWORD"
        raise UsageError(pw_where, f"the URL from {where} has a password already: give it one way")
    return with_password(url, secret)


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` for its user (``redis://USER@HOST``), or for the default user."""
    parts = urlsplit(url)
    secret = quote(password, safe="")
    if parts.scheme == "unix":  # (urlunsplit would drop the empty host: unix:/path)
        return f"{url}{'&' if parts.query else '?'}password={secret}"
    user, at, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user if at else ''}:{secret}@{host}"))
