"""How s3po gets real concurrency under gevent, whatever the program did first.

The policy: s3po never monkey-patches. When the program has patched ``socket``, calls
run as plain greenlets and gevent's sockets make them concurrent. Otherwise the
blocking boto3 calls run on native threads of a gevent ThreadPool while the handles
the caller holds stay greenlets. Either way, work that raises never raises inside a
greenlet or a pool thread: failures travel back as values, so gevent's hub never
prints a traceback for a call that failed.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

import gevent
from gevent import monkey
from gevent.lock import BoundedSemaphore as GreenSemaphore
from gevent.threadpool import ThreadPool

__all__ = ["Call", "Cancelled", "Executor", "Limiters", "sockets_are_patched"]


def sockets_are_patched() -> bool:
    return monkey.is_module_patched("socket")


class Cancelled(Exception):
    """The call never ran: its batch was cancelled first."""


class Call(gevent.Greenlet):
    """The handle of one scheduled call: a Greenlet whose failures are values.

    ``get()`` returns the result or raises the call's exception; ``exception`` and
    ``successful()`` report the failure like any Greenlet's. The function inside never
    raises, so gevent's hub has nothing to print.
    """

    def __init__(self, wait: Callable[[], Any], callback: Optional[Callable[[Any], Any]] = None,
                 description: tuple = ()) -> None:
        super().__init__(self._guarded, wait, callback)
        self.failure: Optional[BaseException] = None
        self.description = description

    def _guarded(self, wait: Callable[[], Any], callback: Optional[Callable[[Any], Any]]) -> Any:
        try:
            result = wait()
            if callback is not None:
                callback(result)
            return result
        except Exception as exc:  # handed to the caller through get() and exception
            self.failure = exc
            return None

    @property
    def exception(self) -> Optional[BaseException]:
        return self.failure if self.failure is not None else gevent.Greenlet.exception.__get__(self)

    def successful(self) -> bool:
        return bool(gevent.Greenlet.successful(self)) and self.failure is None

    def get(self, block: bool = True, timeout: Optional[float] = None) -> Any:
        if not self.ready():
            if not block:
                raise gevent.Timeout()
            self.join(timeout)
            if not self.ready():
                raise gevent.Timeout(timeout)
        if self.failure is not None:
            raise self.failure
        return gevent.Greenlet.get(self, block=False)


def _outcome(work: Callable[[], Any]) -> tuple[bool, Any]:
    """Run ``work``; returns (ok, result or exception) and never raises."""
    try:
        return True, work()
    except Exception as exc:
        return False, exc


def _unwrap(outcome: tuple[bool, Any]) -> Any:
    ok, value = outcome
    if ok:
        return value
    raise value


class Executor:
    """Runs calls for one batch, at most ``size`` at once, in the mode the program allows.

    ``limiters`` are shared by everything using one Connection, so that the requests
    in flight never exceed its ``max_connections``.
    """

    def __init__(self, size: int, limiters: "Limiters") -> None:
        self.patched = sockets_are_patched()
        self._limiter = limiters.for_mode(self.patched)
        self.cancelled = False
        self._threads: Optional[ThreadPool] = None if self.patched else ThreadPool(size)

    def start(self, work: Callable[[], Any], callback: Optional[Callable[[Any], Any]],
              description: tuple) -> Call:
        """Start ``work`` now and return its (started) handle."""
        limited = self._limited(work)
        if self._threads is None:
            call = Call(lambda: _unwrap(_outcome(limited)), callback, description)
        else:
            # Submitted now, so the work runs on its thread even while the caller's
            # code keeps the hub busy; the greenlet only waits for the outcome.
            pending = self._threads.spawn(_outcome, limited)
            call = Call(lambda: _unwrap(pending.get()), callback, description)
        return call

    def _limited(self, work: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with self._limiter:
                # Checked once a connection is ours: calls that queued for one while
                # the batch was cancelled never start.
                if self.cancelled:
                    raise Cancelled("the batch was cancelled before this call started")
                return work()

        return run

    def close(self) -> None:
        if self._threads is not None:
            self._threads.kill()
            self._threads = None


class Limiters:
    """A Connection's cap on requests in flight, one semaphore per concurrency mode.

    A native semaphore would block every greenlet at once under monkey-patching, and
    a gevent one cannot be shared by native threads, hence one of each, made lazily.
    """

    def __init__(self, max_in_flight: int) -> None:
        self._size = max_in_flight
        self._lock = threading.Lock()
        self._green: Optional[GreenSemaphore] = None
        self._native: Optional[threading.BoundedSemaphore] = None

    def for_mode(self, patched: bool) -> Any:
        with self._lock:
            if patched:
                if self._green is None:
                    self._green = GreenSemaphore(self._size)
                return self._green
            if self._native is None:
                # The original class, even if threading was patched after all: pool
                # threads are native and need a native semaphore.
                native = monkey.get_original("threading", "BoundedSemaphore")
                self._native = native(self._size)
            return self._native
