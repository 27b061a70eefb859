"""The test kit: leaderpool's pytest plugin (:mod:`leaderpool.testkit.pytest_plugin`) and what it
is made of. An application's tests use its fixtures (``leaderpool_pool``, ``leaderpool_redis``,
``leaderpool_clock``); see docs/guide/testing.md."""
