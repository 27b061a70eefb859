"""Credentials stay out of logs, outputs, error lines and the process list: the URL or the
password come from a file or the environment, and every URL shown has its password cut out."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from leaderpool.backend.urls import redact
from leaderpool.console import credentials
from leaderpool.console.args import Options, UsageError
from leaderpool.testing.redis_server import RedisServer
from tests.support.security_helpers import PASSWORD, acl_server, add_user
from tests.support.worker_procs import cli, workers_for

DEFAULT = "redis://localhost:6379/0"


def resolve(environ: dict[str, str], **flags: str) -> str:
    ns = argparse.Namespace(**{"redis": None, "redis_url_file": None, "redis_password_file": None, **flags})
    return credentials.redis_url(Options(ns, environ), DEFAULT)


class TestWhereTheUrlComesFrom:
    def test_a_password_file_goes_into_the_url_for_its_user(self, tmp_path: Path) -> None:
        """The URL names the user; the password, from a file, joins it in memory."""
        secret = tmp_path / "password"
        secret.write_text("p@ss/word\n")
        url = resolve({}, redis="redis://app@h:1/0", redis_password_file=str(secret))
        assert "redis://app:p%40ss%2Fword@h:1/0" == url
        assert "redis://app@h:1/0" == redact(url)

    def test_the_password_variable_and_a_url_file(self, tmp_path: Path) -> None:
        """LEADERPOOL_REDIS_URL_FILE holds the URL, LEADERPOOL_REDIS_PASSWORD the password."""
        (tmp_path / "url").write_text("redis://h:2/3")
        env = {"LEADERPOOL_REDIS_URL_FILE": str(tmp_path / "url"), "LEADERPOOL_REDIS_PASSWORD": "pw"}
        assert "redis://:pw@h:2/3" == resolve(env)

    def test_a_unix_socket_url_takes_the_password_as_an_option(self) -> None:
        assert "unix:///run/r.sock?password=pw" == resolve(
            {"LEADERPOOL_REDIS_PASSWORD": "pw"}, redis="unix:///run/r.sock"
        )
        assert "unix:///r.sock?db=2&password=p%26w" == resolve(
            {"LEADERPOOL_REDIS_PASSWORD": "p&w"}, redis="unix:///r.sock?db=2"
        )

    def test_a_flag_wins_over_a_variable(self, tmp_path: Path) -> None:
        (tmp_path / "url").write_text("redis://from-file:1/0")
        assert "redis://flag:1/0" == resolve(
            {"LEADERPOOL_REDIS_URL_FILE": str(tmp_path / "url")}, redis="redis://flag:1/0"
        )

    @pytest.mark.parametrize(
        ("env", "flags", "problem"),
        [
            ({}, {"redis": "redis://h/0", "redis_url_file": "/x"}, "argument --redis-url-file: give the URL one way"),
            ({}, {"redis_url_file": "/no/such/file"}, "argument --redis-url-file: cannot read /no/such/file"),
            ({"LEADERPOOL_REDIS_PASSWORD": "x"}, {"redis": "redis://:y@h/0"}, "has a password already"),
            ({"LEADERPOOL_REDIS_PASSWORD": ""}, {}, "argument LEADERPOOL_REDIS_PASSWORD: is empty"),
            ({}, {"redis": "unix:/run/r.sock"}, "redis URL 'unix:/run/r.sock' lacks '//' after 'unix:'"),
            (
                {},
                {"redis": "redis://u:" + PASSWORD + "@h:99999/0"},
                "redis URL 'redis://u@h:99999/0' has an invalid port",
            ),
        ],
    )
    def test_bad_input_is_one_line_naming_the_argument_never_the_secret(
        self, env: dict[str, str], flags: dict[str, str], problem: str
    ) -> None:
        with pytest.raises(UsageError) as caught:
            resolve(env, **flags)
        assert problem in str(caught.value)
        assert PASSWORD not in str(caught.value)

    def test_redact_cuts_every_password_out(self) -> None:
        for url, shown in [
            ("redis://u:pw@h:1/0", "redis://u@h:1/0"),
            ("rediss://:pw@h/0?ssl_ca_certs=/ca.pem", "rediss://h/0?ssl_ca_certs=/ca.pem"),
            ("unix:///r.sock?db=1&password=pw", "unix:///r.sock?db=1&password=..."),
            (
                "redis+sentinel://u:pw@a:1,b:2/m?sentinel_password=pw",
                "redis+sentinel://u@a:1,b:2/m?sentinel_password=...",
            ),
        ]:
            assert shown == redact(url)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    from tests.conftest import REDIS_BINARIES

    s = acl_server(REDIS_BINARIES[0][0])
    try:
        yield s
    finally:
        s.cleanup()


def test_the_password_shows_nowhere(server: RedisServer, tmp_path: Path) -> None:
    """A worker given its password in a file: not in its argv (/proc/PID/cmdline), logs (debug,
    JSON) or events; not in ``status`` (text, JSON), ``doctor``, nor in the lines of failed
    commands (unknown pool, wrong password, unreachable Redis, bad URL)."""
    admin = redis.Redis(port=server.port)
    add_user(admin, "app")
    admin.close()
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    url = f"redis://app@127.0.0.1:{server.port}/0"
    seen: list[str] = []
    with workers_for(url) as ws:
        a = ws.start("a", "--redis-password-file", str(secret), "--log-level", "debug", "--log-format", "json")
        a.elected()
        cmdline = Path(f"/proc/{a.pid}/cmdline").read_bytes().decode()
        assert str(secret) in cmdline
        seen.append(cmdline)
        env = {"LEADERPOOL_REDIS_PASSWORD": PASSWORD}
        for args, code in [
            (["status"], 0),
            (["status", "--json"], 0),
            (["doctor"], None),
            (["history", "p"], 0),
            (["status", "--pool", "nope"], 1),
            (["evict", "p", "nobody"], 1),
        ]:
            done = cli("--redis", url, *args, env=env)
            assert code is None or code == done.returncode, (args, done.stderr)
            seen += [done.stdout, done.stderr]
        wrong = cli("--redis", url, "status", env={"LEADERPOOL_REDIS_PASSWORD": PASSWORD + "x"})
        assert 2 == wrong.returncode and "WRONGPASS" in wrong.stderr
        closed = cli("--redis", f"redis://app@127.0.0.1:{server.port + 1}/0", "status", env=env)
        assert 1 == closed.returncode and "redis://app@127.0.0.1" in closed.stderr
        bad = cli("--redis", f"redis://app:{PASSWORD}@127.0.0.1:99999/0", "status")
        assert 2 == bad.returncode
        seen += [wrong.stderr, closed.stderr, bad.stderr]
        a.terminate()
        assert 0 == a.wait()
        logs = a.stderr
        seen += [logs, "\n".join(str(e) for e in a.events)]
    assert "worker_started" in logs and "elected" in logs
    leaks = [text for text in seen if PASSWORD in text]
    assert [] == leaks
