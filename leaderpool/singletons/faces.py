"""The library's singletons, in both faces: :class:`AsyncSingletons` on a running
:class:`~leaderpool.aio.AsyncElection`, and :class:`Singletons`, its blocking twin on an
:class:`~leaderpool.blocking.Election` (the same object, run on the background loop).

::

    with Election(MemberConfig(pool="shards"), url) as election:
        with Singletons(election, count=64, on_start=start_shard, on_stop=stop_shard):
            election.run_until_signal()

``on_start(name, term, state)`` runs when a singleton starts here (``state``: what its previous
owner saved, None at first); ``on_stop(name, term, reason)`` when it stops here, and returns the
state to hand over (None keeps the last one saved; ``reason`` ``"lost"``: nothing is saved, another
member may run it already). Plain callbacks run on a thread of their own, ``async`` ones on the
loop; either should return promptly (start the work, stop it). A singleton's work writes through
``fenced_set(name, key, value, term=term)``: fenced by that singleton's own term, so a write of a
previous owner that arrives after the current one's is refused (``StaleTerm``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any, Protocol

from leaderpool.backend.clients import AsyncClient
from leaderpool.backend.fence_script import afenced_set
from leaderpool.backend.listener import NotificationSource
from leaderpool.backend.protocol import FenceResult, LeaderValue
from leaderpool.backend.redis_errors import translate_redis_errors
from leaderpool.backend.shared_watcher import shared_watcher
from leaderpool.backend.watcher import Watcher
from leaderpool.election.core import ElectionCore
from leaderpool.election.lead_hooks import LeadHook, LeadHooks
from leaderpool.errors import ConfigError, LeaderpoolError, LeaseLost, NotLeader
from leaderpool.events import RevokeReason
from leaderpool.singletons.owner import FAILURES, Owner
from leaderpool.singletons.placement import Balanced, Strategy
from leaderpool.singletons.placer import Placer
from leaderpool.singletons.singleton_store import SingletonInfo, SingletonStore
from leaderpool.util.background_loop import BackgroundLoop
from leaderpool.util.lifecycle import AsyncLifecycle, BlockingTwin, on_background_loop
from leaderpool.util.log import get_logger
from leaderpool.util.naming import validate_name
from leaderpool.util.timeouts import cancel_and_wait, within

__all__ = ["AsyncSingletons", "OnStart", "OnStop", "SingletonHost", "Singletons"]

OnStart = Callable[[str, int, Any], "Awaitable[None] | None"]
"""``on_start(name, term, state)``: the singleton ``name`` runs here from now, with ``term``."""
OnStop = Callable[[str, int, str], Any]
"""``on_stop(name, term, reason) -> state``: it stops here; the state returned is handed over."""


class SingletonHost(Protocol):
    """What the singletons need of an election face (:class:`~leaderpool.aio.AsyncElection`)."""

    @property
    def core(self) -> ElectionCore: ...

    @property
    def lead_hooks(self) -> LeadHooks: ...

    @property
    def client(self) -> AsyncClient: ...

    @property
    def is_leader(self) -> bool: ...

    @property
    def term(self) -> int | None: ...


class _CoreView:
    """The owner's view of its member (:class:`~leaderpool.singletons.owner.MemberView`)."""

    def __init__(self, core: ElectionCore) -> None:
        self._core = core

    @property
    def joined(self) -> bool:
        return self._core.membership.joined

    @property
    def lease_until(self) -> float:
        return self._core.membership.lease_until

    @property
    def lease_seen(self) -> float:
        return self._core.membership.lease_seen

    @property
    def incarnation(self) -> str:
        return self._core.membership.incarnation

    def registration(self) -> str:
        return self._core.fast.registration()

    def client_id(self) -> int | None:
        watcher = self._core.fast.watcher
        return None if watcher is None else watcher.client_id


