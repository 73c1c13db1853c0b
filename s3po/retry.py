"""The retry policy as a small immutable value, and the one list of transient errors.

Which layer retries what: botocore is configured with ``total_max_attempts=1`` (see
``_client.py``), so it sends each request once and never retries. Every retry happens
here, so ``retries=N`` means at most N+1 requests on the wire for a call that keeps
failing, whatever the failure (error status, reset, truncated body, bad checksum).
"""

from __future__ import annotations

import functools
import logging
import random
import socket
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, TypeVar

from .errors import ChecksumMismatch, describe, error_code, http_status

__all__ = ["Budget", "RetryPolicy", "SharedBudget", "is_transient", "transient_exceptions"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@functools.lru_cache(maxsize=None)
def transient_exceptions() -> tuple[type[BaseException], ...]:
    """Failures of the network or of the bytes themselves: the next attempt may succeed.

    HTTPClientError covers ConnectionClosedError, ReadTimeoutError and
    ResponseStreamingError (a body cut short after a 200, which botocore never
    retries). botocore is imported here, on first use, so that ``import s3po`` stays
    light and imports no ssl before a program gets the chance to monkey-patch.
    """
    from botocore import exceptions as bce

    return (
        bce.HTTPClientError,
        bce.ConnectionError,
        bce.IncompleteReadError,
        bce.FlexibleChecksumError,
        ChecksumMismatch,
        ConnectionError,
        TimeoutError,
        socket.timeout,
    )


def _certificate_refused(exc: BaseException) -> bool:
    """True when a TLS failure is the server's certificate being refused.

    botocore's standard retry mode retries every TLS error (its SSLError is a
    ConnectionError), so s3po does too, as an EOF in the middle of a handshake is as
    transient as a reset. A certificate that does not verify never will, though: that
    one fails at once.
    """
    import ssl

    seen: set[int] = set()
    pending: list[Optional[BaseException]] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        text = str(current)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return True
        wrapped = getattr(current, "kwargs", None)
        pending += [current.__cause__, current.__context__]
        if isinstance(wrapped, dict) and isinstance(wrapped.get("error"), BaseException):
            pending.append(wrapped["error"])
    return False


# S3 error codes that mean "try again": throttling, server trouble, a body damaged in
# transit (BadDigest: the Content-MD5 we sent did not match what arrived).
TRANSIENT_CODES = frozenset(
    {
        "BadDigest",
        "InternalError",
        "OperationAborted",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestTimeout",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "XAmzContentSHA256Mismatch",
    }
)
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is worth another attempt."""
    code, status = error_code(exc), http_status(exc)
    if code is not None or status is not None:
        return code in TRANSIENT_CODES or status in TRANSIENT_STATUSES
    return isinstance(exc, transient_exceptions()) and not _certificate_refused(exc)


class Budget:
    """Retries already spent on one piece of work, across every loop that retries it.

    A range fetched again because the whole object failed its check spends a retry
    of its own budget, so the inner and outer loops together never exceed
    ``retries`` + 1 requests for any byte.
    """

    def __init__(self, used: int = 0) -> None:
        self.used = used

    def spent(self) -> int:
        return self.used

    def spend(self) -> int:
        """Spend one retry; returns the number of this retry (1 for the first)."""
        self.used += 1
        return self.used


class SharedBudget(Budget):
    """The budget of a retry of several pieces at once: each of them spends one, and
    the retry is allowed only while every piece has one left."""

    def __init__(self, budgets: list[Budget]) -> None:
        super().__init__()
        self._budgets = budgets

    def spent(self) -> int:
        return max((budget.spent() for budget in self._budgets), default=0)

    def spend(self) -> int:
        for budget in self._budgets:
            budget.spend()
        return self.spent()


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry and how long to wait between attempts.

    The delay before retry ``n`` (1-based) is drawn uniformly from
    ``[0, min(backoff_cap_s, backoff_base_s * 2 ** (n - 1))]``: exponential backoff with
    full jitter, which spreads out clients that failed together. ``sleep`` and
    ``random`` are injectable so tests never really wait; by default the sleep is the
    one that fits the program when the retry happens (gevent's once it has patched),
    and it ends early when the call is cancelled; the default ``random`` is the
    process's own generator, looked up when drawing: a policy pickled to another
    process carries no generator state (each process draws its own jitter, and two
    pickles of one policy are the same bytes). A ``random`` given here travels as it
    is: a seeded ``Random(...).random`` gives every process the same jitter.
    """

    retries: int = 3
    backoff_base_s: float = 0.1
    backoff_cap_s: float = 20.0
    sleep: Optional[Callable[[float], None]] = field(default=None, compare=False, repr=False)
    random: Optional[Callable[[], float]] = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_retries(self.retries)
        for name in ("backoff_base_s", "backoff_cap_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def with_retries(self, retries: Optional[int]) -> "RetryPolicy":
        """This policy with another retry count (None keeps this one's)."""
        if retries is None or retries == self.retries:
            return self
        return replace(self, retries=retries)

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (1 for the first retry)."""
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (retry_number - 1))
        draw = self.random if self.random is not None else random.random
        return float(ceiling * draw())

    def call(
        self,
        attempt: Callable[[], T],
        *,
        what: str,
        on_retry: Optional[Callable[[], None]] = None,
        budget: Optional[Budget] = None,
        retryable: Callable[[BaseException], bool] = is_transient,
        sleep: Optional[Callable[[float], None]] = None,
    ) -> T:
        """Run ``attempt`` until it succeeds, fails for good, or the retries run out.

        The one retry loop of s3po: every request, part, range and resume goes through
        it. ``what`` names the work in the log ("upload s3://b/k"). ``on_retry`` runs
        before each new attempt, to rewind a body or a destination. ``budget`` counts
        retries already spent on the same bytes by another loop, so that they are never
        granted twice. ``sleep`` (the call's, which a cancellation cuts short) is used
        unless the policy carries its own. The last error is raised as it is; the
        caller translates it.
        """
        budget = budget if budget is not None else Budget()
        wait_for = self.sleep or sleep or _current_sleep
        while True:
            try:
                return attempt()
            except BaseException as exc:
                if budget.spent() >= self.retries or not retryable(exc):
                    raise
                retry_number = budget.spend()
                wait = self.delay(retry_number)
                logger.warning(
                    "%s: attempt %d of %d failed (%s); retrying in %.2f s",
                    what,
                    retry_number,
                    self.attempts,
                    describe(exc),
                    wait,
                )
                wait_for(wait)
                if on_retry is not None:
                    on_retry()


def _current_sleep(seconds: float) -> None:
    # Looked up at each call: a program may patch after importing s3po.
    from .runtime import current

    current().sleep(seconds)


def check_retries(retries: object) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, not {retries!r}")
