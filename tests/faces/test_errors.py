"""Backend errors are classified and translated in one module (leaderpool.errors)."""

from __future__ import annotations

import asyncio

import pytest
import redis.exceptions

from leaderpool.backend.redis_errors import Failure, auth_failure_code, classify, translate
from leaderpool.errors import RedisAuthFailed, RedisUnavailable, ScriptError


class TestClassify:
    @pytest.mark.parametrize(
        ("exc", "kind"),
        [
            (asyncio.TimeoutError(), Failure.TIMEOUT),
            (redis.exceptions.TimeoutError("slow"), Failure.TIMEOUT),
            (redis.exceptions.ConnectionError("refused"), Failure.UNAVAILABLE),
            (redis.exceptions.ReadOnlyError("replica"), Failure.UNAVAILABLE),
            (redis.exceptions.AuthenticationError("invalid username-password pair"), Failure.AUTH),
            (redis.exceptions.NoPermissionError("no permissions to run 'evalsha'"), Failure.AUTH),
            (redis.exceptions.ResponseError("WRONGPASS invalid username-password pair"), Failure.AUTH),
            (redis.exceptions.ResponseError("NOAUTH Authentication required."), Failure.AUTH),
            (ScriptError("boom", script="claim"), Failure.SCRIPT),
            (redis.exceptions.ResponseError("ERR something else"), Failure.OTHER),
        ],
    )
    def test_kinds(self, exc: BaseException, kind: Failure) -> None:
        assert kind is classify(exc)

    def test_the_auth_code_is_named_even_when_redis_py_stripped_it(self) -> None:
        assert "NOPERM" == auth_failure_code(redis.exceptions.NoPermissionError("no permissions"))
        assert "NOAUTH" == auth_failure_code(redis.exceptions.ResponseError("NOAUTH Authentication required."))
        assert auth_failure_code(redis.exceptions.ResponseError("ERR unknown command")) is None


class TestTranslate:
    def test_an_error_reply_to_a_script_is_a_script_error_naming_it(self) -> None:
        error = translate(redis.exceptions.ResponseError("ERR user_script:1: boom"), script="heartbeat", pool="p")
        assert isinstance(error, ScriptError)
        assert ("heartbeat", "p") == (error.script, error.pool)

    def test_a_refused_command_in_a_script_is_an_auth_failure_not_a_bug(self) -> None:
        error = translate(redis.exceptions.NoPermissionError("no permissions"), script="heartbeat")
        assert isinstance(error, RedisAuthFailed) and "NOPERM" == error.code

    def test_connection_failures_are_unavailable(self) -> None:
        assert isinstance(translate(redis.exceptions.ConnectionError("refused")), RedisUnavailable)

    def test_other_errors_are_not_translated_outside_scripts(self) -> None:
        assert translate(redis.exceptions.ResponseError("ERR wrong type")) is None
