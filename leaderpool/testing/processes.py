"""Child processes for the tests, the benchmarks and the demo: one harness.

A :class:`Child` is a process started from an argv (with its env and cwd) whose stdout a
thread reads line by line: each line goes to the ``on_line`` hook if there is one, and each
line that is a JSON object is appended to :attr:`Child.events` under a condition variable, so
that :meth:`Child.wait_for` wakes on the event it waits for instead of polling. Anything else
on stdout is kept in :attr:`Child.other_stdout`. Its stderr goes to a file: a temporary one,
removed on :meth:`Child.close`, unless the caller gives a path or an open file.

Signals go to the child's pid, and only while it has not been reaped (so never to a pid the
system has handed to someone else). :meth:`Child.close` always ends the same way, whatever
happened before: SIGTERM, a grace period, SIGKILL, reaped, its pipe and reader thread gone.
A :class:`ChildGroup` remembers every child it started, keeps their events in one log in
arrival order, and closes every one of them. :func:`run` runs a command to completion and, if
it overruns, stops it and everything it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Generic, TypeVar

JsonEvent = dict[str, Any]
"""One JSON object a child printed on a line of its stdout."""
LineHook = Callable[[str, str], None]
"""Called on the reader thread with (child name, raw line) for every stdout line."""
EventHook = Callable[[str, JsonEvent], None]
"""Called on the reader thread with (child name, event) for every JSON object line."""

T = TypeVar("T")


class EventLog(Generic[T]):
    """A thread-safe, append-only list that readers can wait on."""

    def __init__(self) -> None:
        self.items: list[T] = []
        self._cond = threading.Condition()

    def append(self, item: T) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()

    def mark(self) -> int:
        """The index the next item will have: pass it as ``since`` to see only what follows."""
        with self._cond:
            return len(self.items)

    def snapshot(self, since: int = 0) -> list[T]:
        with self._cond:
            return self.items[since:]

    def first(self, match: Callable[[T], bool], timeout: float, since: int = 0) -> T | None:
        """The first item at or after index ``since`` that matches, waiting up to ``timeout``
        seconds in all for it to arrive; None if none did. ``match`` sees each item once, in
        order (so it may count)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            checked = since
            while True:
                for item in self.items[checked:]:
                    if match(item):
                        return item
                checked = max(checked, len(self.items))
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)


