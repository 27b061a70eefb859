"""Redis errors that are configuration, not an outage: a refused password, a user without the
ACL permissions, rediss:// to a plain-text server. The CLI and the worker each say so in one line
and exit 2 at start; an unreachable Redis stays exit 1 for the CLI and a retry for the worker."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis
import redis.exceptions

from leaderpool.console import preflight
from leaderpool.testing.redis_server import RedisServer, free_port
from tests.support.worker_procs import ROOT, WorkerProc, clean_env, eventually
from tests.support.worker_procs import cli as run_cli

PASSWORD = "s3cret"


@pytest.fixture
def locked_server(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The test server with a password, a user with no permissions, and one allowed PING only."""
    admin = redis.Redis(port=redis_server.port)
    admin.execute_command("ACL", "SETUSER", "nobody", "on", ">pw", "-@all", "~*")
    admin.execute_command("ACL", "SETUSER", "pinger", "on", ">pw", "-@all", "+ping", "+hello", "~*")
    admin.config_set("requirepass", PASSWORD)
    admin.close()
    yield redis_server


def url(server: RedisServer, userinfo: str = "", scheme: str = "redis") -> str:
    return f"{scheme}://{userinfo}127.0.0.1:{server.port}/0"


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert 1 == len(lines), done.stderr
    return lines[0]


