"""No credential in any error, log line or output, whatever the URL looks like: passwords holding
``/ ? # @ : %`` (base64 often holds ``/``), written into the URL as they are or percent-encoded,
with the server reachable, closed, or the URL unusable."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
import redis

from leaderpool.backend.clients import describe
from leaderpool.backend.urls import redact, validate_redis_url
from leaderpool.errors import ConfigError
from leaderpool.testing.redis_server import RedisServer
from tests.support.security_helpers import acl_server
from tests.support.worker_procs import cli, workers_for

SECRETS = (
    "kX9/vQ+7eR==",  # the issue's: base64 with a slash
    "Zm9v/YmFy?cXV4#",
    "aQ7?bZ3=cW1&dV8",
    "hq4#tg9z",
    "aT7@sG2n@tW1c",
    "cQ5:lZ8:nK2",
    "pZ4%cN7%2F",
    "sJ6/aW3h@xQ9?yR2#zT5",
)
"""Each piece between delimiters distinctive, so a search for it cannot match a log's words."""


def _urls(secret: str, port: int = 6379) -> list[str]:
    return [
        f"redis://app:{secret}@127.0.0.1:{port}/0",
        f"redis://:{secret}@127.0.0.1:{port}/0",
        f"rediss://app:{secret}@127.0.0.1:{port}/0?ssl_cert_reqs=none",
        f"redis+sentinel://app:{secret}@127.0.0.1:{port},127.0.0.2/m/0",
        f"redis+cluster://app:{secret}@127.0.0.1:{port}",
        f"redis:app:{secret}@127.0.0.1:{port}/0",
        f"app:{secret}@127.0.0.1:{port}",
    ]


def _pieces(secret: str) -> list[str]:
    """The secret and its parts of 3 characters or more between URL delimiters (a part alone,
    like ``vQ+7eR==``, is a leak too)."""
    parts = [secret]
    for sep in "/?#@:&=%":
        parts = [p for part in parts for p in part.split(sep)]
    return [secret, *(p for p in parts if len(p) >= 3)]


def _leaks(secret: str, text: str) -> list[str]:
    return [p for p in _pieces(secret) if p in text]


class TestRedact:
    @pytest.mark.parametrize("secret", SECRETS)
    def test_no_piece_of_a_password_survives_redact_or_an_error(self, secret: str) -> None:
        """redact(), describe() and every ConfigError of the URL check show no piece of it."""
        for url in _urls(secret):
            shown = [redact(url)]
            for check in (validate_redis_url, describe):
                try:
                    shown.append(str(check(url)) if check is describe else "")
                    check(url)
                except ConfigError as exc:
                    shown.append(str(exc))
            for text in shown:
                assert [] == _leaks(secret, text), (url, text)

    def test_the_issue_url_names_the_host_and_says_what_to_do(self) -> None:
        """The URL of the report: its host shown, the secret not, and how to fix it."""
        url = "redis://app:kX9/vQ+7eR==@10.0.0.5:6379/0"
        assert "redis://app@10.0.0.5:6379/0" == redact(url)
        with pytest.raises(ConfigError) as caught:
            validate_redis_url(url)
        assert "percent-encode" in str(caught.value) and "kX9" not in str(caught.value)

    def test_an_encoded_password_is_kept_whole_and_cut_out(self) -> None:
        """Percent-encoded, every secret parses, and redact shows the user and host alone."""
        for secret in SECRETS:
            url = f"redis://app:{quote(secret, safe='')}@127.0.0.1:6379/0"
            assert url == validate_redis_url(url)
            assert "redis://app@127.0.0.1:6379/0" == redact(url)


@pytest.fixture
def server() -> Iterator[RedisServer]:
    from tests.conftest import REDIS_BINARIES

    s = acl_server(REDIS_BINARIES[0][0])
    try:
        yield s
    finally:
        s.cleanup()


def test_commands_and_workers_never_print_the_password(server: RedisServer) -> None:
    """For each secret: the CLI with the URL as typed (bad URL: exit 2), percent-encoded against
    the server (a user with that password: status works), against a closed port (exit 1) and
    with a wrong password (exit 2); a worker with the URL as typed (debug logs) leads, or stops
    with one line: none of their outputs holds a piece of the secret."""
    admin = redis.Redis(port=server.port)
    try:
        for n, secret in enumerate(SECRETS):
            user = f"u{n}"
            admin.execute_command("ACL", "SETUSER", user, "on", f">{secret}", "~*", "&*", "+@all")
            encoded = f"redis://{user}:{quote(secret, safe='')}@127.0.0.1:{server.port}/0"
            seen = []
            typed = cli("--redis", f"redis://{user}:{secret}@127.0.0.1:{server.port}/0", "status")
            usable = typed.returncode == 0  # an @ or : parses as it is
            assert usable or (2 == typed.returncode and 1 == len(typed.stderr.splitlines())), typed.stderr
            good = cli("--redis", encoded, "status")
            assert 0 == good.returncode, good.stderr
            closed = cli("--redis", encoded.replace(str(server.port), str(server.port + 1)), "status")
            assert 1 == closed.returncode, closed.stderr
            wrong = cli("--redis", f"redis://{user}:{quote(secret + 'x', safe='')}@127.0.0.1:{server.port}/0", "status")
            assert 2 == wrong.returncode and "WRONGPASS" in wrong.stderr, wrong.stderr
            seen += [typed.stdout + typed.stderr, good.stdout + good.stderr, closed.stderr, wrong.stderr]
            with workers_for(f"redis://{user}:{secret}@127.0.0.1:{server.port}/0") as ws:
                worker = ws.start("a", "--log-level", "debug")
                if usable:
                    worker.elected()
                    worker.terminate()
                assert (0 if usable else 2) == worker.wait()
                seen.append(worker.stderr)
            for text in seen:
                assert [] == _leaks(secret, text), (secret, text)
    finally:
        admin.close()
