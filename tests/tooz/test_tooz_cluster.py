"""The tooz driver on Redis Cluster (``leaderpool://HOST:PORT?cluster=true``): one masters-only
cluster for the module; tooz's own API suite passes on it as on one Redis, and the groups, whose
keys sit in their own slots apart from the list of groups, are created, joined, listed and
deleted on every master."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tooz.coordination

from leaderpool.testing.cluster import ClusterSet
from leaderpool.tooz.groups import GroupKeys

from .test_tooz_driver import assert_tooz_suite_passes


@pytest.fixture(scope="module")
def cluster() -> Iterator[ClusterSet]:
    with ClusterSet(replicas=0) as c:
        yield c


def tooz_url(cluster: ClusterSet, *more: str) -> str:
    first, *rest = cluster.url.split("://", 1)[1].split(",")
    return f"leaderpool://{first}?cluster={','.join(rest) if rest else 'true'}&timeout=2" + "".join(more)


def test_groups_on_every_master_through_the_tooz_api(cluster: ClusterSet) -> None:
    """A group on each master: the list of groups lives on one of them, so two at least are
    another slot's (the scripts of the earlier registry were cross-slot there)."""
    names = [cluster.name_on(master, "tg") for master in cluster.masters()]
    registry = cluster.master_of(GroupKeys("leaderpool", "").registry)
    assert any(cluster.master_of(GroupKeys("leaderpool", n).created) is not registry for n in names)
    a = tooz.coordination.get_coordinator(tooz_url(cluster), b"a")
    b = tooz.coordination.get_coordinator(tooz_url(cluster), b"b")
    a.start()
    b.start()
    try:
        for name in names:
            a.create_group(name.encode()).get()
            with pytest.raises(tooz.coordination.GroupAlreadyExist):
                b.create_group(name.encode()).get()
            b.join_group(name.encode(), {"on": name}).get()
            assert {b"b": {"on": name}} == a.get_members_with_capabilities(name.encode()).get()
        assert set(names) <= {g.decode() for g in a.get_groups().get()}
        for name in names:
            with pytest.raises(tooz.coordination.GroupNotEmpty):
                a.delete_group(name.encode()).get()
            b.leave_group(name.encode()).get()
            a.delete_group(name.encode()).get()
            with pytest.raises(tooz.coordination.GroupNotCreated):
                b.join_group(name.encode()).get()
        assert not set(names) & {g.decode() for g in a.get_groups().get()}
    finally:
        a.stop()
        b.stop()


def test_toozs_own_api_suite_passes_on_a_cluster(cluster: ClusterSet, tmp_path: Path) -> None:
    assert_tooz_suite_passes(tooz_url(cluster), tmp_path)