def worker(redis_url: str) -> subprocess.CompletedProcess[str]:
    args = ["--redis", redis_url, "--pool", "p", "--member-id", "a", "--ttl", "1"]
    return subprocess.run(
        [sys.executable, "-m", "leaderpool.worker", *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env=clean_env(),
    )  # fmt: skip


class TestCredentials:
    def test_a_wrong_password_is_exit_2_naming_wrongpass(self, locked_server: RedisServer) -> None:
        """Not 'cannot reach Redis': the line names WRONGPASS and leaves the password out."""
        target = url(locked_server, ":wrong@")
        done = run_cli("--redis", target, "status")
        assert 2 == done.returncode
        where = url(locked_server)
        assert (
            f"leaderpool-cli: error: Redis at {where} refused the credentials (WRONGPASS): "
            "check the URL's user and password"
        ) == one_error_line(done)

    def test_a_missing_password_is_exit_2_naming_noauth(self, locked_server: RedisServer) -> None:
        for command in (["status"], ["history", "p"], ["doctor"]):
            done = run_cli("--redis", url(locked_server), *command)
            assert 2 == done.returncode, command
            assert "requires a password (NOAUTH)" in one_error_line(done), command

    def test_the_right_password_works(self, locked_server: RedisServer) -> None:
        done = run_cli("--redis", url(locked_server, f":{PASSWORD}@"), "status")
        assert (0, "no pools found\n") == (done.returncode, done.stdout), done.stderr

    def test_the_worker_exits_2_at_start_instead_of_retrying(self, locked_server: RedisServer) -> None:
        done = worker(url(locked_server, ":wrong@"))
        assert 2 == done.returncode
        assert one_error_line(done).startswith(
            f"leaderpool-worker: error: Redis at {url(locked_server)} refused the credentials (WRONGPASS)"
        )


class TestPermissions:
    def test_a_user_without_permissions_is_exit_2_naming_noperm(self, locked_server: RedisServer) -> None:
        done = run_cli("--redis", url(locked_server, "nobody:pw@"), "status")
        assert 2 == done.returncode
        line = one_error_line(done)
        assert line.startswith(f"leaderpool-cli: error: Redis at {url(locked_server, 'nobody@')} refused a command")
        assert "NOPERM" in line and "pw@" not in line

    def test_a_user_who_may_only_ping_fails_on_the_first_script(self, locked_server: RedisServer) -> None:
        done = run_cli("--redis", url(locked_server, "pinger:pw@"), "status", "--pool", "p")
        assert 2 == done.returncode
        assert "NOPERM" in one_error_line(done)

    def test_the_worker_exits_2_at_start(self, locked_server: RedisServer) -> None:
        done = worker(url(locked_server, "nobody:pw@"))
        assert 2 == done.returncode
        assert "NOPERM" in one_error_line(done)


class TestTls:
    def test_rediss_to_a_plain_text_server_says_so_at_once(self, redis_server: RedisServer) -> None:
        """Not a 5 s 'Timeout connecting to server': the plain-text answer is recognised first."""
        target = url(redis_server, scheme="rediss")
        done = run_cli("--redis", target, "status")
        assert 2 == done.returncode
        assert (
            f"leaderpool-cli: error: Redis at {target} answers in plain text, not TLS: use redis:// for this "
            "server (or turn TLS on in the server)"
        ) == one_error_line(done)
        started = worker(target)
        assert 2 == started.returncode
        assert "answers in plain text, not TLS" in one_error_line(started)

    def test_an_ssl_error_is_a_tls_problem(self) -> None:
        failure = redis.exceptions.ConnectionError("Error connecting")
        failure.__cause__ = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
        problem = preflight.classify(failure, "rediss://h:1/0")
        assert problem is not None and ("tls", True) == (problem.kind, problem.is_config)
        assert "the TLS handshake failed" in problem.message

    def test_a_handshake_timeout_on_rediss_is_a_tls_problem(self) -> None:
        failure = redis.exceptions.TimeoutError("Timeout connecting to server")
        failure.__context__ = TimeoutError("_ssl.c:989: The handshake operation timed out")
        problem = preflight.classify(failure, "rediss://h:1/0")
        assert problem is not None and "tls" == problem.kind


class TestClassification:
    @pytest.mark.parametrize(
        ("error", "kind"),
        [
            (redis.exceptions.ResponseError("WRONGPASS invalid username-password pair"), "auth"),
            (redis.exceptions.ResponseError("NOAUTH Authentication required."), "auth"),
            (
                redis.exceptions.ResponseError("NOPERM this user has no permissions to run the 'eval' command"),
                "permission",
            ),
            (redis.exceptions.NoPermissionError("this user has no permissions"), "permission"),
            (redis.exceptions.AuthorizationError("not allowed"), "permission"),
            (redis.exceptions.AuthenticationError("invalid username-password pair"), "auth"),
            (redis.exceptions.ConnectionError("Error 111 connecting"), "unreachable"),
            (redis.exceptions.TimeoutError("Timeout reading from socket"), "unreachable"),
        ],
    )
    def test_each_failure_has_one_kind(self, error: Exception, kind: str) -> None:
        problem = preflight.classify(error, "redis://:pw@h:1/0")
        assert problem is not None
        assert (kind, kind != "unreachable") == (problem.kind, problem.is_config)
        assert "pw" not in problem.message

    def test_other_errors_are_not_classified(self) -> None:
        assert preflight.classify(redis.exceptions.ResponseError("ERR unknown command"), "redis://h/0") is None
        assert preflight.classify(ValueError("bug"), "redis://h/0") is None

    def test_an_unreachable_redis_does_not_stop_a_worker_at_start(self) -> None:
        """The worker's start-up check is fatal only for configuration: it keeps retrying an outage."""
        target = f"redis://127.0.0.1:{free_port()}/0"
        assert "unreachable" == getattr(preflight.check(target), "kind", None)
        args = ["--redis", target, "--pool", "p", "--member-id", "a", "--json-events"]
        with WorkerProc(args, clean_env(), "a") as proc:
            eventually(lambda: "redis_unavailable" in proc.stderr)  # it got past the check and retries
            assert proc.alive()

    @pytest.mark.parametrize(
        ("given", "shown"),
        [
            ("redis://:pw@h:1/0?db=2", "redis://h:1/0?db=2"),
            ("redis://user:pw@h:1/3", "redis://user@h:1/3"),
            ("redis://h:1/0", "redis://h:1/0"),
            ("unix:///tmp/r.sock?db=1", "unix:///tmp/r.sock?db=1"),
        ],
    )
    def test_urls_are_shown_as_given_without_the_password(self, given: str, shown: str) -> None:
        assert shown == preflight.redact(given)


def test_checking_a_url_does_not_import_redis_py() -> None:
    """The CLI checks its --redis argument with the library's rule, which needs no redis-py."""
    code = (
        "import sys; from leaderpool.backend.urls import validate_redis_url; "
        "validate_redis_url('redis://h:1/2'); print(sorted(m for m in sys.modules if m.split('.')[0] == 'redis'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (0, "[]") == (done.returncode, done.stdout.strip())