class Child:
    """One child process, its stdout events and its stderr file.

    ``stderr`` is None (a temporary file, removed on close), a path (appended to and kept) or
    an open file (shared, left open). ``new_session`` puts the child in a session of its own,
    so a Ctrl-C at the terminal reaches only the parent, which then closes the child itself
    (the demo's narration goes on to its summary); by default a child shares the parent's
    process group, so that whoever stops the parent's group stops the child too.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stderr: IO[Any] | str | os.PathLike[str] | None = None,
        on_line: LineHook | None = None,
        on_event: EventHook | None = None,
        on_exit: Callable[[Child], None] | None = None,
        new_session: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self._log: EventLog[JsonEvent] = EventLog()
        self.events = self._log.items
        """Every JSON object line so far, in order (the list itself: it grows as lines arrive)."""
        self.other_stdout: list[str] = []
        self._on_line = on_line
        self._on_event = on_event
        self._on_exit = on_exit
        self._own_stderr: IO[Any] | None = None
        self._remove_stderr = False
        stderr_file: IO[Any]
        if stderr is None:
            stderr_file = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)  # noqa: SIM115
            self._own_stderr, self._remove_stderr = stderr_file, True
        elif isinstance(stderr, (str, os.PathLike)):
            stderr_file = open(stderr, "a")  # noqa: SIM115 (closed in close())
            self._own_stderr = stderr_file
        else:
            stderr_file = stderr
        name_of_file = getattr(stderr_file, "name", None)
        self.stderr_path = Path(name_of_file) if isinstance(name_of_file, str) else None
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr_file,
                env=None if env is None else dict(env), cwd=cwd, text=True, errors="replace", bufsize=1,
                start_new_session=new_session,
            )  # fmt: skip
        except BaseException:
            self._release_stderr()
            raise
        self.started = time.time()
        """Unix time right after the process was started."""
        self.killed_at: float | None = None
        """When the first SIGKILL was sent to it while it ran (unix time): it acted no more after."""
        self._reader = threading.Thread(target=self._read, name=f"read-{name}", daemon=True)
        self._reader.start()

    def __repr__(self) -> str:
        return f"<Child {self.name} pid={self.proc.pid} returncode={self.proc.returncode}>"

    # ---- output ----

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if self._on_line is not None:
                self._on_line(self.name, line)
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict):
                self._log.append(event)
                if self._on_event is not None:
                    self._on_event(self.name, event)
            else:
                self.other_stdout.append(line)
        if self._on_exit is not None:
            self._on_exit(self)

    def of(self, kind: str) -> list[JsonEvent]:
        """The events whose ``event`` field is ``kind``, so far."""
        return [e for e in self._log.snapshot() if e.get("event") == kind]

    def mark(self) -> int:
        return self._log.mark()

    def wait_for(self, match: Callable[[JsonEvent], bool], timeout: float, since: int = 0) -> JsonEvent:
        """The first event (at or after index ``since``) that matches, waiting up to ``timeout``
        seconds in all; raises TimeoutError, naming what did arrive, if none does."""
        found = self._log.first(match, timeout, since)
        if found is None:
            raise TimeoutError(f"{self.name}: no matching event within {timeout:g}s; got {self._log.snapshot()}")
        return found

    @property
    def stderr(self) -> str:
        """What the child wrote on stderr so far ("" once its temporary file is removed)."""
        if self.stderr_path is None:
            return ""
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ---- signals and exit ----

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> float:
        """Send ``sig`` unless the child has been reaped; returns when it was sent (unix time).
        SIGSTOP returns only once the child is frozen (see :meth:`_wait_stopped`)."""
        sent = time.time()
        if sig == signal.SIGKILL and self.killed_at is None and self.proc.poll() is None:
            self.killed_at = sent
        self.proc.send_signal(sig)  # a no-op once reaped; ignores a child that just died
        if sig == signal.SIGSTOP:
            self._wait_stopped()
        return sent

    def _wait_stopped(self, timeout: float = 10.0) -> None:
        """Wait until every thread of the child is stopped. SIGSTOP is not instant for a process
        with threads: it stops once one of them takes the signal, which on a busy machine can be
        milliseconds later, and meanwhile the others run on (a member frozen "before" a hand-over
        took the lead first). Reads /proc/PID/task/*/stat; without /proc it cannot tell."""
        tasks = Path(f"/proc/{self.pid}/task")
        deadline = time.monotonic() + timeout
        while self.alive():
            try:
                stats = [self._task_state(task) for task in tasks.iterdir()]
            except FileNotFoundError:  # no /proc, or the child is gone
                return
            if all(state in ("T", "t", None) for state in stats):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: not stopped {timeout:g}s after SIGSTOP (threads: {stats})")
            time.sleep(0.001)

    @staticmethod
    def _task_state(task: Path) -> str | None:
        """One thread's state letter (None if the thread just ended): the field after "(comm)"."""
        try:
            return (task / "stat").read_text().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return None

    def terminate(self) -> float:
        return self.signal(signal.SIGTERM)

    def kill(self) -> float:
        """SIGKILL (it can act no more after this) and reap; returns when it was sent."""
        sent = self.signal(signal.SIGKILL)
        self.proc.wait()
        return sent

    def wait(self, timeout: float) -> int:
        """The exit code, once exited and its stdout read to the end; raises
        subprocess.TimeoutExpired if it runs on past ``timeout``."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def close(self, grace: float = 0.0) -> None:
        """End the child and free everything it held: SIGTERM, up to ``grace`` seconds to exit,
        then SIGKILL (at once when ``grace`` is 0); reaped, its reader joined, its pipe closed,
        its temporary stderr removed. Safe to call again."""
        if grace > 0:
            self._ask_to_stop()
        self._finish(grace)

    def _ask_to_stop(self) -> None:
        self.signal(signal.SIGTERM)
        self.signal(signal.SIGCONT)  # a stopped child handles SIGTERM only once resumed

    def _finish(self, grace: float) -> None:
        if self.alive() and grace > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        self.signal(signal.SIGKILL)
        self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._release_stderr()

    def _release_stderr(self) -> None:
        if self._own_stderr is not None:
            self._own_stderr.close()
        if self._remove_stderr and self.stderr_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.stderr_path.unlink()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


C = TypeVar("C", bound=Child)


class ChildGroup:
    """Every child started through it, their events in one log in arrival order, and a
    :meth:`close` that leaves none of them running."""

    def __init__(self) -> None:
        self.started: list[Child] = []
        """Every child ever started, in order."""
        self.latest: dict[str, Child] = {}
        """The most recent child of each name."""
        self.events: EventLog[tuple[str, JsonEvent]] = EventLog()
        """(child name, event) for every event of every child started by :meth:`start`."""

    def start(self, argv: Sequence[str], *, name: str, **options: Any) -> Child:
        """A :class:`Child` (``options`` as its constructor takes them) whose events also go
        to :attr:`events`."""
        hook: EventHook | None = options.pop("on_event", None)

        def on_event(child: str, event: JsonEvent) -> None:
            self.events.append((child, event))
            if hook is not None:
                hook(child, event)

        return self.add(Child(argv, name=name, on_event=on_event, **options))

    def add(self, child: C) -> C:
        """Take charge of a child started elsewhere: it is closed with the rest."""
        self.started.append(child)
        self.latest[child.name] = child
        return child

    def running(self) -> list[Child]:
        return [c for c in self.started if c.alive()]

    def close(self, grace: float = 5.0) -> None:
        """SIGTERM every child still running, all at once, then close each: SIGKILL what is
        left after ``grace`` seconds in all (at once when ``grace`` is 0)."""
        for child in self.running() if grace > 0 else ():
            child._ask_to_stop()  # once: a second SIGTERM tells a worker not to wait for its hand-over
        deadline = time.monotonic() + grace
        for child in self.started:
            child._finish(max(deadline - time.monotonic(), 0.0))

    def __enter__(self) -> ChildGroup:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without LEADERPOOL_* (so none of its settings leaks into a
    child's), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADERPOOL_")}
    env.update(extra)
    return env


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    grace: float = 15.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to completion and capture its output, like :func:`subprocess.run`, but in a
    process group of its own: if it runs past ``timeout`` it gets SIGTERM (to stop what it
    started) and ``grace`` seconds, then the whole group gets SIGKILL; then TimeoutExpired
    is raised with whatever it printed."""
    proc = subprocess.Popen(
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=None if env is None else dict(env), cwd=cwd, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            out, err = proc.communicate()
        _kill_group(proc.pid)  # whatever it left behind
        raise subprocess.TimeoutExpired(proc.args, timeout, out, err) from None
    except BaseException:  # interrupted (Ctrl-C): stop it all the same
        _kill_group(proc.pid)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _kill_group(pgid: int) -> None:
    """SIGKILL a process group (its id is its leader's pid, which the system hands out again
    only once the whole group is gone)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
