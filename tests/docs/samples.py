"""The code samples of the documentation (docs/**/*.md and README.md), found and run.

Every fenced block is typed. Blocks in ``python``, ``sh``/``bash``/``shell`` and ``console`` are
samples, and each one is run by the test suite (tests/docs/test_samples_*.py); blocks in the
other languages (``text`` for output, ``json``, ``yaml``, ``ini``, ``dockerfile``) are not commands
(``json`` ones must parse). A sample runs in a directory of its own, against a redis-server of its
own (started for it, on a free port), with this checkout's ``.venv/bin`` first on PATH, the
directory on PYTHONPATH and ``LEADERPOOL_REDIS_URL`` set to that server. The Redis addresses the
samples show (``localhost:6379``, ``127.0.0.1:6379``, ``redis:6379``) are replaced by that server's
address before it runs, and a sample that would still reach port 6379 fails: no sample ever
touches a Redis it did not start. Each one is bounded in time, and every process it started is
stopped after it (its process group: SIGTERM, then SIGKILL).

* ``python``: a program, run as ``python sample.py`` (a top-level ``await`` runs the whole
  program in ``asyncio.run``, as ``python -m asyncio`` would). Passes when it exits 0.
* ``sh`` (and ``bash``, ``shell``): a bash script, run with ``set -eo pipefail``. Passes when it
  exits 0.
* ``console``: ``$ COMMAND`` lines, each followed by what it prints. The commands run in order in
  one bash; a command whose shown output has an ``...: error: ...`` line must fail, with that
  line on its stderr; any other must exit 0. A shown line that is a JSON object or array must be
  printed as such (the same value, whatever the spacing); other shown lines are illustrations.

An HTML comment right before a block (it does not render) changes how it runs; its options are
``KEY`` or ``KEY=VALUE`` words, quoted as a shell would::

    <!-- sample: continues -->              this block goes on from the previous sample on the
                                            page: they are run as one program (or script)
    <!-- sample: file=myapp/jobs.py -->     the block is that file's text: it is written into the
                                            directory of every later sample on the page (made
                                            executable when it starts with #!), and runs with
                                            the next sample (its test covers this block)
    <!-- sample: background expect=RE -->   long-running: each command (for python: the program)
                                            is started, must print a line matching RE within
                                            `timeout` (default 20 s), then gets SIGTERM and must
                                            exit 0 (or die of that SIGTERM); `run-for=S` instead
                                            of (or with) `expect` requires it still running S s on;
                                            `stopped=RE`: what it printed by its end must match RE
                                            (what a kind stop says, say: `revoked: shutdown`)
    <!-- sample: pool=jobs -->              a context: before the sample, workers a and b
                                            (`members=a,b,c` to change) join pool `jobs` with a
                                            1 s lease (`ttl=`), a leading and b following;
                                            `worker-args="--handler myapp.orders:handle"` adds
                                            worker flags; `gone` SIGKILLs them and waits out
                                            their leases (a pool whose members died). They are
                                            stopped after the sample.
    <!-- sample: expect=RE -->              the output (stdout and stderr) must match RE
    <!-- sample: exit=N -->                 (sh, python) the exit code must be N, not 0
    <!-- sample: timeout=S -->              bound of the whole run (default 30 s)
    <!-- sample: not-run reason="..." -->   not run, for the reason given (a Docker engine, a
                                            cluster, a package index...): tests/docs/
                                            test_docs_site.py lists every such block

"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from leaderpool.testing.processes import Child, clean_env
from leaderpool.testing.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent.parent
PAGES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]

SAMPLE_LANGUAGES = {"python": "python", "sh": "shell", "bash": "shell", "shell": "shell", "console": "console"}
"""Fence languages whose blocks are samples, and the kind of run each gets."""
OTHER_LANGUAGES = {"text", "json", "yaml", "ini", "dockerfile"}
"""Fence languages of blocks that are not commands (output, formats, files)."""

OPTIONS = {
    "continues", "file", "background", "expect", "stopped", "run-for", "pool", "members", "ttl", "worker-args",
    "gone", "exit", "timeout", "not-run", "reason",
}  # fmt: skip
CONTEXT_OPTIONS = {"members", "ttl", "worker-args", "gone"}
"""Options that only mean something with ``pool=``."""

DEFAULT_PORT = re.compile(r"\b(?:localhost|127\.0\.0\.1|redis):6379\b")
"""The Redis addresses samples show, replaced by the test server's before a sample runs."""

