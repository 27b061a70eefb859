"""The one script registry: every capability declares its Lua as a :class:`ScriptSet`, and each
set is registered once per client, here and nowhere else.

A capability's scripts live beside its store (the pool's in :mod:`leaderpool.backend.pool_scripts`
and :mod:`leaderpool.backend.lead_scripts`, the names' in :mod:`leaderpool.names.name_scripts`, the
jobs' in :mod:`leaderpool.jobs.job_scripts`...); its store asks ``TheirScripts.on(client)`` for
them. Each script opens with its contract (KEYS, ARGV, reply), then names its inputs; it is called
by EVALSHA, and redis-py reloads it on NOSCRIPT (for example after a Redis restart). Time always
comes from Redis (``TIME``, :data:`leaderpool.backend.lua_snippets.NOW`), never from a client.

    class LockScripts(ScriptSet):
        acquire = Lua("lock_acquire", LOCK_ACQUIRE)

    taken, value = await LockScripts.on(client).acquire.raw(keys, args)

No asyncio and no redis-py import: the CLI's one-shot commands register scripts on their own
small clients (:mod:`leaderpool.console.oneshot`, :mod:`leaderpool.cli.resp`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator, Sequence
from typing import Any, Protocol, TypeVar, overload
from weakref import WeakKeyDictionary

from leaderpool.backend.baddata import is_bad_data_reply, type_guard
from leaderpool.errors import BadPoolData

Args = Sequence[str | bytes | int]
"""A script's arguments."""


class ScriptHost(Protocol):
    """A client that registers scripts: ``register_script(source)`` returns a callable taking
    ``keys=`` and ``args=`` whose result is awaited (redis-py's asyncio client, or the CLI's
    one-shot adapter) or is the reply (redis-py's blocking client: :meth:`NamedScript.blocking`)."""

    def register_script(self, script: str) -> Any: ...


class NamedScript:
    """One registered script, called by EVALSHA (redis-py reloads it on NOSCRIPT). An error reply
    becomes :class:`~leaderpool.errors.ScriptError` naming the script (or, for ``NOPERM`` and the
    like, :class:`~leaderpool.errors.RedisAuthFailed`); connection failures pass through."""

    def __init__(self, client: ScriptHost, name: str, source: str, key_types: Sequence[str | None] = ()) -> None:
        self.name = name
        # key_types: checked before anything runs (hostile data: see leaderpool.backend.baddata)
        self._script = client.register_script(type_guard(key_types) + source if key_types else source)

    async def __call__(self, keys: Sequence[str], args: Args = ()) -> Any:
        return await self.translated(self._script(keys=keys, args=args))

    @property
    def sha(self) -> str:
        """The script's SHA1 (for EVALSHA in a batch: :mod:`leaderpool.backend.batching`)."""
        return str(self._script.sha)

    def raw(self, keys: Sequence[str], args: Args = ()) -> Awaitable[Any]:
        """The script called directly (loading it if Redis lost it), errors untranslated."""
        return self._script(keys=keys, args=args)  # type: ignore[no-any-return]

    def blocking(self, keys: Sequence[str], args: Args = ()) -> Any:
        """The script called on a blocking redis-py client: its reply, errors untranslated (the
        caller translates them with what it knows: the pool, the term, the resource)."""
        return self._script(keys=keys, args=args)

    async def queue(self, pipeline: Any, keys: Sequence[str], args: Args = ()) -> None:
        """Add this script to a redis-py pipeline (run it with :meth:`translated`)."""
        await self._script(keys=keys, args=args, client=pipeline)

    async def translated(self, call: Awaitable[Any]) -> Any:
        """Await ``call`` (this script, or a pipeline holding it), its errors translated."""
        try:
            return await call
        except Exception as exc:
            if is_bad_data_reply(exc):
                bad = BadPoolData(f"script {self.name} refused: {exc}: delete or repair that key")
                bad.problem = str(exc)
                raise bad from exc
            # imported on the error path: a one-shot CLI command runs scripts without redis-py
            from leaderpool.backend.redis_errors import COMMAND_REFUSED, translate

            if not isinstance(exc, COMMAND_REFUSED):
                raise
            translated = translate(exc, script=self.name)
            assert translated is not None  # an error reply to a script is always translated
            raise translated from exc


class Lua:
    """One script a :class:`ScriptSet` declares: its name (in errors and logs), its source, and
    the type each ``KEYS[i]`` must have if it exists (None: not checked; empty: no check at all).

    On the set's class it is this declaration; on a set registered on a client it is that
    client's :class:`NamedScript`."""

    def __init__(self, name: str, source: str, key_types: Sequence[str | None] = ()) -> None:
        self.name = name
        self.source = source
        self.key_types = tuple(key_types)
        self.attribute = name
        """The attribute it is declared as (set by Python when the class is made)."""

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.attribute = attribute

    @overload
    def __get__(self, instance: None, owner: type) -> Lua: ...

    @overload
    def __get__(self, instance: ScriptSet, owner: type) -> NamedScript: ...

    def __get__(self, instance: ScriptSet | None, owner: type) -> Lua | NamedScript:
        if instance is None:
            return self
        return instance.registered[self.attribute]


S = TypeVar("S", bound="ScriptSet")


class ScriptSet:
    """The scripts of one capability: a subclass declares each as a class attribute
    (``claim = Lua("claim", CLAIM, key_types)``); :meth:`on` gives them registered on a client."""

    def __init__(self, client: ScriptHost) -> None:
        """Register every declared script on ``client`` (no I/O: redis-py loads a script on its
        first call). Use :meth:`on`, which does it once per client."""
        self.registered = {
            lua.attribute: NamedScript(client, lua.name, lua.source, lua.key_types) for lua in self.declared()
        }

    @classmethod
    def declared(cls) -> Iterator[Lua]:
        """The scripts this set declares, in the order they are declared (a subclass's after its base's)."""
        seen: set[str] = set()
        for klass in reversed(cls.__mro__):
            for attribute, value in vars(klass).items():
                if isinstance(value, Lua) and attribute not in seen:
                    seen.add(attribute)
                    yield getattr(cls, attribute)  # the most derived declaration

    @classmethod
    def on(cls: type[S], client: ScriptHost) -> S:
        """This set registered on ``client``: made on first use, then the same one for as long as
        the client lives (two threads asking at once may both register it: harmless)."""
        sets = _registered.get(client)
        if sets is None:
            sets = _registered[client] = {}
        found = sets.get(cls)
        if found is None:
            found = sets[cls] = cls(client)
        assert isinstance(found, cls)
        return found


_registered: WeakKeyDictionary[ScriptHost, dict[type[ScriptSet], ScriptSet]] = WeakKeyDictionary()
"""Every client's registered sets: the one place where "registered once per client" is kept."""
