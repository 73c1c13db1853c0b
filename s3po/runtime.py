"""The one place that knows whether the program is gevent-patched, and hands out what fits.

s3po never monkey-patches. A program that patched (``gevent.monkey.patch_all()``) runs
on one native thread of greenlets: there s3po must sleep, lock and wait with gevent's
primitives, or one wait would stop every greenlet at once. A program that did not
patch gets native threads and threading's own primitives. The question is asked each
time something is handed out, never at import: a program may import s3po, even make
a Connection, and patch afterwards.

Nothing here imports gevent unless the program is patched, which means it imported
gevent already.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import time
import weakref
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence, TypeVar

from .errors import Cancelled

__all__ = [
    "Cancellation",
    "NativeWorkers",
    "Runtime",
    "Task",
    "current",
    "native",
    "patched",
    "patched_modules",
]

R = TypeVar("R")

# How often a waiter that can be cancelled looks whether it has been.
POLL_S = 0.05


def patched() -> bool:
    """True when the program has monkey-patched ``socket`` (and so runs on greenlets)."""
    return bool(patched_modules(("socket",)))


def patched_modules(names: "tuple[str, ...]") -> "list[str]":
    """Those of the modules ``names`` gevent has monkey-patched in this process."""
    monkey = sys.modules.get("gevent.monkey")
    return [name for name in names if monkey is not None and monkey.is_module_patched(name)]


_originals: dict[tuple[str, str], Any] = {}


def _original(module: str, name: str) -> Any:
    """``module.name`` as it was before any monkey-patching (which never changes once known)."""
    found = _originals.get((module, name))
    if found is None:
        monkey = sys.modules.get("gevent.monkey")
        found = monkey.get_original(module, name) if monkey is not None else getattr(sys.modules[module], name)
        _originals[(module, name)] = found
    return found


class Task(Protocol):
    """Something started by ``Runtime.spawn``: a greenlet or a native thread."""

    def join(self, timeout: Optional[float] = None) -> Any: ...


class Runtime:
    """Sleeping, locking, waiting and starting work, in one concurrency mode."""

    patched: bool = False

    def sleep(self, seconds: float) -> None:
        raise NotImplementedError

    def lock(self) -> Any:
        raise NotImplementedError

    def event(self) -> Any:
        raise NotImplementedError

    def semaphore(self, value: int, bounded: bool = True) -> Any:
        raise NotImplementedError

    def queue(self) -> Any:
        raise NotImplementedError

    def spawn(self, work: Callable[[], Any], name: str) -> Task:
        raise NotImplementedError

    def stop(self, tasks: Sequence[Task]) -> None:
        """Stop ``tasks`` as fast as the mode allows and wait until they have ended."""
        raise NotImplementedError

    def off_hub(self, work: Callable[..., R], *args: Any) -> R:
        """Run CPU-heavy work that releases the GIL (hashing) without stalling other work."""
        return work(*args)

    def start_call(self, call: Any, work: Callable[[], Any], workers: Callable[[], "NativeWorkers"]) -> None:
        """Start ``work`` as the call behind the handle ``call`` (a calls.Call)."""
        raise NotImplementedError

    def acquire(self, semaphore: Any, cancellation: "Cancellation", stop: Optional[Callable[[], bool]]) -> bool:
        """Take ``semaphore``; False when ``stop()`` says it is no longer wanted. Raises Cancelled."""
        while not semaphore.acquire(timeout=POLL_S):
            cancellation.check()
            if stop is not None and stop():
                return False
        return True

    def hand_over(self, interruption: BaseException) -> None:
        """An interruption (Ctrl-C, an exit) that landed in a call: give it to the program."""


class _Native(Runtime):
    """Native threads and threading's original primitives."""

    patched = False

    def sleep(self, seconds: float) -> None:
        _original("time", "sleep")(seconds)

    def lock(self) -> Any:
        return _original("threading", "Lock")()

    def event(self) -> Any:
        return _original("threading", "Event")()

    def semaphore(self, value: int, bounded: bool = True) -> Any:
        return _original("threading", "BoundedSemaphore" if bounded else "Semaphore")(value)

    def queue(self) -> Any:
        return _original("queue", "SimpleQueue")()

    def spawn(self, work: Callable[[], Any], name: str) -> Task:
        thread = _original("threading", "Thread")(target=work, name=name, daemon=True)
        thread.start()
        return thread  # type: ignore[no-any-return]

    def stop(self, tasks: Sequence[Task]) -> None:
        # A native thread cannot be interrupted: each one sees the cancellation at its
        # next safe point (between reads, before a request) and ends there.
        for task in tasks:
            task.join()

    def start_call(self, call: Any, work: Callable[[], Any], workers: Callable[[], "NativeWorkers"]) -> None:
        # On one of the Connection's threads; the handle hears of the end from there.
        deliver = call.run_elsewhere()
        workers().submit(lambda: deliver(work()))


