"""What one call of a Connection runs with, and the one path every request takes.

A Connection method makes a CallContext at its start: the client (or the mock's, if
one is active), the retry policy, the program's concurrency mode, the call's
cancellation, and the settings of large transfers. Every request of the call, for
every part and range, goes out through ``send``; every retry through ``retrying``;
every set of parts or ranges through ``parallel``.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, TypeVar

from .parallel import Slots, run_parallel
from .parts import DEFAULT_PART_SIZE
from .retry import Budget, RetryPolicy, is_transient
from .runtime import Cancellation, Runtime
from .storechecks import StoreChecks

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["CallContext", "InCall", "in_call"]

T = TypeVar("T")

# Hashing at least this much is worth a trip to another thread under gevent (~0.4 ms).
OFF_HUB_MIN_BYTES = 256 * 1024


@dataclass(frozen=True)
class InCall:
    """Set while a call of a batch (or a background call) runs, holding a connection slot:
    the batch's cancellation, which the call's own follows."""

    cancellation: Cancellation


# Read by the Connection methods a batch runs, in the thread or greenlet running them.
in_call: contextvars.ContextVar[Optional[InCall]] = contextvars.ContextVar("s3po_in_call", default=None)


@dataclass(frozen=True)
class CallContext:
    """Everything one call of a Connection needs below its public method."""

    connection: "Connection"
    client: Any
    lean: Any  # leanpath.LeanPath, or None: everything through the client
    policy: RetryPolicy
    runtime: Runtime
    cancellation: Cancellation
    holds_slot: bool
    workers: int
    part_size: Optional[int]
    verify_etag: bool
    checks: StoreChecks  # which checksums the store verifies and returns
    slots: Slots = field(repr=False)

    @property
    def chunk(self) -> int:
        """The size of ranges and of the first GET of a download."""
        return self.part_size or DEFAULT_PART_SIZE

    def send(self, operation: str, **params: Any) -> Any:
        """Send one S3 request (``operation`` is the boto3 client method's name).

        The one path every request takes: the lean path when it serves the request,
        the boto3 client otherwise (see leanpath.py).
        """
        self.cancellation.check()
        lean = self.lean
        if lean is not None and lean.serves(operation, params):
            return lean.send(operation, params)
        return getattr(self.client, operation)(**params)

    def retrying(self, attempt: Callable[[], T], *, what: str, on_retry: Optional[Callable[[], None]] = None,
                 budget: Optional[Budget] = None,
                 retryable: Callable[[BaseException], bool] = is_transient) -> T:
        """``attempt`` under the call's retry policy; backoff sleeps end early on cancellation."""
        return self.policy.call(attempt, what=what, on_retry=on_retry, budget=budget, retryable=retryable,
                                sleep=self.cancellation.sleep)

    def request(self, operation: str, *, what: str, **params: Any) -> Any:
        """``send`` under the retry policy: one request, retried while it fails transiently."""
        return self.retrying(lambda: self.send(operation, **params), what=what)

    def parallel(self, tasks: Iterator[Callable[[], T]], on_done: Callable[[T], Any],
                 expected: Optional[int] = None) -> None:
        """Run parts or ranges, ``workers`` at once, within the Connection's slots."""
        run_parallel(tasks, on_done, workers=self.workers, runtime=self.runtime, slots=self.slots,
                     cancellation=self.cancellation, holds_slot=self.holds_slot, expected=expected)

    def off_hub(self, work: Callable[..., T], *args: Any, size: Optional[int] = None) -> T:
        """``work(*args)``, CPU work that releases the GIL (hashing), beside other I/O.

        ``size``: the bytes it hashes; less than OFF_HUB_MIN_BYTES is done right here,
        which costs less than the trip to another thread.
        """
        if size is not None and size < OFF_HUB_MIN_BYTES:
            return work(*args)
        return self.runtime.off_hub(work, *args)

    def detached(self) -> "CallContext":
        """This context for work of its own (a read-ahead): no slot lent, same cancellation."""
        return replace(self, holds_slot=False)

    def for_cleanup(self) -> "CallContext":
        """A context whose requests go out even though this call was cancelled.

        Aborting a multipart upload or removing damaged bytes must happen precisely when
        the call is being stopped.
        """
        return replace(self, cancellation=Cancellation(self.runtime))
