"""Turns what the caller wants uploaded into a body: one rewindable Payload, or Parts.

Bodies up to the multipart threshold become a Payload, sent with one PutObject; larger
ones become Parts, read part by part while the multipart upload runs.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
from typing import IO, Any, Callable, Iterator, Optional, Union

from .checksums import Algorithm, Digests
from .compression import CompressingReader, compress_bytes
from .units import IN_MEMORY_MAX, MiB

__all__ = ["Parts", "Payload", "prepare"]

Read = Callable[[int], bytes]

CHUNK = 1 * MiB
# Bodies up to this size are sent as bytes. botocore adds "Expect: 100-continue" to
# every file-like body, which costs a round trip per request: too much for small ones.
IN_MEMORY_LIMIT = IN_MEMORY_MAX


class Payload:
    """A body ready to send as many times as retries need.

    ``body`` is bytes, or a seekable binary file positioned at ``start``; ``digests``
    were computed over it as it was read. ``rewind`` puts it back for the next
    attempt; ``close`` releases any spool we made.
    """

    def __init__(self, body: Union[bytes, IO[bytes]], size: int, digests: Digests, *,
                 start: int = 0, owned: bool = False) -> None:
        self.body = body
        self.size = size
        self.digests = digests
        self._start = start
        self._owned = owned

    def rewind(self) -> None:
        if not isinstance(self.body, bytes):
            self.body.seek(self._start)

    def md5(self) -> "hashlib._Hash":
        """The body's MD5, computed now: a second pass, for a store that did not confirm a CRC."""
        if isinstance(self.body, bytes):
            return hashlib.md5(self.body)
        self.rewind()
        digest = hashlib.md5()
        for chunk in iter(lambda: self.body.read(CHUNK), b""):  # type: ignore[union-attr]
            digest.update(chunk)
        self.rewind()
        return digest

    def close(self) -> None:
        if self._owned and not isinstance(self.body, bytes):
            self.body.close()

    def __enter__(self) -> "Payload":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def check_data(data: Any) -> None:
    """TypeError for anything ``upload`` cannot send, before any work is done."""
    if isinstance(data, (str, bytes, bytearray, memoryview)):
        return
    if callable(getattr(data, "read", None)):
        return
    raise TypeError(
        "data must be str, bytes, bytearray, memoryview or a file-like object with "
        f"read(), not {type(data).__name__}"
    )


class Parts:
    """A body too large for one PutObject, read part by part as the upload needs them.

    ``size`` is the exact byte count when known in advance (bytes, a file read from
    where it stands); ``size_hint`` is what to choose the part size from, which for a
    compressed file is the size of the file before compression.

    Pieces read from a stream land in bytearrays that are used again once their part
    is confirmed (``recycle``): memory stays at one buffer per part in flight, and the
    allocator never sees a stream of part-sized blocks come and go (glibc keeps such
    blocks in per-thread arenas, and the process would grow by several parts per
    worker). A bytearray also goes out in one send, where bytes would be cut into
    16 KiB writes.
    """

    def __init__(self, read: Read, size: Optional[int], size_hint: Optional[int] = None,
                 close: Optional[Callable[[], None]] = None, readinto: Optional[Callable[[Any], int]] = None
                 ) -> None:
        self._read = read
        self._readinto = readinto
        self.size = size
        self.size_hint = size if size is not None else size_hint
        self._close = close
        self._free: list[bytearray] = []

    def pieces(self, part_size: int) -> Iterator[bytearray]:
        """The body in pieces of exactly ``part_size`` bytes, but the last."""
        while True:
            buffer = self._free.pop() if self._free else bytearray(part_size)
            filled = self._fill(buffer)
            if filled == 0:
                return
            last = filled < part_size
            if last:
                del buffer[filled:]
            yield buffer
            del buffer  # not kept alive here while the next one is read
            if last:
                return

    def recycle(self, piece: bytearray, part_size: int) -> None:
        """Take back a piece whose part S3 confirmed, for the next one to be read into."""
        if len(piece) == part_size:
            self._free.append(piece)

    def _fill(self, buffer: bytearray) -> int:
        view = memoryview(buffer)
        filled = 0
        while filled < len(buffer):
            if self._readinto is not None:
                count = self._readinto(view[filled:])
                if not count:
                    break
            else:
                # A megabyte at a time: a stream's read() may hold what it returns
                # twice over (a compressor's output, say) while making it.
                chunk = self._read(min(CHUNK, len(buffer) - filled))
                if not chunk:
                    break
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise TypeError(f"the file's read() returned {type(chunk).__name__}, not bytes")
                count = len(chunk)
                view[filled:filled + count] = chunk
            filled += count
        view.release()
        return filled

    def close(self) -> None:
        self._free.clear()
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> "Parts":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def prepare(data: Any, codec: Optional[str], multipart_threshold: int, *, md5: bool = True,
            crc: Optional[Algorithm] = None) -> Union[Payload, Parts]:
    """The body for ``data``, compressed with ``codec`` when one is given.

    A body larger than ``multipart_threshold`` bytes (after compression) is returned
    as Parts (each part's digests are the multipart upload's to compute); memory stays
    bounded whatever its size. A Payload comes with the digests asked for (``md5``,
    ``crc``), computed while its bytes were read: never a second pass.
    """
    def digests(data: Any = b"") -> Digests:
        return Digests(md5, crc, data)

    check_data(data)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, memoryview):
        data = data.cast("B").tobytes() if data.contiguous else data.tobytes()
    if isinstance(data, (bytes, bytearray)):
        raw = bytes(data)
        body = compress_bytes(raw, codec) if codec else raw
        if len(body) > multipart_threshold:
            return Parts(io.BytesIO(body).read, len(body))
        return Payload(body, len(body), digests(body))
    read = _binary_reader(data)
    if codec:
        # The compressed size is known only at the end: read as a one-way stream.
        source_size = _remaining_size(data)
        return _from_one_way(CompressingReader(read, codec).read, multipart_threshold, source_size, digests)
    start = _seek_position(data)
    if start is None:
        return _from_one_way(read, multipart_threshold, None, digests)
    size = _remaining_size(data)
    if size is not None and size > multipart_threshold:
        return Parts(read, size, readinto=_binary_readinto(data))
    return _from_rewindable(data, read, start, digests())