class _Green(Runtime):
    """gevent's greenlets and primitives, for a patched program."""

    patched = True

    def sleep(self, seconds: float) -> None:
        import gevent

        gevent.sleep(seconds)

    def lock(self) -> Any:
        import gevent.lock

        return gevent.lock.Semaphore(1)

    def event(self) -> Any:
        import gevent.event

        return gevent.event.Event()

    def semaphore(self, value: int, bounded: bool = True) -> Any:
        import gevent.lock

        return (gevent.lock.BoundedSemaphore if bounded else gevent.lock.Semaphore)(value)

    def queue(self) -> Any:
        import gevent.queue

        return gevent.queue.Queue()

    def spawn(self, work: Callable[[], Any], name: str) -> Task:
        import gevent

        return gevent.spawn(work)  # type: ignore[no-any-return]

    def stop(self, tasks: Sequence[Task]) -> None:
        import gevent

        gevent.killall(tasks, block=True)

    def off_hub(self, work: Callable[..., R], *args: Any) -> R:
        # Every greenlet shares one thread: hashing a part there would hold up all other
        # I/O for its duration, on one core. The hub's native pool runs it beside them.
        import gevent

        return gevent.get_hub().threadpool.apply(work, args)  # type: ignore[no-any-return]

    def start_call(self, call: Any, work: Callable[[], Any], workers: Callable[[], "NativeWorkers"]) -> None:
        call.run_here(work)  # the handle is the greenlet that runs the call

    def acquire(self, semaphore: Any, cancellation: "Cancellation", stop: Optional[Callable[[], bool]]) -> bool:
        if stop is None:
            semaphore.acquire()  # a greenlet with nothing else to watch just waits: a kill stops it
            return True
        return super().acquire(semaphore, cancellation, stop)

    def hand_over(self, interruption: BaseException) -> None:
        # Where gevent itself would have sent it: to the main greenlet.
        import gevent

        gevent.get_hub().handle_system_error(type(interruption), interruption, None)


_NATIVE = _Native()
_GREEN = _Green()


def current() -> Runtime:
    """The runtime that fits the program as it is now."""
    return _GREEN if patched() else _NATIVE


def native() -> Runtime:
    """Native threads, whatever the program did (for work that must not be a greenlet)."""
    return _NATIVE


class Cancellation:
    """A flag that stops a call (or every call of a batch) at its next safe point.

    Safe points are before each request, between reads of a body, between parts and
    ranges, and during every backoff sleep, which the flag cuts short. A child (one
    call of a batch) is cancelled with its parent (the batch); cancelling the child
    leaves the parent, and so the other calls, alone.
    """

    def __init__(self, runtime: Optional[Runtime] = None, parent: Optional["Cancellation"] = None) -> None:
        self._event = (runtime or current()).event()
        self._children: Optional["weakref.WeakSet[Cancellation]"] = None  # made for the first child
        # Native: held only to add or list children, never across a switch.
        self._children_lock = _original("threading", "Lock")()
        if parent is not None:
            parent._adopt(self)

    def _adopt(self, child: "Cancellation") -> None:
        with self._children_lock:
            if self._children is None:
                self._children = weakref.WeakSet()
            self._children.add(child)
        if self.cancelled:
            child.cancel()

    def cancel(self) -> None:
        self._event.set()
        with self._children_lock:
            children = list(self._children or ())
        for child in children:
            child.cancel()

    @property
    def cancelled(self) -> bool:
        return bool(self._event.is_set())

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` (in the program's mode); raise Cancelled when cancelled meanwhile."""
        if seconds > 0 and self._event.wait(seconds):
            raise Cancelled("cancelled")
        self.check()


class NativeWorkers:
    """Native threads that run one Connection's calls in a program that never patched.

    Threads start on demand, at most ``size`` of them, are reused by every batch and
    background call of the Connection, and end after ``idle_s`` without work, or when
    the Connection closes. So a program making many batches never grows threads.

    A job of these threads may wait for jobs it queued itself (a batch callback that
    adds calls to a full batch waits for room the queued calls hold): while it waits
    (``waiting``), one thread more may run, or every thread could wait on jobs none
    is free to run.
    """

    def __init__(self, size: int, name: str, idle_s: float = 30.0) -> None:
        self._size = size
        self._name = name
        self._idle_s = idle_s
        self._jobs: Any = _NATIVE.queue()
        self._lock = _NATIVE.lock()
        self._idle = 0  # threads waiting for a job that none has been promised
        self._unserved = 0  # jobs queued that no thread has been promised
        self._waiting = 0  # threads whose job waits on other jobs (see ``waiting``)
        self._threads: set[Any] = set()
        self._closed = False

    def submit(self, job: Callable[[], Any]) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("this Connection is closed")
            if self._idle:
                self._idle -= 1  # that thread will take this job
            elif not self._start_thread():
                self._unserved += 1  # every thread is busy; the first one free takes it
        self._jobs.put(job)

    def _start_thread(self) -> bool:
        """Start a thread, promised a queued job, if the cap allows (under the lock)."""
        if len(self._threads) >= self._size + self._waiting:
            return False
        thread = _original("threading", "Thread")(target=self._serve, name=self._name, daemon=True)
        self._threads.add(thread)
        thread.start()
        return True

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a wait of one of these threads for other jobs of theirs: meanwhile a
        thread more may run a job queued behind it (outside these threads, nothing)."""
        if _original("threading", "current_thread")() not in self._threads:
            yield
            return
        with self._lock:
            self._waiting += 1
            if self._unserved and self._start_thread():
                self._unserved -= 1
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1

    def _serve(self) -> None:
        current_thread = _original("threading", "current_thread")()
        try:
            while True:
                try:
                    job = self._jobs.get(timeout=self._idle_s)
                except queue.Empty:
                    with self._lock:
                        if self._idle:  # still counted idle, so no job was promised to us
                            self._idle -= 1
                            return
                    continue  # a job was promised to this thread: it is on its way
                if job is None:
                    return
                try:
                    job()  # jobs catch their own failures; this only keeps the count right
                finally:
                    del job  # nothing of it (a call's arguments, its handle) outlives it here
                    with self._lock:
                        if self._unserved:
                            self._unserved -= 1  # promised one of the jobs queued meanwhile
                        else:
                            self._idle += 1
        finally:
            with self._lock:
                self._threads.discard(current_thread)

    def close(self, timeout_s: Optional[float] = None) -> None:
        """Let the threads finish their jobs and end; no job is taken after this."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
