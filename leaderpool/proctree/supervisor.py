"""The supervisor of one contained process tree: a small process between the worker (or
``leaderpool-cli lock``) and its command, that outlives its parent's SIGKILL long enough to kill
every process of the command's tree.

It is run as a script (``python -I -S supervisor.py ...``, by :mod:`.launch`), on the standard
library only, so it starts in a few milliseconds::

    supervisor.py PARENT_PID LIFELINE_FD GRACE_S CGROUP LABEL -- COMMAND [ARGS...]

(CGROUP: ``auto`` to try a cgroup v2 of its own, ``off`` not to.) What it does:

- It is a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``): a process of the tree whose parent
  dies -- a helper that double-forks into a new session included -- becomes its child, so the
  tree is every process descended from it, and it is gone when the supervisor has no child left.
- It starts the command in a session (and process group) of its own, and, where a cgroup v2 can
  be created beside its own (``cgroup.kill``, Linux 5.14), in that cgroup: then one write kills
  the tree at once, however fast it forks.
- It reports ``started PID MODE CGROUP`` on the lifeline (a socket whose other end only its parent
  holds), then reads it: end of file -- the parent closed it, or died, SIGKILL and the OOM
  killer included, since the kernel closes a dead process's sockets -- means **kill the tree
  now** (SIGKILL to every process). Its parent-death signal (SIGUSR1) means the same.
- SIGTERM means stop: SIGTERM to every process of the tree, then SIGKILL after GRACE_S. SIGINT
  and SIGHUP are passed to the command's process group, as a terminal would.
- When the command exits, what is left of the tree gets SIGTERM, and SIGKILL after GRACE_S.
- It exits once no process of the tree is left, as the command did: its exit code, or killed by
  the same signal. 127 when the command cannot be started, 125 when its parent was already gone.
  (A tree that survives SIGKILL for :data:`GIVE_UP_S` -- stuck in the kernel -- is given up on,
  with one line on stderr.)
"""

from __future__ import annotations

import ctypes
import os
import select
import sys
import time

TYPE_CHECKING = False  # not typing's: importing typing would slow our start
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable

    Prctl = Callable[..., int]
else:
    import _signal as signal  # the C module: ``signal`` imports enum, some 15 ms of our start

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
PARENT_GONE = signal.SIGUSR1
"""Our parent-death signal: handled, so that it kills the tree rather than only us."""
EXIT_CANNOT_RUN = 127
EXIT_PARENT_GONE = 125
KILL_POLL_S = 0.005
"""While killing, how often the tree is swept again (processes reparented to us send SIGCHLD)."""
GIVE_UP_S = 60.0
"""How long to keep killing a tree that will not die (a process stuck in the kernel) before we
exit all the same, saying so: the loop is bounded."""
MAX_TREE = 100_000
"""At most this many processes are looked at in one sweep (a bound, not an expected size)."""
PRIORITY_BOOST = 10
"""How much higher than its parent's the supervisor's scheduling priority is, where allowed (root,
CAP_SYS_NICE): idle but for the moment it must kill the tree, it then runs before the tree's
processes and the next leader's. The command gets its parent's priority back."""
CGROUP_PREFIX = "leaderpool-tree-"
USAGE = "usage: supervisor.py PARENT_PID LIFELINE_FD GRACE_S auto|off LABEL -- COMMAND [ARGS...]"


def _prctl() -> Prctl | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Prctl = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


# ---- the tree: what it holds, how it is signalled ----


