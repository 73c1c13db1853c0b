"""How s3po gets real concurrency under gevent, whatever the program did first.

The policy: s3po never monkey-patches. When the program has patched ``socket``, calls
run as plain greenlets and gevent's sockets make them concurrent. Otherwise the
blocking boto3 calls run on native threads of a gevent ThreadPool while the handles
the caller holds stay greenlets. Either way, work that raises never raises inside a
greenlet or a pool thread: failures travel back as values, so gevent's hub never
prints a traceback for a call that failed.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from typing import Any, Callable, Iterator, Optional, TypeVar

import gevent
import gevent.lock
import gevent.queue
from gevent import monkey
from gevent.lock import BoundedSemaphore as GreenSemaphore
from gevent.threadpool import ThreadPool

__all__ = ["Call", "Cancelled", "Executor", "Limiters", "off_hub", "run_parallel", "sockets_are_patched"]

R = TypeVar("R")

# True while the current call runs inside a batch and so already holds one of the
# Connection's in-flight slots: its parts and ranges use that slot before asking for more.
_holding_slot: contextvars.ContextVar[bool] = contextvars.ContextVar("s3po_holding_slot", default=False)


def sockets_are_patched() -> bool:
    return monkey.is_module_patched("socket")


def off_hub(work: Callable[..., R], *args: Any) -> R:
    """Run CPU-heavy work that releases the GIL (hashing) without stalling gevent's hub.

    Under monkey-patching every greenlet shares one thread: hashing a part there would
    hold up all other I/O for its duration, and use one core only. On a native thread
    of the hub's pool it runs beside them. Unpatched, the caller is a thread already.
    """
    if sockets_are_patched():
        return gevent.get_hub().threadpool.apply(work, args)
    return work(*args)


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
                token = _holding_slot.set(True)
                try:
                    return work()
                finally:
                    _holding_slot.reset(token)

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


# How often a worker waiting for a free connection looks whether it is still needed.
_SLOT_POLL_S = 0.05
_WORKER_EXITED = object()


class _Run:
    """What the workers of one run_parallel share."""

    def __init__(self, tasks: Iterator[Callable[[], Any]], patched: bool) -> None:
        self.tasks = tasks
        self.stopped = False  # a task failed, or the caller was interrupted
        self.exhausted = False
        self.lock: Any = gevent.lock.Semaphore() if patched else threading.Lock()
        self.results: Any = gevent.queue.Queue() if patched else queue.Queue()

    def next_task(self) -> Optional[Callable[[], Any]]:
        # One worker at a time pulls: a source read part after part stays in order,
        # and at most one part per worker is in memory.
        with self.lock:
            if self.stopped or self.exhausted:
                return None
            task = next(self.tasks, None)
            if task is None:
                self.exhausted = True
            return task


def run_parallel(tasks: Iterator[Callable[[], R]], workers: int, limiters: "Limiters",
                 on_done: Callable[[R], Any], expected: Optional[int] = None) -> None:
    """Run ``tasks`` (pulled one by one) on up to ``workers`` workers; ``on_done`` each result.

    Every task holds one of the Connection's in-flight slots while it runs, so that
    parts and ranges of calls in a batch stay within ``max_connections`` altogether; a
    call made inside a batch already holds one, which its first worker uses (so no
    call ever waits for a slot it holds itself). ``on_done`` runs in the caller's
    thread or greenlet, in completion order. The first failure stops new tasks from
    starting and is raised once the running ones have ended; an interruption of the
    caller (KeyboardInterrupt, a killed greenlet) does the same and propagates.
    """
    patched = sockets_are_patched()
    limiter = limiters.for_mode(patched)
    holding = _holding_slot.get()
    run = _Run(tasks, patched)
    count = max(1, min(workers, expected if expected is not None else workers))

    def work(first: bool) -> None:
        own_slot = first and holding
        try:
            while True:
                if not own_slot and not _acquire(limiter, run):
                    return
                try:
                    task = run.next_task()
                    if task is None:
                        return
                    run.results.put((True, task()))
                finally:
                    if not own_slot:
                        limiter.release()
        except BaseException as exc:  # handed to the caller, who raises it
            run.stopped = True
            run.results.put((False, exc))
        finally:
            run.results.put(_WORKER_EXITED)

    if patched:
        handles: list[Any] = [gevent.spawn(work, index == 0) for index in range(count)]
    else:
        handles = [threading.Thread(target=work, args=(index == 0,), name="s3po-worker", daemon=True)
                   for index in range(count)]
        for thread in handles:
            thread.start()
    failure: Optional[BaseException] = None
    exited = 0
    try:
        while exited < count:
            item = run.results.get()
            if item is _WORKER_EXITED:
                exited += 1
                continue
            ok, value = item
            if ok and failure is None:
                on_done(value)
            elif not ok and failure is None:
                failure = value
    except BaseException:
        run.stopped = True
        if patched:
            gevent.killall(handles, block=True)
        else:
            # Native threads cannot be interrupted: each finishes the request it is
            # sending, and takes no other.
            for thread in handles:
                thread.join()
        raise
    if failure is not None:
        raise failure


def _acquire(limiter: Any, run: _Run) -> bool:
    """Take a connection slot; False when the run no longer needs this worker."""
    while not limiter.acquire(timeout=_SLOT_POLL_S):
        if run.stopped or run.exhausted:
            return False
    return True
