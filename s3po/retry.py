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
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, TypeVar

from .errors import ChecksumMismatch, describe, error_code, http_status

__all__ = ["RetryPolicy", "is_transient", "transient_exceptions"]

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


def _is_tls_failure(exc: BaseException) -> bool:
    from botocore.exceptions import SSLError

    return isinstance(exc, SSLError)

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
    if _is_tls_failure(exc):
        # A failed TLS handshake is almost always a certificate or protocol problem
        # that no amount of retrying fixes.
        return False
    code, status = error_code(exc), http_status(exc)
    if code is not None or status is not None:
        return code in TRANSIENT_CODES or status in TRANSIENT_STATUSES
    return isinstance(exc, transient_exceptions())


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to retry and how long to wait between attempts.

    The delay before retry ``n`` (1-based) is drawn uniformly from
    ``[0, min(backoff_cap_s, backoff_base_s * 2 ** (n - 1))]``: exponential backoff with
    full jitter, which spreads out clients that failed together. ``sleep`` and
    ``random`` are injectable so tests never really wait.
    """

    retries: int = 3
    backoff_base_s: float = 0.1
    backoff_cap_s: float = 20.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_retries(self.retries)
        if not isinstance(self.backoff_base_s, (int, float)) or self.backoff_base_s < 0:
            raise ValueError(f"backoff_base must be a number >= 0, not {self.backoff_base_s!r}")
        if not isinstance(self.backoff_cap_s, (int, float)) or self.backoff_cap_s < 0:
            raise ValueError(f"backoff_cap must be a number >= 0, not {self.backoff_cap_s!r}")

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
        return ceiling * self.random()

    def call(
        self,
        attempt: Callable[[], T],
        *,
        what: str,
        on_retry: Optional[Callable[[], None]] = None,
        retries_used: int = 0,
    ) -> T:
        """Run ``attempt`` until it succeeds, fails for good, or the retries run out.

        ``what`` names the call in the log ("upload s3://b/k"). ``on_retry`` runs before
        each new attempt, to rewind a body or a destination. ``retries_used`` counts
        retries already spent on the same bytes (a range fetched again), so that they
        are never granted twice. The last error is raised as it is; the caller
        translates it.
        """
        retry_number = retries_used
        while True:
            try:
                return attempt()
            except BaseException as exc:
                if not is_transient(exc) or retry_number >= self.retries:
                    raise
                retry_number += 1
                wait = self.delay(retry_number)
                logger.warning(
                    "%s: attempt %d of %d failed (%s); retrying in %.2f s",
                    what,
                    retry_number,
                    self.attempts,
                    describe(exc),
                    wait,
                )
                self.sleep(wait)
                if on_retry is not None:
                    on_retry()


def check_retries(retries: object) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, not {retries!r}")
