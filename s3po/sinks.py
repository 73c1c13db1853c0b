"""Where a download's bytes land, by offset, before anyone may see them.

A body is received straight into a *landing* (``readinto``, no intermediate bytes):
for memory, the very place in the final buffer; for a file, a buffer of the sink's
own, reused, written with one ``pwrite`` when it is full. Ranges complete in any
order; a verifier that needs the bytes in order reads them back. Nothing in a sink
reaches the caller before the whole object verified.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from typing import Any, Iterator, Optional, Protocol

from .units import IN_MEMORY_MAX

__all__ = ["FileSink", "MemorySink", "Sink", "SpoolSink", "naming"]


# posix_fallocate fails with these where the filesystem cannot preallocate at all:
# then the file is only sized, and a full disk shows up at the first write instead.
_CANNOT_PREALLOCATE = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})


class Sink(Protocol):
    """Where fetched ranges are received, by offset, and read back to be hashed."""

    @property
    def writes_out(self) -> bool:
        """True when commit copies the bytes elsewhere (a file): worth doing off the hub."""

    def allocate(self, size: int) -> None: ...

    def landing(self, offset: int, size: int) -> memoryview:
        """Writable room for the ``size`` bytes at ``offset``, to receive them into."""

    def commit(self, offset: int, landing: memoryview, filled: int) -> None:
        """The first ``filled`` bytes of ``landing`` are the bytes at ``offset``: keep them.

        Called once for every landing, whatever was received into it (even nothing):
        it is given back here.
        """

    def read_at(self, offset: int, size: int) -> Any: ...


class FileSink:
    """Writes ranges in place into an open file, by offset (safe from many workers).

    ``path`` is the file the caller asked for, named in errors instead of the
    temporary file actually written.
    """

    writes_out = True

    def __init__(self, fd: int, path: str, lock: Any) -> None:
        self.fd = fd
        self.path = path
        # One range written at a time: concurrent writes to one file wait in the kernel
        # on its inode lock, spinning on the other core while they do; here they sleep.
        # A native lock: under gevent, writes run on the hub's native threads.
        self._lock = lock
        # Landings given back, for the next range: as many as ranges were in flight at once.
        self._free: list[bytearray] = []

    def allocate(self, size: int) -> None:
        # Reserving the blocks up front fails at once on a full disk, before any range
        # is fetched, and keeps the file in one piece.
        try:
            try:
                os.posix_fallocate(self.fd, 0, max(size, 1))
            except OSError as exc:
                if exc.errno not in _CANNOT_PREALLOCATE:
                    raise
            os.ftruncate(self.fd, size)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot make room for {size} bytes: {exc.strerror}", self.path) from exc

    def landing(self, offset: int, size: int) -> memoryview:
        try:
            buffer: Optional[bytearray] = self._free.pop()  # one step: landings are asked for concurrently
        except IndexError:
            buffer = None
        if buffer is None or len(buffer) < size:
            buffer = bytearray(size)
        return memoryview(buffer)[:size]

    def commit(self, offset: int, landing: memoryview, filled: int) -> None:
        try:
            if filled:
                with self._lock:
                    self.write_at(offset, landing[:filled])
        finally:
            buffer = landing.obj
            landing.release()
            assert isinstance(buffer, bytearray)
            self._free.append(buffer)

    def write_at(self, offset: int, data: Any) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.pwrite(self.fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self.path) from exc

    def read_at(self, offset: int, size: int) -> bytes:
        return os.pread(self.fd, size, offset)


class MemorySink:
    """Receives ranges in place into one preallocated buffer."""

    writes_out = False

    def __init__(self) -> None:
        self.buffer = bytearray()

    def allocate(self, size: int) -> None:
        self.buffer = bytearray(size)

    def landing(self, offset: int, size: int) -> memoryview:
        if offset + size <= len(self.buffer):
            return memoryview(self.buffer)[offset:offset + size]
        # Past the size allocated: a body whose length was not announced. The buffer
        # grows at commit (no range runs beside such a body, so no view pins it).
        return memoryview(bytearray(size))

    def commit(self, offset: int, landing: memoryview, filled: int) -> None:
        in_place = landing.obj is self.buffer
        if not in_place and filled:
            self.buffer[offset:offset + filled] = landing[:filled]
        landing.release()

    def read_at(self, offset: int, size: int) -> memoryview:
        return memoryview(self.buffer)[offset:offset + size]


class SpoolSink:
    """A sink in memory for small objects and in a temporary file for large ones.

    For downloads into a caller's file object: the bytes are kept here until they
    verify, so a failed download leaves the caller's file exactly as it was.
    """

    def __init__(self, lock: Any) -> None:
        self._inner: Any = MemorySink()
        self._file: Optional[Any] = None
        self._lock = lock  # for the FileSink a large object spools through

    def allocate(self, size: int) -> None:
        self.close()
        if size <= IN_MEMORY_MAX:
            self._inner = MemorySink()
        else:
            self._file = tempfile.TemporaryFile(prefix="s3po-")
            self._inner = FileSink(self._file.fileno(), self._file.name, self._lock)
        self._inner.allocate(size)

    @property
    def writes_out(self) -> bool:
        return bool(self._inner.writes_out)

    def landing(self, offset: int, size: int) -> memoryview:
        return self._inner.landing(offset, size)  # type: ignore[no-any-return]

    def commit(self, offset: int, landing: memoryview, filled: int) -> None:
        self._inner.commit(offset, landing, filled)

    def read_at(self, offset: int, size: int) -> Any:
        return self._inner.read_at(offset, size)

    def reader(self) -> Any:
        """A binary file object reading the spooled bytes from the start."""
        if self._file is not None:
            self._file.seek(0)
            return self._file
        import io

        return io.BytesIO(self._inner.buffer)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._inner = MemorySink()

    def __enter__(self) -> "SpoolSink":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


@contextlib.contextmanager
def naming(path: str) -> Iterator[None]:
    """Local file errors inside name ``path``: they are the caller's, not the network's.

    s3po passes an OSError that names a file through as it is; one without a file name
    is taken for a network failure and becomes an s3po exception.
    """
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, path) from exc
        raise
