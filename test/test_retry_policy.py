"""The retry policy as a value: delays, counts, what counts as transient. No network."""

import logging
import ssl

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
)

from s3po import RetryPolicy
from s3po.errors import ChecksumMismatch
from s3po.retry import is_transient


def client_error(code, status):
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


class FakeClock:
    def __init__(self):
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)


@pytest.mark.parametrize("exc, transient", [
    (client_error("SlowDown", 503), True),
    (client_error("InternalError", 500), True),
    (client_error("ServiceUnavailable", 503), True),
    (client_error("RequestTimeout", 400), True),
    (client_error("Throttling", 400), True),
    (client_error("BadDigest", 400), True),
    (client_error("Whatever", 502), True),
    (client_error("Whatever", 504), True),
    (client_error("NoSuchKey", 404), False),
    (client_error("NoSuchBucket", 404), False),
    (client_error("AccessDenied", 403), False),
    (client_error("InvalidArgument", 400), False),
    (client_error("404", 404), False),
    (EndpointConnectionError(endpoint_url="http://x"), True),
    (ConnectTimeoutError(endpoint_url="http://x"), True),
    (ReadTimeoutError(endpoint_url="http://x"), True),
    (ResponseStreamingError(error="cut"), True),
    (IncompleteReadError(actual_bytes=1, expected_bytes=2), True),
    (ChecksumMismatch("md5"), True),
    (ConnectionResetError(), True),
    (TimeoutError(), True),
    # botocore's standard mode retries TLS failures: an EOF mid-handshake is transient,
    # a certificate that does not verify is not.
    (SSLError(endpoint_url="https://x", error="EOF occurred in violation of protocol"), True),
    (SSLError(endpoint_url="https://x", error="[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"),
     False),
    (SSLError(endpoint_url="https://x", error=ssl.SSLCertVerificationError(1, "self-signed")), False),
    (ValueError("bug"), False),
    (KeyError("bug"), False),
])
def test_which_errors_are_transient(exc, transient):
    assert is_transient(exc) is transient


def test_delay_is_full_jitter_under_an_exponential_ceiling_with_a_cap():
    policy = RetryPolicy(retries=10, backoff_base_s=0.1, backoff_cap_s=1.0, random=lambda: 1.0)
    assert [round(policy.delay(n), 6) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    jittered = RetryPolicy(backoff_base_s=0.1, random=lambda: 0.25)
    assert jittered.delay(3) == pytest.approx(0.1)


def test_a_call_that_keeps_failing_makes_exactly_retries_plus_one_attempts(caplog):
    clock = FakeClock()
    policy = RetryPolicy(retries=3, sleep=clock.sleep, random=lambda: 0.5)
    attempts = []

    def attempt():
        attempts.append(1)
        raise client_error("SlowDown", 503)

    with caplog.at_level(logging.WARNING, logger="s3po"), pytest.raises(ClientError):
        policy.call(attempt, what="upload s3://b/k")
    assert len(attempts) == 4
    assert len(clock.sleeps) == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert "upload s3://b/k" in warnings[0].getMessage()
    assert "attempt 1 of 4" in warnings[0].getMessage()
    assert "SlowDown" in warnings[0].getMessage()


def test_permanent_errors_fail_at_once_and_on_retry_rewinds_before_each_new_attempt():
    clock = FakeClock()
    policy = RetryPolicy(retries=5, sleep=clock.sleep)
    calls = []

    def attempt():
        calls.append("attempt")
        raise client_error("AccessDenied", 403)

    with pytest.raises(ClientError):
        policy.call(attempt, what="x", on_retry=lambda: calls.append("rewind"))
    assert calls == ["attempt"] and clock.sleeps == []

    outcomes = iter([ConnectionResetError(), ChecksumMismatch("x"), "done"])

    def flaky():
        calls.append("attempt")
        item = next(outcomes)
        if isinstance(item, Exception):
            raise item
        return item

    calls.clear()
    assert policy.call(flaky, what="x", on_retry=lambda: calls.append("rewind")) == "done"
    assert calls == ["attempt", "rewind", "attempt", "rewind", "attempt"]


def test_zero_retries_means_one_attempt():
    policy = RetryPolicy(retries=0, sleep=FakeClock().sleep)
    attempts = []

    def attempt():
        attempts.append(1)
        raise ConnectionResetError()

    with pytest.raises(ConnectionResetError):
        policy.call(attempt, what="x")
    assert len(attempts) == 1


@pytest.mark.parametrize("kwargs", [
    {"retries": -1}, {"retries": 1.5}, {"retries": True}, {"retries": "3"},
    {"backoff_base_s": -0.1}, {"backoff_cap_s": -1}, {"backoff_base_s": "x"},
])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_policy_is_an_immutable_value():
    policy = RetryPolicy(retries=2)
    assert policy.with_retries(None) is policy
    assert policy.with_retries(5).retries == 5 and policy.retries == 2
    with pytest.raises(AttributeError):
        policy.retries = 3
    assert RetryPolicy(retries=2) == policy