BIN = Path(sys.executable).parent
"""This checkout's virtualenv's bin (the interpreter running the tests)."""

ERROR_LINE = re.compile(r"^[\w.-]+: error: ")
"""A console block's shown output line that says the command failed (``leaderpool-cli: error: ...``)."""

MARKER = re.compile(r"^\s*<!--\s*sample:(.*?)-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)(?P<info>.*)$")

PYTHON_BOOTSTRAP = """\
import ast, asyncio, inspect, sys
path = sys.argv[1]
with open(path) as f:
    source = f.read()
code = compile(source, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
namespace = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
result = eval(code, namespace)
if inspect.iscoroutine(result):
    asyncio.run(result)
"""
"""Runs a python sample like ``python sample.py``, but with a top-level ``await`` allowed (the
program then runs inside ``asyncio.run``)."""

GUARD = """\
# Written by tests/docs/samples.py: no docs sample may reach a Redis on the default port.
import socket

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _refuse(address):
    if isinstance(address, tuple) and len(address) >= 2 and address[1] == 6379:
        raise ConnectionRefusedError(f"docs samples must not reach port 6379 (asked for {address!r})")


def connect(self, address):
    _refuse(address)
    return _connect(self, address)


def connect_ex(self, address):
    _refuse(address)
    return _connect_ex(self, address)


socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
"""
"""A ``sitecustomize`` on every sample's PYTHONPATH: a Python process there (a sample, a worker, the
CLI) cannot connect to port 6379, whatever the sample says."""


class SampleError(Exception):
    """A block or marker the runner cannot take (bad option, untyped fence, a broken chain)."""


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    """1-based line of the opening fence."""
    language: str
    code: str
    options: dict[str, str]
    marked: bool
    """A ``<!-- sample: ... -->`` comment stands right before the block."""

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Sample:
    """What one test runs: one block, or several chained with ``continues``, with the page's
    file blocks so far."""

    page: str
    kind: str
    """python, shell or console."""
    blocks: list[Block]
    files: list[Block] = field(default_factory=list)
    """Every file block of the page up to this sample, written before it runs."""
    own_files: list[Block] = field(default_factory=list)
    """The file blocks this sample's test covers (those right before it)."""
    options: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.blocks[0].where

    @property
    def not_run(self) -> str | None:
        return self.options.get("reason") if "not-run" in self.options else None

    @property
    def covered(self) -> list[Block]:
        return [*self.own_files, *self.blocks]


# ---- finding the blocks ----


def parse_marker(text: str, where: str) -> dict[str, str]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise SampleError(f"{where}: marker {text!r}: {exc}") from None
    options: dict[str, str] = {}
    for word in words:
        key, eq, value = word.partition("=")
        if key not in OPTIONS:
            raise SampleError(f"{where}: unknown sample option {key!r} (known: {', '.join(sorted(OPTIONS))})")
        options[key] = value if eq else ""
    return options


def blocks_of(page: str, text: str | None = None) -> list[Block]:
    """Every fenced block of a page, with the options of the marker right before it."""
    lines = (text if text is not None else (ROOT / page).read_text()).splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, info = m["indent"], m["fence"], m["info"].strip()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines):
            close = FENCE.match(lines[i])
            closing = close and close["fence"].startswith(fence[0]) and len(close["fence"]) >= len(fence)
            if closing and close is not None and not close["info"].strip():
                break
            line = lines[i]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            i += 1
        else:
            raise SampleError(f"{page}:{start + 1}: the fence is never closed")
        i += 1
        language = info.split()[0] if info else ""
        options: dict[str, str] = {}
        marked = False
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j >= 0 and (marker := MARKER.match(lines[j])):
            options, marked = parse_marker(marker.group(1), f"{page}:{start + 1}"), True
        blocks.append(Block(page, start + 1, language, "\n".join(body) + "\n", options, marked))
    return blocks