class _Callbacks:
    """The application's callbacks, run off the loop when plain; their errors logged."""

    def __init__(self, on_start: OnStart | None, on_stop: OnStop | None, log: Any) -> None:
        self._on_start, self._on_stop, self._log = on_start, on_stop, log

    async def _call(self, what: str, fn: Callable[..., Any] | None, *args: Any) -> Any:
        if fn is None:
            return None
        try:
            if inspect.iscoroutinefunction(fn):
                return await fn(*args)
            result = await asyncio.to_thread(fn, *args)
            return await result if inspect.isawaitable(result) else result
        except Exception as exc:  # the application's error: logged, and the singleton goes on
            event = "singleton_start_failed" if what == "start" else "singleton_stop_failed"
            self._log.error(event, singleton=args[0], term=args[1], error=repr(exc))
            return None

    async def started(self, name: str, term: int, state: Any) -> None:
        await self._call("start", self._on_start, name, term, state)

    async def stopped(self, name: str, term: int, reason: str) -> Any:
        return await self._call("stop", self._on_stop, name, term, reason)


def singleton_names(names: Iterable[str], count: int) -> list[str]:
    """The static names, and ``shard-0`` .. ``shard-{count-1}``."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigError(f"count must be an integer >= 0, got {count!r}")
    out = [validate_name("singleton", n) for n in names] + [f"shard-{i}" for i in range(count)]
    if len(set(out)) != len(out):
        raise ConfigError("singleton names must be unique")
    return out


class AsyncSingletons(AsyncLifecycle):
    """Named singletons spread over the pool of ``election``, each run by exactly one live member
    at a time, with a fencing term of its own and a state handed from owner to owner.

    ``names`` and ``count`` (``shard-0`` ...) are added to the pool at :meth:`start` (every member
    may give the same; :meth:`add` and :meth:`remove` change them at run time). While this
    member leads its pool, it places them with ``strategy`` (default :class:`Balanced`),
    keeping the names of each group of ``apart`` on different members, moving at most
    ``max_moves`` running singletons at once. ``weight``: this member's share. Start it after
    the election, stop it before (``async with`` nested inside the election's)."""

    def __init__(
        self,
        election: SingletonHost,
        names: Iterable[str] = (),
        *,
        count: int = 0,
        on_start: OnStart | None = None,
        on_stop: OnStop | None = None,
        strategy: Strategy | None = None,
        apart: Sequence[Collection[str]] = (),
        weight: float = 1.0,
        max_moves: int = 1,
    ) -> None:
        self.names = singleton_names(names, count)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise ConfigError(f"weight must be a number > 0, got {weight!r}")
        if isinstance(max_moves, bool) or not isinstance(max_moves, int) or max_moves < 1:
            raise ConfigError(f"max_moves must be an integer >= 1, got {max_moves!r}")
        self._election = election
        self._on_start, self._on_stop = on_start, on_stop
        self.strategy: Strategy = strategy or Balanced()
        self.apart = [frozenset(group) for group in apart]
        self.weight = float(weight)
        self.max_moves = max_moves
        self._owner: Owner | None = None
        self._placer: Placer | None = None
        self._watcher: Watcher | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unhook: Callable[[], None] | None = None
        self._readd: asyncio.Future[None] | None = None

    @property
    def _core(self) -> ElectionCore:
        try:
            return self._election.core
        except LeaderpoolError:
            raise LeaderpoolError("start the election before its singletons") from None

    @property
    def store(self) -> SingletonStore:
        c = self._core.config
        return SingletonStore(self._core.store.client, c.pool, c.prefix)

    async def start(self) -> None:
        core = self._core
        c = core.config
        log = get_logger("leaderpool.singletons", pool=c.pool, member=c.member_id)
        store = self.store
        self._stop = asyncio.Event()
        with translate_redis_errors(pool=c.pool, member=c.member_id):
            await store.add(self.names)
        owner = self._owner = Owner(
            c, store, _CoreView(core), _Callbacks(self._on_start, self._on_stop, log), core.membership.clock, log,
            weight=self.weight,
        )  # fmt: skip
        self._watcher = shared_watcher(self._election.client)
        await self._watcher.watch_channels((store.keys.singleton_events,), self._on_singletons, c.heartbeat)
        await self._watcher.watch_channels((store.keys.events,), self._on_pool, c.heartbeat)
        self._unhook = self._election.lead_hooks.add(LeadHook(self._lead_started, self._lead_ended), at_once=True)
        term = self._election.term
        if self._election.is_leader and term is not None:
            self._lead_started(term)
        self._task = asyncio.get_running_loop().create_task(owner.run(self._stop), name="leaderpool-singletons")
        self._task.add_done_callback(self._loop_ended)

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        """The owner's loop ends only when asked to: said loudly otherwise (nothing would be
        confirmed, handed over or claimed here any more)."""
        if self._stop.is_set() or self._owner is None:
            return
        error = "cancelled" if task.cancelled() else repr(task.exception())
        self._owner.log.error("singletons_loop_ended", error=error)

    def _on_singletons(self, source: NotificationSource, payload: str) -> None:
        if source is NotificationSource.RESYNC and self.names:  # Redis may have restarted empty
            self._readd = asyncio.ensure_future(self._add_again())
        if self._owner is not None:
            self._owner.on_message(source, payload)
        if self._placer is not None:
            self._placer.on_message(source, payload)

    async def _add_again(self) -> None:
        """Our names again (idempotent), after a reconnection: a Redis that lost its data would
        otherwise run none of them (the placer places only what the pool's set holds)."""
        try:
            await self.store.add(self.names)
        except FAILURES as exc:  # the next reconnection (or the next member's) adds them
            get_logger("leaderpool.singletons").warning("singletons_add_failed", error=str(exc) or type(exc).__name__)

    def _on_pool(self, source: NotificationSource, payload: str) -> None:
        if self._placer is not None:
            self._placer.on_message(source, payload)
        if self._owner is not None:
            self._owner.alarm.ring()  # joined, left, evicted: our own membership may have changed

    def _lead_started(self, term: int) -> None:
        if self._placer is not None or self._owner is None:
            return
        c = self._core.config
        self._placer = Placer(
            self.store, LeaderValue(term, c.member_id), self.strategy, self.apart, self.max_moves, c.heartbeat,
            self._core.membership.clock, self._owner.log,
        )  # fmt: skip
        self._placer.start()

    async def _lead_ended(self, term: int, reason: RevokeReason) -> None:
        placer, self._placer = self._placer, None
        if placer is not None:
            await placer.stop()

    async def stop(self) -> None:
        """Stop every singleton running here (each saved and handed over), then stop placing."""
        owner, task = self._owner, self._task
        if owner is None:
            return
        self._stop.set()
        owner.alarm.ring()
        if task is not None:  # its turn ends first (a hand-off half done would owe a release)
            await asyncio.wait({task}, timeout=self._core.config.ttl_s)
            await cancel_and_wait(task)
        await owner.leave(self._core.config.ttl_s)
        if self._unhook is not None:
            self._unhook()
        placer = self._placer
        if placer is not None:  # still leading: place what we released before we stop placing
            try:
                await within(placer.place_once(), self._core.config.heartbeat)
            except FAILURES as exc:  # the next leader's placer will
                owner.log.warning("singletons_place_failed", error=str(exc) or type(exc).__name__)
        await self._lead_ended(0, RevokeReason.SHUTDOWN)
        watcher = self._watcher
        if watcher is not None:
            keys = self.store.keys
            await watcher.unwatch_channels((keys.singleton_events,), self._on_singletons)
            await watcher.unwatch_channels((keys.events,), self._on_pool)
        self._owner = self._task = None

    # ---- what the application asks ----

    @property
    def held(self) -> dict[str, int]:
        """The singletons running here: name -> term."""
        return dict(self._owner.held) if self._owner is not None else {}

    def term_of(self, name: str) -> int | None:
        """The term of ``name`` while it runs here, else None (no copy: a task asks it often)."""
        return self._owner.held.get(name) if self._owner is not None else None

    @property
    def deadline(self) -> float | None:
        """When everything running here stops unless this member's lease is confirmed again (the
        election's clock); None before :meth:`start`."""
        return self._owner.deadline if self._owner is not None else None

    async def save(self, name: str, state: Any) -> bool:
        """Save ``name``'s state now, fenced by its term here (JSON-serialisable); False when it
        does not run here (any more)."""
        owner = self._owner
        return owner is not None and await owner.save(name, state)

    async def fenced_set(
        self, name: str, key: str, value: str | bytes, *, px: int = 0, term: int | None = None
    ) -> FenceResult:
        """SET ``key`` under singleton ``name``'s term here, fenced by that singleton's own fence
        (see :mod:`leaderpool.fencing`): once a newer owner of ``name`` wrote ``key``, a write of
        an older term raises :class:`~leaderpool.errors.StaleTerm`. ``term`` (the one ``on_start``
        was given) must still be the one ``name`` runs with here. Raises
        :class:`~leaderpool.errors.NotLeader` when ``name`` does not run here (with ``term``), and
        :class:`~leaderpool.errors.LeaseLost` once this member's ownership deadline has passed."""
        owner = self._owner
        held = owner.held.get(name) if owner is not None else None
        c = self._core.config
        if owner is None or held is None or (term is not None and term != held):
            raise NotLeader(
                f"singleton {name!r} does not run here" + ("" if term is None else f" with term {term}"),
                pool=c.pool, member=c.member_id, term=term,
            )  # fmt: skip
        if owner.clock() >= owner.deadline:
            raise LeaseLost(
                f"singleton {name!r}'s ownership here ended (deadline passed)", pool=c.pool, member=c.member_id,
                term=held,
            )  # fmt: skip
        with translate_redis_errors(pool=c.pool, member=c.member_id, term=held):
            return await afenced_set(self._election.client, key, value, held, px, pool=c.pool, singleton=name)

    async def give_up(self, name: str, term: int, why: str = "given up") -> bool:
        """Stop ``name`` here if it runs with ``term`` (``on_stop`` with reason ``"lost"``,
        nothing saved) and release it: the placer's choice claims it again, with a new term. For
        work that ended on its own while this member still held the singleton (the worker's
        task that saw the ownership deadline pass). False when it does not run here with ``term``."""
        owner = self._owner
        return owner is not None and await owner.give_up(name, term, why)

    async def add(self, *names: str) -> int:
        """Add singletons to the pool (placed at once); returns how many were new."""
        return await self.store.add(singleton_names(names, 0))

    async def remove(self, *names: str) -> int:
        """Remove singletons from the pool (their owners stop them); returns how many were there."""
        return await self.store.remove(singleton_names(names, 0))

    async def move(self, name: str, member: str) -> bool:
        """Pin ``name`` to ``member`` ("" unpins): the placer hands it over there while that
        member is live. False when ``name`` is not a singleton of the pool."""
        return await self.store.pin(name, member)

    async def list(self) -> list[SingletonInfo]:
        """Every singleton of the pool, with its live owner and term (read from Redis)."""
        return await self.store.list()


class Singletons(BlockingTwin[AsyncSingletons]):
    """The blocking twin of :class:`AsyncSingletons`, on a blocking
    :class:`~leaderpool.blocking.Election`: the same arguments, the same guarantees."""

    def __init__(
        self,
        election: BlockingTwin[SingletonHost],
        names: Iterable[str] = (),
        *,
        count: int = 0,
        on_start: OnStart | None = None,
        on_stop: OnStop | None = None,
        strategy: Strategy | None = None,
        apart: Sequence[Collection[str]] = (),
        weight: float = 1.0,
        max_moves: int = 1,
    ) -> None:
        self._inner = BackgroundLoop.run(
            _made(election._inner, names, count, on_start, on_stop, strategy, apart, weight, max_moves)
        )

    start = on_background_loop(AsyncSingletons.start)
    stop = on_background_loop(AsyncSingletons.stop)
    save = on_background_loop(AsyncSingletons.save)
    fenced_set = on_background_loop(AsyncSingletons.fenced_set)
    add = on_background_loop(AsyncSingletons.add)
    remove = on_background_loop(AsyncSingletons.remove)
    move = on_background_loop(AsyncSingletons.move)
    list = on_background_loop(AsyncSingletons.list)

    @property
    def held(self) -> dict[str, int]:
        """The singletons running here: name -> term."""
        return self._inner.held


async def _made(
    election: SingletonHost,
    names: Iterable[str],
    count: int,
    on_start: OnStart | None,
    on_stop: OnStop | None,
    strategy: Strategy | None,
    apart: Sequence[Collection[str]],
    weight: float,
    max_moves: int,
) -> AsyncSingletons:
    """Made on the background loop (its event belongs there)."""
    return AsyncSingletons(
        election, names, count=count, on_start=on_start, on_stop=on_stop, strategy=strategy, apart=apart,
        weight=weight, max_moves=max_moves,
    )  # fmt: skip
