"""Turns what the caller wants uploaded into a rewindable body with its size and MD5."""

from __future__ import annotations

import base64
import hashlib
import io
import tempfile
from typing import IO, Any, Optional, Union

from .compression import SPOOL_THRESHOLD, compress_bytes, compress_stream

__all__ = ["Payload", "prepare"]

MiB = 1024 * 1024
CHUNK = 1 * MiB
# Bodies up to this size are sent as bytes. botocore adds "Expect: 100-continue" to
# every file-like body, which costs a round trip per request: too much for small ones.
IN_MEMORY_LIMIT = 8 * MiB


class Payload:
    """A body ready to send as many times as retries need.

    ``body`` is bytes, or a seekable binary file positioned at ``start``. ``rewind``
    puts it back for the next attempt; ``close`` releases any spool we made.
    """

    def __init__(self, body: Union[bytes, IO[bytes]], size: int, md5: "hashlib._Hash", *,
                 start: int = 0, owned: bool = False) -> None:
        self.body = body
        self.size = size
        self.md5_hex = md5.hexdigest()
        self.content_md5 = base64.b64encode(md5.digest()).decode("ascii")
        self._start = start
        self._owned = owned

    def rewind(self) -> None:
        if not isinstance(self.body, bytes):
            self.body.seek(self._start)

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


def prepare(data: Any, codec: Optional[str]) -> Payload:
    """A Payload for ``data``, compressed with ``codec`` when one is given."""
    check_data(data)
    if isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, memoryview):
        data = data.cast("B").tobytes() if data.contiguous else data.tobytes()
    if isinstance(data, (bytes, bytearray)):
        raw = bytes(data)
        body = compress_bytes(raw, codec) if codec else raw
        return Payload(body, len(body), hashlib.md5(body))
    read = _binary_reader(data)
    if codec:
        spool = compress_stream(read, codec)
        if spool.size <= IN_MEMORY_LIMIT:
            body = spool.file.read()
            spool.file.close()
            return Payload(body, spool.size, spool.md5)
        return Payload(spool.file, spool.size, spool.md5, owned=True)
    return _from_stream(data, read)


def _binary_reader(fobj: Any):
    """fobj's read, encoding str chunks of text-mode files as UTF-8."""
    if isinstance(fobj, io.TextIOBase):
        return lambda n: fobj.read(n).encode("utf-8")

    def read(n: int) -> bytes:
        chunk = fobj.read(n)
        return chunk.encode("utf-8") if isinstance(chunk, str) else chunk

    return read


def _seek_position(fobj: Any) -> Optional[int]:
    """Where a rewindable binary stream stands now, or None when it cannot rewind."""
    if isinstance(fobj, io.TextIOBase):
        return None
    try:
        if not fobj.seekable():
            return None
        return fobj.tell()
    except (AttributeError, OSError, ValueError):
        return None


def _from_stream(fobj: Any, read) -> Payload:
    start = _seek_position(fobj)
    md5 = hashlib.md5()
    head = _read_up_to(read, IN_MEMORY_LIMIT + 1)
    if len(head) <= IN_MEMORY_LIMIT:
        md5.update(head)
        return Payload(head, len(head), md5)
    if start is not None:
        # Large and rewindable: hash it in one pass, then let botocore stream it from
        # the original file, from where the caller had positioned it.
        md5.update(head)
        size = len(head)
        for chunk in iter(lambda: read(CHUNK), b""):
            md5.update(chunk)
            size += len(chunk)
        fobj.seek(start)
        return Payload(fobj, size, md5, start=start)
    # Large and not rewindable (a pipe, a socket, a text stream): spool it, so a retry
    # can send it again and nothing is ever uploaded partially.
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_THRESHOLD, prefix="s3po-")
    try:
        size = 0
        chunk = head
        while chunk:
            spool.write(chunk)
            md5.update(chunk)
            size += len(chunk)
            chunk = read(CHUNK)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return Payload(spool, size, md5, owned=True)


def _read_up_to(read, limit: int) -> bytes:
    parts = []
    total = 0
    while total < limit:
        chunk = read(min(CHUNK, limit - total))
        if not chunk:
            break
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"the file's read() returned {type(chunk).__name__}, not bytes")
        parts.append(bytes(chunk))
        total += len(chunk)
    return b"".join(parts)