def _children_files(pid: int) -> list[str]:
    try:
        return [f"/proc/{pid}/task/{tid}/children" for tid in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def _parent_of(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


class Tree:
    """Every process descended from this one (and, with a cgroup, every process in it)."""

    def __init__(self, cgroup: str | None) -> None:
        self.cgroup = cgroup
        self.me = os.getpid()
        self.main = 0
        self.status: int | None = None  # the command's wait status, once reaped
        self.niceness: int | None = None  # the command's, when ours was raised
        self.has_children_files = os.path.exists(f"/proc/{self.me}/task/{self.me}/children")

    def descendants(self) -> list[int]:
        """Our descendants, from the kernel's children lists (or a scan of /proc without them)."""
        if not self.has_children_files:
            return self._scanned()
        found: list[int] = []
        todo = [self.me]
        while todo and len(found) < MAX_TREE:
            for path in _children_files(todo.pop()):
                try:
                    with open(path, "rb") as f:
                        kids = [int(x) for x in f.read().split()]
                except OSError:
                    continue
                found.extend(kids)
                todo.extend(kids)
        return found

    def _scanned(self) -> list[int]:
        parents: dict[int, list[int]] = {}
        try:
            entries = os.listdir("/proc")[:MAX_TREE]
        except OSError:  # no /proc (not Linux): our children are all we know of
            return []
        for entry in entries:
            if entry.isdigit():
                parents.setdefault(_parent_of(entry), []).append(int(entry))
        found: list[int] = []
        todo = [self.me]
        while todo and len(found) < MAX_TREE:
            kids = parents.get(todo.pop(), [])
            found.extend(kids)
            todo.extend(kids)
        return found

    def in_cgroup(self) -> list[int]:
        if self.cgroup is None:
            return []
        try:
            with open(os.path.join(self.cgroup, "cgroup.procs"), "rb") as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def signal_all(self, signum: int) -> None:
        """``signum`` to every process of the tree, once each (a handler runs once)."""
        tree = {*self.descendants(), *self.in_cgroup()}
        if not tree and self.status is None and self.main:  # no /proc: the command's group
            _quietly(os.killpg, self.main, signum)
        for pid in tree:
            _quietly(os.kill, pid, signum)

    def kill_all(self) -> None:
        """SIGKILL to the whole tree: the cgroup at once where there is one, then every descendant."""
        if self.status is None and self.main:
            _quietly(os.killpg, self.main, signal.SIGKILL)
        if self.cgroup is not None:
            try:
                with open(os.path.join(self.cgroup, "cgroup.kill"), "w") as f:
                    f.write("1")
            except OSError:
                pass
        for pid in self.descendants():
            _quietly(os.kill, pid, signal.SIGKILL)

    def reap(self) -> bool:
        """Reap every child that ended; True when no child is left."""
        for _ in range(MAX_TREE):
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == 0:
                return False
            if pid == self.main:
                self.status = status
        return False

    def gone(self) -> bool:
        return self.reap() and not self.in_cgroup()


def _quietly(call: Callable[[int, int], None], pid: int, signum: int) -> None:
    try:
        call(pid, signum)
    except OSError:  # gone already, or not ours to signal
        pass


# ---- the cgroup ----


def make_cgroup() -> str | None:
    """A new cgroup v2 beside our own, where one can be made and has ``cgroup.kill``; else None."""
    try:
        with open("/proc/self/cgroup") as f:
            own = next((line[3:].strip() for line in f if line.startswith("0::")), None)
        with open("/proc/self/mountinfo") as f:
            mount = next((line.split()[4] for line in f if " - cgroup2 " in line), None)
    except OSError:
        return None
    if own is None or mount is None:
        return None
    path = os.path.join(mount, own.lstrip("/"), f"{CGROUP_PREFIX}{os.getpid()}")
    try:
        os.mkdir(path)
    except OSError:
        return None
    if not os.path.exists(os.path.join(path, "cgroup.kill")):  # before Linux 5.14: the subreaper alone
        _remove(path)
        return None
    return path


def _remove(path: str) -> None:
    for _ in range(100):  # its last process may still be leaving it
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.001)


# ---- starting the command ----


def _start(argv: list[str], tree: Tree, prctl: Prctl | None) -> int:
    """Fork and exec the command in a session of its own (and the cgroup); its pid, or raises
    OSError when it could not be started (reported by the child through a pipe)."""
    errors_r, errors_w = os.pipe()  # close-on-exec: end of file means exec succeeded
    pid = os.fork()
    if pid == 0:
        try:
            os.close(errors_r)
            os.setsid()
            if tree.niceness is not None:
                os.setpriority(os.PRIO_PROCESS, 0, tree.niceness)
            if tree.cgroup is not None:
                with open(os.path.join(tree.cgroup, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            if prctl is not None:
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # should we be killed, the command is too
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, PARENT_GONE, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            os.execvp(argv[0], argv)
        except OSError as exc:
            os.write(errors_w, f"{exc.errno}".encode())
        finally:
            os._exit(EXIT_CANNOT_RUN)
    os.close(errors_w)
    try:
        reply = os.read(errors_r, 64)
    finally:
        os.close(errors_r)
    if reply:
        os.waitpid(pid, 0)
        errno = int(reply)
        raise OSError(errno, os.strerror(errno))
    return pid


# ---- the run ----


def _raise_priority() -> int | None:
    """Raise our priority by :data:`PRIORITY_BOOST`; the niceness we had, or None if not allowed."""
    try:
        niceness = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, max(-20, niceness - PRIORITY_BOOST))
    except OSError:
        return None
    return niceness


def _ignore(_signum: int, _frame: object) -> None:
    """Python handlers only so that the signal is written to the wake-up pipe."""


def run(parent: int, lifeline: int, grace_s: float, cgroup: str, label: str, argv: list[str]) -> int:
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, PARENT_GONE, signal.SIGCHLD):
        signal.signal(signum, _ignore)
    os.set_inheritable(lifeline, False)
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        prctl(PR_SET_PDEATHSIG, PARENT_GONE, 0, 0, 0)
    if os.getppid() != parent:  # it died before the parent-death signal was armed
        return EXIT_PARENT_GONE
    tree = Tree(make_cgroup() if cgroup == "auto" else None)
    tree.niceness = _raise_priority()
    try:
        try:
            tree.main = _start(argv, tree, prctl)
        except OSError as exc:
            sys.stderr.write(f"{label}: error: cannot run {argv[0]}: {exc.strerror or exc}\n")
            return EXIT_CANNOT_RUN
        mode = "cgroup" if tree.cgroup is not None else ("subreaper" if prctl is not None else "group")
        try:
            os.write(lifeline, f"started {tree.main} {mode} {tree.cgroup or '-'}\n".encode())
        except OSError:
            pass  # the parent is gone: end of file comes next
        _supervise(tree, lifeline, wake_r, grace_s)
    finally:
        if tree.cgroup is not None:
            _remove(tree.cgroup)
    return _exit_as(tree.status)


def _supervise(tree: Tree, lifeline: int, wake_r: int, grace_s: float) -> None:
    """Until the command has exited and no process of its tree is left."""
    kill_at: float | None = None  # when what is left gets SIGKILL
    killing = False
    give_up_at = float("inf")
    watched = [wake_r, lifeline]
    while True:
        gone = tree.gone()
        now = time.monotonic()
        if tree.status is not None and gone:
            return
        if now >= give_up_at:
            sys.stderr.write(f"leaderpool supervisor: error: processes {tree.descendants() or tree.in_cgroup()} "
                             f"survived SIGKILL for {GIVE_UP_S:g}s (stuck in the kernel?): giving up\n")  # fmt: skip
            return
        if tree.status is not None and kill_at is None:  # the command ended: its leftovers are asked to
            tree.signal_all(signal.SIGTERM)
            kill_at = now + grace_s
        if killing or (kill_at is not None and now >= kill_at):
            if not killing:
                killing, give_up_at = True, now + GIVE_UP_S
            tree.kill_all()
        timeout = KILL_POLL_S if killing else (None if kill_at is None else max(0.0, kill_at - now))
        ready, _, _ = select.select(watched, [], [], timeout)
        if lifeline in ready:
            try:
                data = os.read(lifeline, 64)
            except OSError:
                data = b""
            if not data:  # the parent closed it, or died
                killing, give_up_at = True, min(give_up_at, time.monotonic() + GIVE_UP_S)
                tree.kill_all()
                watched.remove(lifeline)
        if wake_r in ready:
            for signum in os.read(wake_r, 256):
                if signum == PARENT_GONE:
                    killing, give_up_at = True, min(give_up_at, time.monotonic() + GIVE_UP_S)
                    tree.kill_all()
                elif signum == signal.SIGTERM:
                    tree.signal_all(signal.SIGTERM)
                    kill_at = kill_at if kill_at is not None else time.monotonic() + grace_s
                elif signum in (signal.SIGINT, signal.SIGHUP) and tree.status is None:
                    _quietly(os.killpg, tree.main, signum)


def _exit_as(status: int | None) -> int:
    """The command's exit code; killed by a signal, the same signal ends us."""
    if status is None:
        return EXIT_CANNOT_RUN
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        signal.set_wakeup_fd(-1)
        if signum not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        sys.stdout.flush()
        os.kill(os.getpid(), signum)
        return 128 + signum
    return os.waitstatus_to_exitcode(status)


def main(args: list[str]) -> int:
    try:
        cut = args.index("--")
        parent, lifeline, grace, cgroup, label = args[:cut]
        command = args[cut + 1 :]
        if not command:
            raise ValueError("no command")
        return run(int(parent), int(lifeline), float(grace), cgroup, label, command)
    except ValueError as exc:
        sys.stderr.write(f"leaderpool supervisor: {USAGE} ({exc})\n")
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
