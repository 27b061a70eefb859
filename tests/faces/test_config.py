"""Settings and names are validated at construction with a message naming what is wrong."""

from __future__ import annotations

import pytest

from leaderpool import ConfigError, Keyspace, MemberConfig
from leaderpool.backend.keys import fence_key, pool_from_key, pool_from_members_key
from leaderpool.backend.urls import validate_redis_url


class TestNames:
    @pytest.mark.parametrize("bad", ["", "has space", "a{b}", "x" * 129, "tab\there", "é", None, 5])
    def test_bad_pool_names_are_refused(self, bad: object) -> None:
        """A pool name must be non-empty, bounded, printable, without spaces or braces."""
        with pytest.raises(ConfigError, match="pool"):
            MemberConfig(pool=bad)  # type: ignore[arg-type]

    def test_bad_member_id_names_the_member(self) -> None:
        with pytest.raises(ConfigError, match="member id"):
            MemberConfig(pool="p", member_id="two words")

    def test_good_names_pass(self) -> None:
        """Dots, dashes, colons, slashes and pipes are fine."""
        assert MemberConfig(pool="jobs.eu-1:cleaner/v2", member_id="host-1|a").pool == "jobs.eu-1:cleaner/v2"


class TestTimings:
    def test_defaults_follow_the_ttl(self) -> None:
        """heartbeat = ttl/3 and renew deadline = 2/3 ttl unless given."""
        c = MemberConfig(pool="p", ttl_s=6)
        assert (6.0, 2.0, 4.0) == (c.ttl_s, c.heartbeat, c.renew_deadline)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"ttl_s": 0}, "ttl"),
            ({"ttl_s": -1}, "ttl"),
            ({"ttl_s": float("nan")}, "ttl"),
            ({"ttl_s": "5"}, "ttl"),
            ({"ttl_s": 2, "heartbeat_s": 2}, "heartbeat"),
            ({"ttl_s": 2, "heartbeat_s": 0.5, "renew_deadline_s": 3}, "renew deadline"),
            ({"ttl_s": 2, "heartbeat_s": 0.5, "renew_deadline_s": 0.4}, "renew deadline"),
            ({"priority": 1.5}, "priority"),
            ({"priority": True}, "priority"),
            ({"meta": [1]}, "meta"),
            ({"avoid_pools": ["bad pool"]}, "avoided pool"),
            ({"ranker": 3}, "ranker"),
        ],
    )
    def test_bad_timings_are_refused(self, kwargs: dict[str, object], match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            MemberConfig(pool="p", **kwargs)  # type: ignore[arg-type]


class TestKeys:
    def test_layout(self) -> None:
        """Every key of a pool carries the {pool} hash tag; the leader key is documented."""
        ks = Keyspace("jobs")
        assert "leaderpool:{jobs}:leader" == ks.leader
        assert "__keyspace@3__:leaderpool:{jobs}:leader" == ks.leader_channel(3)
        assert all("{jobs}" in k for k in (ks.term, ks.members, ks.leases, ks.resigned, ks.history, ks.events))
        assert "jobs" == pool_from_members_key(ks.members)
        assert pool_from_members_key("other:key") is None

    def test_every_lasting_pool_key_names_its_pool(self) -> None:
        """status discovers pools by any lasting key (issue 24): each maps back; calls' keys, names and locks do not."""
        from leaderpool.cli.status import pool_keys

        ks = Keyspace("jobs", "pfx")
        assert {"jobs"} == {pool_from_key(k, "pfx") for k in pool_keys(ks)}
        assert [None, None, None] == [
            pool_from_key(k, "pfx") for k in (ks.inbox("m"), "pfx:global:{names}:owners", "pfx:lock:{r}")
        ]

    def test_prefix_is_configurable(self) -> None:
        assert "acme:{jobs}:leader" == Keyspace("jobs", prefix="acme").leader

    def test_fence_key_shares_the_resource_slot(self) -> None:
        assert "{orders}:fence" == fence_key("orders")
        assert "app:{user1}:state:fence" == fence_key("app:{user1}:state")

    def test_fence_key_is_per_pool(self) -> None:
        """An election fences per pool: terms of different pools are unrelated counters."""
        assert "{orders}:fence:jobs" == fence_key("orders", "jobs")
        assert "app:{user1}:state:fence:jobs" == fence_key("app:{user1}:state", "jobs")

    def test_a_singleton_has_a_fence_of_its_own_in_its_pool(self) -> None:
        """Its terms count apart: braces (never in a name) keep it from any pool's fence."""
        assert "{orders}:fence:jobs:{shard-1}" == fence_key("orders", "jobs", "shard-1")
        assert "app:{user1}:state:fence:jobs:{s}" == fence_key("app:{user1}:state", "jobs", "s")
        assert fence_key("orders", "jobs:s") != fence_key("orders", "jobs", "s")  # a pool named "jobs:s"
        with pytest.raises(ValueError, match="needs its pool"):
            fence_key("orders", None, "s")
        with pytest.raises(ConfigError, match="singleton"):
            fence_key("orders", "jobs", "a{b}")


class TestMeta:
    def test_metadata_that_is_not_json_is_refused_naming_the_field(self) -> None:
        """Caught at construction, not as a TypeError in the election loop for ever."""
        with pytest.raises(ConfigError, match=r"meta\['x'\] is not JSON"):
            MemberConfig(pool="p", meta={"ok": 1, "x": object()})

    def test_metadata_keys_must_be_strings(self) -> None:
        with pytest.raises(ConfigError, match="meta keys"):
            MemberConfig(pool="p", meta={1: "a"})  # type: ignore[dict-item]

    def test_metadata_is_bounded(self) -> None:
        """At most MAX_META_BYTES of JSON: it travels in every member listing."""
        from leaderpool.util.constants import MAX_META_BYTES

        MemberConfig(pool="p", meta={"blob": "x" * (MAX_META_BYTES - 20)})
        with pytest.raises(ConfigError, match=f"at most {MAX_META_BYTES}"):
            MemberConfig(pool="p", meta={"blob": "x" * MAX_META_BYTES})


class TestUrls:
    @pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://h:1/2", "unix:///tmp/r.sock", "redis://h"])
    def test_good_urls(self, url: str) -> None:
        assert url == validate_redis_url(url)

    @pytest.mark.parametrize(
        ("url", "match"),
        [
            ("http://h:1", "scheme"),
            ("localhost:6379", "scheme"),
            ("redis://h:99999", "port"),
            ("redis://h:abc", "port"),
            ("redis://:6379", "host"),
            ("redis://h/x", "database"),
            ("unix://", "socket"),
            ("", "non-empty"),
        ],
    )
    def test_bad_urls(self, url: str, match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            validate_redis_url(url)
