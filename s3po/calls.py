"""Handles of calls that run beside the program: batch calls and background calls.

A call runs as a greenlet in a patched program, and on one of the Connection's
native worker threads otherwise. Either way the caller holds a ``Call``: a started
gevent Greenlet that keeps the Greenlet contract (``get``, ``value``, ``exception``,
``exc_info``, ``successful``, ``ready``, ``join``, ``rawlink``, ``gevent.joinall``
with ``raise_error=True``), whose failure is a value the hub never prints, and whose
state can be read from any thread as soon as the call has ended, whether or not the
caller's hub has run since.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Optional, TypeVar

import gevent
import gevent.event

from .errors import Cancelled
from .runtime import native

__all__ = ["Call", "Outcome"]

T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """How a call ended: its value, or the exception it raised."""

    value: Any = None
    error: Optional[BaseException] = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Call(gevent.Greenlet, Generic[T]):  # type: ignore[misc]  # gevent ships no types
    """The handle of one call of a batch, or of one background call.

    ``get()`` returns the call's result or raises its exception; a call cancelled
    before it finished (its batch block raised, the program was interrupted) is not
    successful and raises ``s3po.Cancelled``. ``description`` is ``(operation, bucket,
    key)``.
    """

    def __init__(self, description: tuple[str, Optional[str], Optional[str]],
                 on_settled: Callable[["Call[Any]", Outcome], None]) -> None:
        super().__init__()
        self.description = description
        self._on_settled = on_settled
        self._outcome: Optional[Outcome] = None
        self._settled: Any = None  # a native event, for a call run elsewhere: get() waits on it
        self._settle_lock = native().lock()
        self._work: Optional[Callable[[], Outcome]] = None
        self._elsewhere = False
        self._following = False
        self._watcher: Any = None
        self._arrived: Any = None
        #: Shared with the batch's failure record: True once the program looked at the
        #: outcome (get, exception, successful...), so an unlooked-at failure is reported.
        self.seen = [False]

    def __repr__(self) -> str:
        operation, bucket, key = self.description
        state = "pending" if self._outcome is None else ("ok" if self._outcome.ok else "failed")
        return f"<s3po.Call {operation} s3://{bucket or ''}/{key or ''} {state}>"

    # -- how the call is run --------------------------------------------------------

    def run_here(self, work: Callable[[], Outcome]) -> None:
        """Start the call as this greenlet (a patched program)."""
        self._work = work
        super().rawlink(self._on_dead)
        self.start()

    def run_elsewhere(self) -> Callable[[Outcome], None]:
        """Make this the handle of a call a native thread runs; returns what delivers its outcome.

        The greenlet itself starts only when gevent is asked to wait for it (``rawlink``,
        which ``gevent.joinall`` and ``link`` use): a program that never does so keeps
        no greenlet per call in its hub. Everything else on the handle reads the
        outcome directly, from any thread.
        """
        self._elsewhere = True
        self._settled = native().event()

        def deliver(outcome: Outcome) -> None:
            self._settle(outcome)
            with self._settle_lock:
                watcher = self._watcher
            if watcher is not None:
                watcher.send()  # an async watcher's send() may come from any thread

        return deliver

    def _follow(self) -> None:
        """Start the greenlet, ending once the outcome is there (in the caller's hub)."""
        if self._following:
            return
        self._following = True
        self._arrived = gevent.event.Event()
        with self._settle_lock:
            if self._outcome is None:
                self._watcher = gevent.get_hub().loop.async_()
                self._watcher.start(self._arrived.set)
            else:
                self._arrived.set()
        self.start()

    def rawlink(self, callback: Callable[[Any], Any]) -> None:
        if self._elsewhere:
            self._follow()
        super().rawlink(callback)

    def _run(self) -> None:  # the greenlet's body; never raises
        if not self._elsewhere:
            work, self._work = self._work, None  # its arguments (bodies) are not kept
            assert work is not None
            self._settle(work())
            return
        try:
            self._arrived.wait()
        finally:
            if self._watcher is not None:
                self._watcher.close()

    def _settle(self, outcome: Outcome) -> None:
        with self._settle_lock:
            if self._outcome is not None:
                return
            self._outcome = outcome
        self._on_settled(self, outcome)
        if self._settled is not None:
            self._settled.set()

    def _on_dead(self, _greenlet: Any) -> None:
        # Killed before it could run (its batch was cancelled): it ends cancelled.
        if self._outcome is None:
            operation, bucket, key = self.description
            self._settle(Outcome(error=Cancelled(
                f"{operation} s3://{bucket or ''}/{key or ''}: cancelled before it started",
                bucket=bucket, key=key, operation=operation)))

    # -- the Greenlet contract -------------------------------------------------------

    def ready(self) -> bool:
        return self._outcome is not None

    def successful(self) -> bool:
        self.seen[0] = True
        return self._outcome is not None and self._outcome.ok

    @property
    def value(self) -> Optional[T]:
        """The call's result once it succeeded, else None."""
        return self._outcome.value if self._outcome is not None and self._outcome.ok else None

    @property
    def exception(self) -> Optional[BaseException]:
        """The call's exception once it failed, else None."""
        self.seen[0] = True
        return self._outcome.error if self._outcome is not None else None

    @property
    def exc_info(self) -> tuple[Any, ...]:
        error = self.exception
        if error is None:
            return ()
        return (type(error), error, error.__traceback__)

    def _raise_exception(self) -> None:
        # gevent.joinall(raise_error=True) calls this on a handle that failed.
        error = self.exception
        if error is not None:
            raise error

    def join(self, timeout: Optional[float] = None) -> None:
        if self._elsewhere and not self._settled.is_set():
            # Run elsewhere: waiting natively needs no hub.
            self._settled.wait(timeout)
            return
        super().join(timeout)

    def get(self, block: bool = True, timeout: Optional[float] = None) -> T:
        """The result; raises the call's exception, or gevent.Timeout when not done in time."""
        self.seen[0] = True
        if self._outcome is None:
            if not block:
                raise gevent.Timeout()
            self.join(timeout)
            if self._outcome is None:
                raise gevent.Timeout(timeout)
        if self._outcome.error is not None:
            raise self._outcome.error
        return self._outcome.value  # type: ignore[no-any-return]