def _binary_readinto(fobj: Any) -> Optional[Callable[[Any], int]]:
    """fobj's readinto when it is a binary file that has one (no copy through bytes)."""
    if isinstance(fobj, io.TextIOBase):
        return None
    readinto = getattr(fobj, "readinto", None)
    return readinto if callable(readinto) else None


def _remaining_size(fobj: Any) -> Optional[int]:
    """Bytes left to read in a seekable file, or None when that cannot be known."""
    start = _seek_position(fobj)
    if start is None:
        return None
    try:
        info = os.fstat(fobj.fileno())
        if stat.S_ISREG(info.st_mode):
            return max(0, info.st_size - start)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    try:
        end = int(fobj.seek(0, os.SEEK_END))
        fobj.seek(start)
        return max(0, end - start)
    except (AttributeError, OSError, ValueError):
        return None


def _binary_reader(fobj: Any) -> Read:
    """fobj's read, encoding the str chunks of text-mode files as UTF-8.

    The result never returns more than asked for, though n characters may encode to
    more than n bytes: the surplus waits for the next read.
    """
    surplus = bytearray()

    def read(n: int) -> bytes:
        if surplus:
            out = bytes(surplus[:n])
            del surplus[:n]
            return out
        chunk = fobj.read(n)
        if not isinstance(chunk, str):
            return chunk  # type: ignore[no-any-return]  # bytes-like, checked by the reader
        encoded = chunk.encode("utf-8")
        if len(encoded) > n >= 0:
            surplus.extend(encoded[n:])
            encoded = encoded[:n]
        return encoded

    return read


def _seek_position(fobj: Any) -> Optional[int]:
    """Where a rewindable binary stream stands now, or None when it cannot rewind."""
    if isinstance(fobj, io.TextIOBase):
        return None
    try:
        if not fobj.seekable():
            return None
        return int(fobj.tell())
    except (AttributeError, OSError, ValueError):
        return None


def _from_rewindable(fobj: Any, read: Read, start: int, digests: Digests) -> Payload:
    head = _read_up_to(read, IN_MEMORY_LIMIT + 1, CHUNK)
    digests.update(head)
    if len(head) <= IN_MEMORY_LIMIT:
        return Payload(head, len(head), digests)
    # Hash it in one pass, then let the request stream it from the original file, from
    # where the caller had positioned it.
    size = len(head)
    for chunk in iter(lambda: read(CHUNK), b""):
        digests.update(chunk)
        size += len(chunk)
    fobj.seek(start)
    return Payload(fobj, size, digests, start=start)


def _from_one_way(read: Read, multipart_threshold: int, size_hint: Optional[int],
                  digests: Callable[..., Digests]) -> Union[Payload, Parts]:
    """A stream read once (a pipe, a socket, a text file, compressed output).

    Up to the threshold it is kept (in memory, then spooled to disk), so that a retry
    can send it again; past it, the upload goes multipart and the kept bytes become
    the first parts.
    """
    in_memory = min(multipart_threshold, IN_MEMORY_LIMIT)
    head = _read_up_to(read, in_memory + 1, CHUNK)
    if len(head) <= in_memory:
        return Payload(head, len(head), digests(head))
    if len(head) > multipart_threshold:
        return Parts(_chain(io.BytesIO(head).read, read), None, size_hint)
    # Already past what stays in memory: straight to disk, with no in-memory copy first.
    spool = tempfile.TemporaryFile(prefix="s3po-")
    try:
        computed = digests(head)
        spool.write(head)
        size = len(head)
        del head
        while size <= multipart_threshold:
            chunk = read(min(CHUNK, multipart_threshold + 1 - size))
            if not chunk:
                break
            spool.write(chunk)
            computed.update(chunk)
            size += len(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    if size <= multipart_threshold:
        return Payload(spool, size, computed, owned=True)
    return Parts(_chain(spool.read, read), None, size_hint, close=spool.close)


def _chain(first: Read, then: Read) -> Read:
    """A read() that drains ``first``, then goes on with ``then``."""
    current: list[Optional[Read]] = [first]

    def read(n: int) -> bytes:
        if current[0] is not None:
            chunk = current[0](n)
            if chunk:
                return chunk
            current[0] = None  # lets what ``first`` held go
        return then(n)

    return read


def _read_up_to(read: Read, limit: int, step: Optional[int] = None) -> bytes:
    """Up to ``limit`` bytes, asking ``step`` at a time; fewer only at the end of the stream.

    Without a step, each read asks for all that is missing: a regular file answers in
    one read, with no joining copy, and pipes and sockets with what they have.
    """
    parts = []
    total = 0
    while total < limit:
        chunk = read(min(step, limit - total) if step else limit - total)
        if not chunk:
            break
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"the file's read() returned {type(chunk).__name__}, not bytes")
        if total == 0 and len(chunk) == limit and isinstance(chunk, bytes):
            return chunk
        parts.append(bytes(chunk))
        total += len(chunk)
    return b"".join(parts)
