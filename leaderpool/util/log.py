"""How leaderpool logs: structlog events that reach the standard :mod:`logging` module.

A library stays silent until the application sets logging up. Every leaderpool event (``elected``,
``revoked``, ...) goes to the standard logger of the component's name (``leaderpool``,
``leaderpool.backend.watcher``, ``leaderpool.worker``), under which a ``NullHandler`` sits: nothing is
printed until the application configures ``logging`` (``logging.basicConfig()``, its own
handlers and levels), and then the events arrive there as ``elected pool='jobs' member='a'
term=3`` with the event dict attached to the record as ``leaderpool_event``.

An application that configures structlog itself (as ``leaderpool-worker`` and ``leaderpool-cli``
do) gets leaderpool's events through its own structlog configuration instead.

Loggers are resolved when they log, not when made: an application may set logging up after
leaderpool's modules were imported and its elections created (a logger bound to structlog is
rebuilt when structlog's configuration changes).
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, MutableMapping
from typing import Any

ROOT = "leaderpool"

logging.getLogger(ROOT).addHandler(logging.NullHandler())


def _render(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """The event as a stdlib record: ``event key=value ...``, exception info passed through."""
    fields = dict(event_dict)
    exc_info = fields.pop("exc_info", None)
    event = fields.pop("event", "")
    text = " ".join([str(event), *(f"{key}={value!r}" for key, value in fields.items())])
    kwargs: dict[str, Any] = {"msg": text, "extra": {"leaderpool_event": {"event": event, **fields}}}
    if exc_info:
        kwargs["exc_info"] = exc_info
    return kwargs


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class Logger:
    """A bound leaderpool logger: ``log.bind(pool=...)``, ``log.info("elected", term=3)``."""

    __slots__ = ("_configured", "_context", "_name")

    def __init__(self, name: str, context: dict[str, Any] | None = None) -> None:
        self._name = name
        self._context = context or {}
        self._configured: tuple[tuple[int, ...], Any] | None = None
        """The structlog logger bound to our context, and the configuration it was built from."""

    def bind(self, **values: Any) -> Logger:
        return Logger(self._name, {**self._context, **values})

    def _emit(self, method: str, level: int, event: str, fields: dict[str, Any]) -> None:
        import structlog  # on the first event, not at import: a one-shot CLI command logs nothing

        if structlog.is_configured():
            target = self._structlog_target(structlog.get_config())
            getattr(target, method)(event, **fields)
            return
        stdlib = logging.getLogger(self._name)
        if not stdlib.isEnabledFor(level):
            return
        target = structlog.wrap_logger(
            stdlib, processors=[_render], wrapper_class=structlog.stdlib.BoundLogger, context_class=dict
        )
        getattr(target, method)(event, **self._context, **fields)

    def _structlog_target(self, config: dict[str, Any]) -> Any:
        """The application's structlog logger bound to our context, built once per configuration
        (binding on every event cost a leader a fifth of a millisecond on its way to acting)."""
        key = tuple(id(config[name]) for name in ("processors", "wrapper_class", "logger_factory", "context_class"))
        cached = self._configured
        if cached is None or cached[0] != key:
            import structlog

            cached = self._configured = (key, structlog.get_logger(self._name).bind(**self._context))
        return cached[1]

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", logging.ERROR, event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """An error with the exception being handled (or ``exc_info=`` given) attached."""
        fields.setdefault("exc_info", True)
        self._emit("error", logging.ERROR, event, fields)

    def log(self, level: str, event: str, **fields: Any) -> None:
        self._emit(level, _LEVELS[level], event, fields)

    def soon(self, level: str, event: str, *, turns: int = 1, **fields: Any) -> None:
        """Log ``turns`` turns of the running event loop from now, after what is due in them (the
        application's callback, a hand-over's script): for a line on the way to acting, where
        rendering and writing it cost a loaded machine a tenth of a millisecond or more. At once
        when no loop runs here."""
        asyncio = sys.modules.get("asyncio")  # not loaded: no loop can be running
        loop = asyncio._get_running_loop() if asyncio is not None else None
        if loop is None:
            self.log(level, event, **fields)
            return
        _after_turns(loop, turns, functools.partial(self.log, level, event, **fields))


def _after_turns(loop: Any, turns: int, call: Callable[[], None]) -> None:
    if turns <= 1:
        loop.call_soon(call)
    else:
        loop.call_soon(_after_turns, loop, turns - 1, call)


def get_logger(name: str = ROOT, **context: Any) -> Logger:
    """The logger of one leaderpool component, with ``context`` bound to every event."""
    return Logger(name, context)
