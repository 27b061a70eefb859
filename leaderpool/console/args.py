"""Command-line plumbing shared by ``leaderpool-worker``, ``leaderpool-cli`` and the chaos runner:
every flag may come from an environment variable, and every bad input ends in one line on stderr
and exit 2.

Flags are parsed as text; :class:`Options` turns each one into a typed value and, when that
fails, raises :class:`UsageError` naming where the value came from (``--ttl`` or
``LEADERPOOL_TTL``), so a typo in a deployment's environment is as easy to find as one on the
command line.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

from leaderpool.util.printable import printable

T = TypeVar("T")

EXIT_USAGE = 2
EXIT_FAILURE = 1

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class UsageError(Exception):
    """A bad argument: ``str(error)`` is the whole line to print, naming the argument."""

    def __init__(self, argument: str | None, problem: str) -> None:
        super().__init__(f"argument {argument}: {problem}" if argument else problem)
        self.argument = argument


class Failure(Exception):
    """A command could not do what was asked: ``str(error)`` is the line to print; exit 1."""


class _Formatter(argparse.HelpFormatter):
    """argparse's formatter, without importing :mod:`shutil` (and its compression modules) for
    the terminal's width: argparse makes one per argument added, so every command paid for it."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, _columns() - 2 if width is None else width)


def _columns() -> int:
    """The terminal's width as :func:`shutil.get_terminal_size` finds it: ``$COLUMNS``, else stdout's, else 80."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 80
    except (AttributeError, ValueError, OSError):
        return 80


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (no usage dump) and exit 2; ``hint``, when
    set, follows the error in parentheses."""

    hint: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} ({self.hint})" if self.hint else message)


def fail(prog: str, message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``prog: error: message`` (one line) on stderr and exit with ``code``."""
    say_error(prog, message)
    raise SystemExit(code)


def say_error(prog: str, message: str) -> None:
    """Print ``prog: error: message`` on stderr, as one line whatever the message held (Redis data
    too: control characters escaped)."""
    line = printable(" ".join(str(message).split()))
    print(f"{prog}: error: {line}", file=sys.stderr, flush=True)


class Options:
    """Typed access to parsed flags, falling back to environment variables.

    ``opts.get("ttl", "--ttl", "LEADERPOOL_TTL", seconds, default=5.0)`` returns the flag's
    value if given, else the variable's, else the default, converted by ``seconds``; a
    conversion error becomes a :class:`UsageError` naming the flag or the variable.
    """

    def __init__(self, namespace: argparse.Namespace, environ: Mapping[str, str] | None = None) -> None:
        self.ns = namespace
        self.env = os.environ if environ is None else environ

    def source(self, dest: str, flag: str, env: str | None) -> tuple[str, Any] | None:
        """(where it came from, raw value), or None when neither flag nor variable is set."""
        value = getattr(self.ns, dest, None)
        if value is not None and value != []:
            return flag, value
        if env is not None and env in self.env:
            return env, self.env[env]
        return None

    def get(self, dest: str, flag: str, env: str | None, convert: Callable[[Any], T], *, default: T) -> T:
        found = self.source(dest, flag, env)
        if found is None:
            return default
        where, raw = found
        try:
            return convert(raw)
        except ValueError as exc:
            raise UsageError(where, str(exc)) from None

    def flag(self, dest: str, flag: str, env: str | None) -> bool:
        """A boolean switch: the flag, else the variable (1/true/yes/on or 0/false/no/off)."""
        if getattr(self.ns, dest, False):
            return True
        if env is None or env not in self.env:
            return False
        raw = self.env[env].strip().lower()
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise UsageError(env, f"must be one of 1/true/yes/on or 0/false/no/off, got {self.env[env]!r}")


# ---- converters: raise ValueError with a message that reads after "argument --x: " ----


def seconds(raw: object) -> float:
    try:
        value = float(str(raw))
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"must be a number of seconds > 0, got {raw!r}")
    return value


def integer(raw: object) -> int:
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ValueError(f"must be an integer, got {raw!r}") from None


def positive_integer(raw: object) -> int:
    value = integer(raw)
    if value <= 0:
        raise ValueError(f"must be a positive integer, got {raw!r}")
    return value


def choice(*allowed: str) -> Callable[[object], str]:
    def convert(raw: object) -> str:
        value = str(raw).strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {raw!r}")
        return value

    return convert


def key_values(raw: object) -> dict[str, str]:
    """``KEY=VALUE`` items: a list (repeated flag) or one comma-separated string (env)."""
    items: Sequence[str] = raw if isinstance(raw, list) else [p for p in str(raw).split(",") if p.strip()]
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"expected KEY=VALUE, got {item!r}")
        out[key] = value.strip()
    return out


def redis_url_arg(raw: object) -> str:
    """A Redis URL (redis://, rediss://, unix://), checked by the library's own rule (which
    does not import redis-py). A ``ConfigError`` is a ``ValueError``: argparse reports it."""
    from leaderpool.backend.urls import validate_redis_url

    return validate_redis_url(str(raw).strip())


def name_arg(kind: str) -> Callable[[object], str]:
    """A converter for a name that becomes part of a Redis key (a pool, a member id, the prefix,
    a unique name, a lock resource): the library's one rule for them."""

    def convert(raw: object) -> str:
        from leaderpool.util.naming import validate_name

        try:
            return validate_name(kind, str(raw))
        except ValueError as exc:  # ConfigError, without importing leaderpool.errors (and redis-py)
            raise ValueError(str(exc)) from None

    return convert


def checked_arg(where: str, convert: Callable[[object], T], value: object) -> T:
    """``convert(value)``, for an argument :class:`Options` does not read (a positional one); a
    bad value is a :class:`UsageError` naming ``where``."""
    try:
        return convert(value)
    except ValueError as exc:
        raise UsageError(where, str(exc)) from None


def names(raw: object) -> list[str]:
    """Names: a list (repeated flag) or one comma-separated string (env)."""
    items = raw if isinstance(raw, list) else str(raw).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def tcp_port(raw: object) -> int:
    value = integer(raw)
    if not 0 <= value <= 65535:
        raise ValueError(f"must be a TCP port from 0 to 65535, got {raw!r}")
    return value


class VersionAction(argparse.Action):
    """``--version``: prints ``PROG VERSION`` and exits 0. The version is read from the package's
    metadata only when asked, so every other run skips that lookup."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> NoReturn:
        from leaderpool.version import version

        print(f"{parser.prog} {version()}", flush=True)
        raise SystemExit(0)


def count(raw: object) -> int:
    value = integer(raw)
    if value < 0:
        raise ValueError(f"must be an integer >= 0, got {raw!r}")
    return value
