"""The documentation as a whole: the site builds with ``mkdocs build --strict`` (no broken link or
anchor, no page out of the nav), every fenced block is typed and every sample is run (or listed
here as not run, with its reason), the README stays a front page, and the sample runner itself
fails a sample that misbehaves (tests/docs/samples.py)."""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.samples import (
    PAGES,
    ROOT,
    SAMPLE_LANGUAGES,
    Sample,
    SampleError,
    blocks_of,
    check_json,
    collect,
    run_sample,
    samples_of,
)

NOT_RUN = {
    "README.md": 2,
    "docs/getting-started.md": 2,
    "docs/operations/deploy.md": 4,  # the image build and its load into kind or minikube too
    "docs/operations/chaos-testing.md": 2,
    "docs/benchmarks.md": 1,
    "docs/releasing.md": 1,
    "docs/design/safety.md": 1,
}
"""Blocks not run by the suite, per page: installing packages, `make test` (the suite itself) and
`make demo` (tests/cli/test_demo.py runs it), Docker and Kubernetes, the chaos test of this suite and the
singletons' long chaos run, the
safety report's runs (their short forms are tests of this suite), the benchmarks (their quick mode is
tests/benchmarks/test_benchmarks.py), the nox matrix (the suite again, on each Python). Each has a reason
in its marker; a new one must be added here."""


def test_every_sample_is_run_or_listed_with_its_reason() -> None:
    samples = collect()
    not_run = [s for s in samples if s.not_run is not None]
    assert all(s.not_run and len(s.not_run) > 10 for s in not_run), [s.id for s in not_run]
    assert NOT_RUN == dict(collections.Counter(s.page for s in not_run)), "\n".join(
        f"{s.id}: {s.not_run}" for s in not_run
    )
    assert len(samples) - len(not_run) >= 50, "fewer samples run than the docs had when this was written"


def test_every_sample_block_is_in_exactly_one_sample() -> None:
    covered = collections.Counter(block.where for sample in collect() for block in sample.covered)
    assert all(1 == n for n in covered.values()), covered
    for page in PAGES:
        for block in blocks_of(page):
            if block.language in SAMPLE_LANGUAGES or "file" in block.options:
                assert block.where in covered, f"{block.where} is run by no test"


def test_json_blocks_parse() -> None:
    for page in PAGES:
        for block in blocks_of(page):
            if block.language == "json":
                check_json(block)


def test_the_readme_is_a_front_page() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    assert "make demo" in text and "make test" in text
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def test_the_site_builds_strict(tmp_path: Path) -> None:
    """What `make docs` (and CI) runs: a broken link or anchor, or a page not in the nav, fails."""
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)},
    )
    assert 0 == done.returncode, done.stderr
    assert (tmp_path / "site" / "guide" / "election" / "index.html").exists()


# ---- the runner fails what misbehaves ----


def one(markdown: str) -> Sample:
    (sample,) = samples_of("test.md", markdown)
    return sample


def fails(markdown: str, tmp_path: Path, match: str) -> None:
    with pytest.raises(AssertionError, match=match):
        run_sample(one(markdown), tmp_path)


def test_a_python_sample_that_raises_fails(tmp_path: Path) -> None:
    fails("```python\nraise SystemExit(3)\n```\n", tmp_path, "expected exit 0, got exit 3")


def test_a_sample_that_names_port_6379_is_not_run(tmp_path: Path) -> None:
    fails("```sh\nredis-cli -p 6379 ping\n```\n", tmp_path, "would reach a Redis on port 6379")


def test_a_sample_cannot_reach_port_6379(tmp_path: Path) -> None:
    """The guard in every sample's Python (a sitecustomize), whatever the sample computes."""
    source = "```python\nimport socket\nsocket.create_connection(('127.0.0.1', 6000 + 379))\n```\n"
    fails(source, tmp_path, "must not reach port 6379")


def test_a_console_command_must_print_the_error_it_shows(tmp_path: Path) -> None:
    source = "```console\n$ leaderpool-cli status --pool typo\nleaderpool-cli: error: something else\n```\n"
    fails(source, tmp_path, "does not print 'leaderpool-cli: error: something else'")


def test_a_console_command_must_print_the_json_it_shows(tmp_path: Path) -> None:
    fails('```console\n$ echo \'{"a": 1}\'\n{"a": 2}\n```\n', tmp_path, r'shows \{"a": 2\}')


def test_a_background_command_must_print_what_is_expected(tmp_path: Path) -> None:
    source = "<!-- sample: background expect=never timeout=2 -->\n```sh\nsleep 30\n```\n"
    fails(source, tmp_path, "printed nothing matching 'never' within 2s")


def test_a_sample_runs_against_its_own_redis_with_the_page_files(tmp_path: Path) -> None:
    source = (
        "<!-- sample: file=app/answer.py -->\n```python\nVALUE = 42\n```\n\n"
        "<!-- sample: expect=^42$ -->\n```python\nimport redis\nfrom app.answer import VALUE\n"
        'client = redis.Redis.from_url("redis://localhost:6379/0")\nclient.set("k", VALUE)\n'
        'print(client.get("k").decode())\n```\n'
    )
    run_sample(one(source), tmp_path)


@pytest.mark.parametrize(
    ("markdown", "error"),
    [
        ("```\nls\n```\n", "a fence without a language"),
        ("<!-- sample: not-run -->\n```sh\nls\n```\n", "not-run needs reason"),
        ("<!-- sample: nonsense -->\n```sh\nls\n```\n", "unknown sample option 'nonsense'"),
        ("<!-- sample: continues -->\n```sh\nls\n```\n", "continues, but no sample right before it"),
        ("<!-- sample: file=a.py -->\n```python\nx = 1\n```\n", "a file block with no sample after it"),
        ("<!-- sample: background -->\n```sh\nsleep 1\n```\n", "background needs expect"),
    ],
)
def test_what_the_runner_refuses(markdown: str, error: str) -> None:
    with pytest.raises(SampleError, match=error):
        samples_of("test.md", markdown)


def test_the_faq_says_a_crash_is_replaced_in_milliseconds() -> None:
    """The FAQ's failover answer: with fast failover (the default) a crashed leader's process is
    replaced within milliseconds, not when its lease ends (measured 5-17 ms); only a lost host
    or network waits for the lease."""
    faq = re.sub(r"\s+", " ", (ROOT / "docs" / "faq.md").read_text())
    answer = faq.split("**How fast is a failover?**", 1)[1].split("**", 1)[0]
    crash = answer.split("(a crash, SIGKILL, the OOM killer)", 1)[1].split("When the leader's host", 1)[0]
    assert "within milliseconds" in crash and "not when the lease ends" in crash
    assert "lease ends" in answer.split("When the leader's host", 1)[1]
