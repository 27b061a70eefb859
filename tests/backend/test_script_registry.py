"""The one script registry: every capability's scripts compile on a real redis-server, and each
set is registered once per client."""

from __future__ import annotations

import gc
import importlib
import pkgutil
import weakref
from collections.abc import Iterator
from typing import Any

import redis

import leaderpool
from leaderpool.backend.pool_scripts import PoolScripts
from leaderpool.backend.script_registry import Lua, NamedScript, ScriptSet
from leaderpool.names.name_scripts import NameScripts
from leaderpool.testing.redis_server import RedisServer


def every_script_set() -> list[type[ScriptSet]]:
    """Every ScriptSet under leaderpool (each module imported, but for the entry points' __main__)."""
    for found in pkgutil.walk_packages(leaderpool.__path__, "leaderpool."):
        if not found.name.endswith("__main__"):
            importlib.import_module(found.name)

    def below(cls: type[ScriptSet]) -> Iterator[type[ScriptSet]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from below(sub)

    return sorted(set(below(ScriptSet)), key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


class Recording:
    """A ScriptHost that registers on a real client and keeps each source it was given."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.sources: list[str] = []

    def register_script(self, script: str) -> Any:
        self.sources.append(script)
        return self.client.register_script(script)


class Host:
    def register_script(self, script: str) -> Any:
        return lambda keys, args: None


def test_every_script_of_every_set_loads_on_redis(redis_server: RedisServer) -> None:
    """SCRIPT LOAD compiles each script as registered (type guard, spliced snippets and all): a
    syntax error anywhere fails here, and Redis's digest is the one EVALSHA is called with."""
    sets = every_script_set()
    expected = {"PoolScripts", "NameScripts", "LockScripts", "FenceScripts", "StateScripts", "JobScripts"}
    expected |= {"ScheduleScripts", "GroupScripts", "QueueScripts"}
    assert expected <= {cls.__name__ for cls in sets}
    client = redis.Redis.from_url(redis_server.url)
    try:
        for cls in sets:
            host = Recording(client)
            registered = cls(host)
            declared = list(cls.declared())
            assert len(declared) == len(host.sources) > 0, cls.__name__
            for lua, source in zip(declared, host.sources, strict=True):
                script = getattr(registered, lua.attribute)
                assert isinstance(script, NamedScript)
                assert script.sha == client.script_load(source), f"{cls.__name__}.{lua.attribute}"
    finally:
        client.close()


def test_every_script_has_a_name_of_its_own() -> None:
    """A script's name is what errors and logs say: no two scripts share one."""
    names = [lua.name for cls in every_script_set() for lua in cls.declared()]
    assert sorted(set(names)) == sorted(names)


def test_a_set_is_registered_once_per_client_and_set() -> None:
    """The same client asks twice: the same set; another set or another client: another one."""
    a, b = Host(), Host()
    assert PoolScripts.on(a) is PoolScripts.on(a)
    assert PoolScripts.on(a) is not PoolScripts.on(b)
    assert NameScripts.on(a) is NameScripts.on(a)
    assert isinstance(NameScripts.on(a), NameScripts)
    assert NameScripts.on(a) is not PoolScripts.on(a)  # type: ignore[comparison-overlap]


def test_a_set_goes_with_its_client() -> None:
    """The registry holds its clients weakly: a client dropped takes its registered sets along."""
    client = Host()
    registered = weakref.ref(PoolScripts.on(client))
    del client
    gc.collect()
    assert registered() is None


def test_a_declaration_is_the_script_on_the_class_and_registered_on_an_instance() -> None:
    """``PoolScripts.glance`` is its declaration (name, source, key types); on a registered set, the
    client's script, named as declared."""
    declared = PoolScripts.glance
    assert isinstance(declared, Lua)
    assert ("glance", "glance") == (declared.name, declared.attribute)
    assert ("hash", "zset", "string", "string", "string", "zset") == declared.key_types
    script = PoolScripts.on(Host()).glance
    assert isinstance(script, NamedScript)
    assert "glance" == script.name
