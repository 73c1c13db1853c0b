"""Progress of transfers: one call's ``progress=`` callable, and a batch's running totals."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

__all__ = ["BatchProgress", "Progress", "TransferTotals", "check_progress"]

ProgressCallback = Callable[[int, Optional[int]], Any]


def check_progress(progress: Any) -> Optional[ProgressCallback]:
    """TypeError, before any request, for a ``progress=`` that cannot be called."""
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be a callable taking (bytes_done, bytes_total), not {type(progress).__name__}")
    return progress  # type: ignore[no-any-return]


class Progress:
    """Tells a ``progress(bytes_done, bytes_total)`` callable how one transfer goes.

    Bytes are those stored on S3 (compressed bytes, for compressed objects).
    ``bytes_total`` is None while unknown (a stream being compressed, say); the last
    call always has ``bytes_done == bytes_total``. Calls come from the thread or
    greenlet that made the transfer call, never from a worker.
    """

    def __init__(self, callback: Optional[ProgressCallback], total: Optional[int] = None) -> None:
        self._callback = callback
        self.done = 0
        self.total = total
        self._finished = False
        self._last: Optional[tuple[int, Optional[int]]] = None

    def restart(self, total: Optional[int]) -> None:
        """Start counting again: the object changed and is fetched anew."""
        self.done = 0
        self.total = total
        self._report()

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        self._report()

    def finish(self) -> None:
        """The final call, with done == total, made exactly once."""
        if self._finished:
            return
        self._finished = True
        self.total = self.done
        if self._last != (self.done, self.total):
            self._report()

    def _report(self) -> None:
        self._last = (self.done, self.total)
        if self._callback is not None:
            self._callback(self.done, self.total)


@dataclass(frozen=True)
class TransferTotals:
    """A batch's transfers so far: bytes and objects done, and the totals known yet."""

    bytes_done: int
    bytes_total: int
    objects_done: int
    objects_total: int


class BatchProgress:
    """Sums the progress of a batch's transfer calls (safe from threads and greenlets)."""

    def __init__(self) -> None:
        # Updated from pool threads in unpatched programs; never held across a switch.
        self._lock = threading.Lock()
        self._bytes_done = 0
        self._bytes_total = 0
        self._objects_done = 0
        self._objects_total = 0

    def start_call(self, callback: Optional[ProgressCallback]) -> ProgressCallback:
        """Count one more object; returns the ``progress=`` to give its call."""
        with self._lock:
            self._objects_total += 1
        last = [0, 0]  # this call's bytes done and total, as last reported

        def report(done: int, total: Optional[int]) -> None:
            with self._lock:
                self._bytes_done += done - last[0]
                known = total if total is not None else 0
                self._bytes_total += known - last[1]
                last[0], last[1] = done, known
            if callback is not None:
                callback(done, total)

        return report

    def end_call(self) -> None:
        with self._lock:
            self._objects_done += 1

    def totals(self) -> TransferTotals:
        with self._lock:
            return TransferTotals(self._bytes_done, self._bytes_total, self._objects_done, self._objects_total)