def samples_of(page: str, text: str | None = None) -> list[Sample]:
    """The samples of one page, in page order; raises SampleError for what cannot be run."""
    samples: list[Sample] = []
    files: list[Block] = []
    pending_files: list[Block] = []
    for block in blocks_of(page, text):
        if not block.language:
            raise SampleError(f"{block.where}: a fence without a language (python, sh, console, text, json, ...)")
        kind = SAMPLE_LANGUAGES.get(block.language)
        if "file" in block.options:
            if set(block.options) != {"file"}:
                raise SampleError(f"{block.where}: a file block takes no other option")
            files.append(block)
            pending_files.append(block)
            continue
        if kind is None:
            if block.language not in OTHER_LANGUAGES:
                raise SampleError(f"{block.where}: unknown fence language {block.language!r}")
            if block.marked:
                raise SampleError(f"{block.where}: a {block.language} block is not a sample: no marker")
            continue
        options = block.options
        unknown_context = CONTEXT_OPTIONS & set(options)
        if unknown_context and "pool" not in options and "continues" not in options:
            raise SampleError(f"{block.where}: {', '.join(sorted(unknown_context))} need pool=")
        if "not-run" in options:
            if not options.get("reason", "").strip():
                raise SampleError(f'{block.where}: not-run needs reason="why it cannot run here"')
            if set(options) != {"not-run", "reason"}:
                raise SampleError(f"{block.where}: not-run takes only a reason")
        elif "reason" in options:
            raise SampleError(f"{block.where}: reason= goes with not-run")
        if "continues" in options:
            if not samples or pending_files:
                raise SampleError(f"{block.where}: continues, but no sample right before it on the page")
            previous = samples[-1]
            if previous.kind != kind or previous.not_run:
                raise SampleError(f"{block.where}: continues a {previous.kind} sample that it cannot join")
            previous.blocks.append(block)
            previous.options.update({k: v for k, v in options.items() if k != "continues"})
            continue
        samples.append(Sample(page, kind, [block], list(files), pending_files, dict(options)))
        pending_files = []
    if pending_files:
        raise SampleError(f"{pending_files[0].where}: a file block with no sample after it on the page")
    for sample in samples:
        if "background" in sample.options and not ({"expect", "run-for"} & set(sample.options)):
            raise SampleError(f"{sample.id}: background needs expect=RE or run-for=SECONDS")
        if "background" in sample.options and sample.kind == "console":
            raise SampleError(f"{sample.id}: a console block cannot run in the background")
    return samples


def collect() -> list[Sample]:
    return [sample for page in PAGES for sample in samples_of(page)]


# ---- running them ----


def substitute(code: str, port: int) -> str:
    return DEFAULT_PORT.sub(f"127.0.0.1:{port}", code)


@dataclass
class Outcome:
    returncode: int
    output: str

    def describe(self) -> str:
        return f"exit {self.returncode}; output:\n{self.output[-6000:]}"


