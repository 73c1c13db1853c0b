"""Receiving a GET body: verify it, decode it, write it where a retry can undo it."""

from __future__ import annotations

import io
import shutil
import tempfile
from typing import IO, Any, BinaryIO, Mapping, Optional

from .compression import CHUNK, SPOOL_THRESHOLD, CorruptBody, Decoder, codec_of
from .integrity import BodyCheck
from .records import strip_etag

__all__ = ["Destination", "receive"]


class Destination:
    """Where decoded bytes go; ``reset`` undoes a failed attempt's writes.

    - No file object: bytes collected in memory, returned by ``value``.
    - A seekable file object: written in place, rewound (and truncated) on retry.
    - Any other file object: spooled, and written to it once, after verification, so a
      retry never duplicates bytes the caller already got.
    """

    def __init__(self, fobj: Optional[BinaryIO]) -> None:
        self._target = fobj
        self._start: Optional[int] = None
        if fobj is None:
            self._out: IO[bytes] = io.BytesIO()
        elif _seekable(fobj):
            self._start = fobj.tell()
            self._out = fobj
        else:
            self._out = tempfile.SpooledTemporaryFile(max_size=SPOOL_THRESHOLD, prefix="s3po-")

    @property
    def spooled(self) -> bool:
        return self._out is not self._target and self._target is not None

    def write(self, data: bytes) -> None:
        self._out.write(data)

    def reset(self) -> None:
        """Forget everything written by the attempt that just failed."""
        start = self._start or 0
        self._out.seek(start)
        try:
            self._out.truncate()
        except (OSError, io.UnsupportedOperation):
            # A file that cannot shrink is still overwritten from the start; the next
            # attempt writes as many bytes, so nothing stale survives past its end.
            pass

    def commit(self) -> Optional[bytes]:
        """Finish a verified download; returns the bytes when there is no file object."""
        if self._target is None:
            return self._out.getvalue()  # type: ignore[attr-defined]
        if self.spooled:
            self._out.seek(0)
            shutil.copyfileobj(self._out, self._target, CHUNK)
            self._out.close()
        return None

    def discard(self) -> None:
        """Leave the caller's file as it was before the download began."""
        if self.spooled or self._target is None:
            self._out.close()
        else:
            self.reset()


def receive(response: Mapping[str, Any], dest: Destination, decompress: bool) -> None:
    """Read ``response``'s body into ``dest``, decoding it when asked, and verify it.

    Raises ChecksumMismatch (transient: worth another attempt) when the byte count or
    MD5 is wrong, and CorruptBody (permanent) when the stored bytes do not decode. The
    raw body is read to its end even after a decoding error, so that a body damaged in
    transit is told apart from one stored damaged.
    """
    body = response["Body"]
    check = BodyCheck(strip_etag(response.get("ETag")), response.get("ContentLength"), response)
    codec = codec_of(response.get("ContentEncoding")) if decompress else None
    decoder = Decoder(codec) if codec else None
    corrupt: Optional[CorruptBody] = None
    try:
        while True:
            chunk = body.read(CHUNK)
            if not chunk:
                break
            check.update(chunk)
            if decoder is None:
                dest.write(chunk)
            elif corrupt is None:
                try:
                    for out in decoder.feed(chunk):
                        dest.write(out)
                except CorruptBody as exc:
                    corrupt = exc
    finally:
        body.close()
    check.verify()
    if corrupt is not None:
        raise corrupt
    if decoder is not None:
        decoder.finish()


def _seekable(fobj: Any) -> bool:
    try:
        if not fobj.seekable():
            return False
        fobj.tell()
        return True
    except (AttributeError, OSError, ValueError):
        return False