def run_sample(sample: Sample, directory: Path) -> None:
    """Run one sample; raises AssertionError (with the output) when it does not behave."""
    assert sample.not_run is None, f"{sample.id} is not run: {sample.not_run}"
    server = RedisServer().start()
    try:
        env = sample_env(directory, server)
        code = substitute("".join(b.code for b in sample.blocks), server.port)
        assert not re.search(r"\b6379\b", code), f"{sample.id}: the sample would reach a Redis on port 6379:\n{code}"
        for file in sample.files:
            path = directory / file.options["file"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(substitute(file.code, server.port))
            if file.code.startswith("#!"):
                path.chmod(0o755)
        with context(sample, directory, env):
            if sample.kind == "console":
                run_console(sample, code, directory, env)
            elif "background" in sample.options:
                run_background(sample, code, directory, env)
            else:
                run_foreground(sample, code, directory, env)
    finally:
        server.cleanup()


def sample_env(directory: Path, server: RedisServer) -> dict[str, str]:
    guard = directory / ".guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD)
    return clean_env(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=f"{directory}{os.pathsep}{guard}",
        PYTHONUNBUFFERED="1",
        LEADERPOOL_REDIS_URL=server.url,
        VIRTUAL_ENV=str(BIN.parent),
        HOME=os.environ.get("HOME", str(directory)),
    )


def timeout_of(sample: Sample, default: float = 30.0) -> float:
    return float(sample.options.get("timeout") or default)


def command_of(sample: Sample, code: str, directory: Path) -> list[str]:
    if sample.kind == "python":
        (directory / "sample.py").write_text(code)
        return [sys.executable, "-c", PYTHON_BOOTSTRAP, "sample.py"]
    (directory / "sample.sh").write_text("set -eo pipefail\n" + code)
    return ["bash", "sample.sh"]


def start(argv: list[str], directory: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, cwd=directory, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def stop_group(proc: subprocess.Popen[bytes], grace: float = 10.0) -> int | None:
    """SIGTERM the process's group, up to ``grace`` s for the process to exit, then SIGKILL for
    whatever is left of the group. The process's exit code, None if it had to be killed."""
    code: int | None = None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        code = proc.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return code


def check_output(sample: Sample, outcome: Outcome) -> None:
    want = int(sample.options.get("exit") or 0)
    assert want == outcome.returncode, f"{sample.id}: expected exit {want}, got {outcome.describe()}"
    if pattern := sample.options.get("expect"):
        assert re.search(pattern, outcome.output, re.MULTILINE), (
            f"{sample.id}: the output does not match {pattern!r}: {outcome.describe()}"
        )


def run_foreground(sample: Sample, code: str, directory: Path, env: dict[str, str]) -> None:
    log = directory / "output.log"
    proc = start(command_of(sample, code, directory), directory, env, log)
    limit = timeout_of(sample)
    try:
        returncode = proc.wait(limit)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        raise AssertionError(f"{sample.id}: still running after {limit:g}s; output:\n{log.read_text()}") from None
    stop_group(proc, grace=5.0)  # whatever it left running in the background
    if os.environ.get("DOCS_SAMPLES_SHOW"):
        print(log.read_text(errors="replace"))
    check_output(sample, Outcome(returncode, log.read_text(errors="replace")))


def logical_lines(code: str) -> list[str]:
    """A shell block's commands: continued lines joined, blank and comment lines left out."""
    commands: list[str] = []
    current = ""
    for line in code.splitlines():
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip() and not current.lstrip().startswith("#"):
            commands.append(current.strip())
        current = ""
    return commands


def run_background(sample: Sample, code: str, directory: Path, env: dict[str, str]) -> None:
    """Start each command (or the program), wait until each printed ``expect`` (and/or ran for
    ``run-for`` seconds), then SIGTERM each and check how it ended."""
    if sample.kind == "python":
        argvs = [command_of(sample, code, directory)]
    else:
        argvs = [["bash", "-c", command] for command in logical_lines(code)]
    pattern = sample.options.get("expect")
    run_for = float(sample.options.get("run-for") or 0)
    limit = timeout_of(sample, 20.0)
    started: list[tuple[subprocess.Popen[bytes], Path, str]] = []
    try:
        for n, argv in enumerate(argvs):
            log = directory / f"background-{n}.log"
            started.append((start(argv, directory, env, log), log, argv[-1]))
        deadline = time.monotonic() + limit
        began = time.monotonic()
        waiting = list(started)
        while waiting:
            for item in list(waiting):
                proc, log, what = item
                text = log.read_text(errors="replace")
                if proc.poll() is not None:
                    raise AssertionError(f"{sample.id}: {what!r} ended (exit {proc.returncode}) early:\n{text}")
                if (pattern is None or re.search(pattern, text, re.MULTILINE)) and time.monotonic() >= began + run_for:
                    waiting.remove(item)
            if waiting and time.monotonic() > deadline:
                proc, log, what = waiting[0]
                raise AssertionError(
                    f"{sample.id}: {what!r} printed nothing matching {pattern!r} within {limit:g}s:\n"
                    + log.read_text(errors="replace")
                )
            time.sleep(0.05)
    finally:
        codes = [(stop_group(proc), log, what) for proc, log, what in started]
    stopped = sample.options.get("stopped")
    for code_, log, what in codes:
        assert code_ in (0, -signal.SIGTERM, 128 + signal.SIGTERM), (
            f"{sample.id}: {what!r} did not stop cleanly on SIGTERM (exit {code_}):\n{log.read_text(errors='replace')}"
        )
        if stopped is not None:
            text = log.read_text(errors="replace")
            assert re.search(stopped, text, re.MULTILINE), f"{sample.id}: {what!r} ended without {stopped!r}:\n{text}"


@dataclass
class ConsoleCommand:
    command: str
    shown: list[str]
    """The output lines shown under it."""


def console_commands(code: str, where: str) -> list[ConsoleCommand]:
    commands: list[ConsoleCommand] = []
    lines = code.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("$ "):
            command = line[2:]
            while command.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command.rstrip()[:-1] + " " + lines[i].strip()
            commands.append(ConsoleCommand(command, []))
        elif commands:
            commands[-1].shown.append(line)
        elif line.strip():
            raise SampleError(f"{where}: a console block starts with '$ COMMAND', not {line!r}")
        i += 1
    if not commands:
        raise SampleError(f"{where}: a console block without a '$ ' command")
    return commands


def run_console(sample: Sample, code: str, directory: Path, env: dict[str, str]) -> None:
    commands = console_commands(code, sample.id)
    out = directory / ".console"
    out.mkdir()
    script = []
    for n, c in enumerate(commands):
        script.append(f"{{ {c.command}\n}} > .console/{n}.out 2> .console/{n}.err; echo $? > .console/{n}.rc")
    outcome_log = directory / "console.log"
    proc = start(["bash", "-c", "\n".join(script)], directory, env, outcome_log)
    limit = timeout_of(sample)
    try:
        proc.wait(limit)
    except subprocess.TimeoutExpired:
        stop_group(proc)
        done = [c.command for n, c in enumerate(commands) if (out / f"{n}.rc").exists()]
        raise AssertionError(f"{sample.id}: still running after {limit:g}s (finished: {done})") from None
    stop_group(proc, grace=5.0)
    transcript: list[str] = []
    for n, c in enumerate(commands):
        rc = int((out / f"{n}.rc").read_text())
        stdout, stderr = (out / f"{n}.out").read_text(errors="replace"), (out / f"{n}.err").read_text(errors="replace")
        transcript.append(f"$ {c.command}\n{stdout}{stderr}(exit {rc})")
        errors = [line.strip() for line in c.shown if ERROR_LINE.match(line)]
        if errors:
            assert rc != 0, f"{sample.id}: {c.command!r} should fail, as shown:\n" + "\n".join(transcript)
            for line in errors:
                assert line in stderr, (
                    f"{sample.id}: {c.command!r} does not print {line!r}; it printed:\n{stderr}{stdout}"
                )
        else:
            assert rc == 0, f"{sample.id}: {c.command!r} failed:\n" + "\n".join(transcript)
        printed = [parsed for line in stdout.splitlines() if (parsed := json_container(line)) is not None]
        for line in c.shown:
            shown = json_container(line)
            assert shown is None or shown in printed, (
                f"{sample.id}: {c.command!r} shows {line.strip()}, but printed:\n{stdout}{stderr}"
            )
    if os.environ.get("DOCS_SAMPLES_SHOW"):
        print("\n".join(transcript))
    if pattern := sample.options.get("expect"):
        text = "\n".join(transcript)
        assert re.search(pattern, text, re.MULTILINE), f"{sample.id}: no match for {pattern!r} in:\n{text}"


def json_container(line: str) -> object:
    """A line's JSON object or array, None for any other line."""
    if not line.strip().startswith(("{", "[")):
        return None
    try:
        value: object = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, (dict, list)) else None


# ---- the pool= context ----


@contextlib.contextmanager
def context(sample: Sample, directory: Path, env: dict[str, str]) -> Iterator[None]:
    """Workers in the sample's ``pool=``, the first leading; stopped afterwards."""
    pool = sample.options.get("pool")
    if not pool:
        yield
        return
    members = (sample.options.get("members") or "a,b").split(",")
    ttl = sample.options.get("ttl") or "1"
    extra = shlex.split(sample.options.get("worker-args", ""))
    children: list[Child] = []
    try:
        for n, member in enumerate(members):
            argv = [str(BIN / "leaderpool-worker"), "--pool", pool, "--member-id", member, "--ttl", ttl]
            child = Child([*argv, "--json-events", *extra], name=member, env=env, cwd=directory)
            children.append(child)
            wait_until(child, "elected" if n == 0 else "leader", members[0])
        if "gone" in sample.options:
            for child in children:
                child.kill()
            time.sleep(float(ttl) + 0.3)  # their leases run out on Redis's clock
        yield
    finally:
        for child in children:
            child.close(grace=5.0)


def wait_until(child: Child, kind: str, leader: str, timeout: float = 20.0) -> None:
    """Until the context worker prints a ``kind`` event naming ``leader``; fails at once, with
    its stderr, should it exit first."""
    deadline = time.monotonic() + timeout
    while not any(e["event"] == kind and e["member"] == leader for e in child.events):
        if not child.alive():
            raise AssertionError(f"context worker {child.name} exited ({child.proc.returncode}):\n{child.stderr}")
        if time.monotonic() > deadline:
            raise AssertionError(f"context worker {child.name}: no {kind} event within {timeout:g}s:\n{child.stderr}")
        time.sleep(0.02)


def check_json(block: Block) -> None:
    """A json block is one document, or one per line."""
    try:
        json.loads(block.code)
        return
    except ValueError:
        pass
    for n, line in enumerate(block.code.splitlines()):
        if line.strip():
            try:
                json.loads(line)
            except ValueError as exc:
                raise AssertionError(f"{block.page}:{block.line + 1 + n}: not JSON: {exc}: {line}") from None
