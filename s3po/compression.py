"""gzip and deflate, both ways, streaming; the one place that decides the codec.

"deflate" follows HTTP: a zlib stream (RFC 1950). Decoding also accepts raw deflate,
which some servers send under that name, and gzip files of several members.
"""

from __future__ import annotations

import gzip
import zlib
from typing import Callable, Iterator, Optional

from .units import IN_MEMORY_MAX

__all__ = [
    "CODECS",
    "CompressingReader",
    "CorruptBody",
    "Decoder",
    "check_codec",
    "codec_of",
    "compress_bytes",
    "decode_into",
]

CODECS = ("deflate", "gzip")
CHUNK = 256 * 1024
# Compressed output up to this size stays in memory; past it, it spools to disk.
SPOOL_THRESHOLD = IN_MEMORY_MAX

_ALIASES = {"gzip": "gzip", "x-gzip": "gzip", "deflate": "deflate"}


class CorruptBody(Exception):
    """A compressed body that does not decode (damaged, or cut short)."""


def check_codec(compress: Optional[str]) -> Optional[str]:
    """Validate the ``compress=`` argument; ValueError names what is supported."""
    if compress is None:
        return None
    if compress not in CODECS:
        raise ValueError(
            f"unsupported compression {compress!r}; supported: {', '.join(repr(c) for c in CODECS)}"
        )
    return compress


def codec_of(content_encoding: Optional[str]) -> Optional[str]:
    """The codec that decodes a stored Content-Encoding, or None to leave bytes alone."""
    if not content_encoding:
        return None
    return _ALIASES.get(content_encoding.strip().lower())


def _compressor(codec: str) -> "zlib._Compress":
    # mtime=0 keeps gzip output reproducible: the same input gives the same ETag.
    if codec == "gzip":
        return zlib.compressobj(6, zlib.DEFLATED, 31)
    return zlib.compressobj(6, zlib.DEFLATED, 15)


def compress_bytes(data: bytes, codec: str) -> bytes:
    if codec == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    return zlib.compress(data, 6)


class CompressingReader:
    """A file-like ``read(n)`` of the compressed form of what ``read`` returns.

    Compresses as it is read, in bounded chunks, so a stream of any size is uploaded
    compressed without ever being held whole, in memory or on disk.
    """

    def __init__(self, read: Callable[[int], bytes], codec: str) -> None:
        self._read = read
        self._compressor: Optional["zlib._Compress"] = _compressor(codec)
        self._pending = bytearray()

    def read(self, size: int = -1) -> bytes:
        while self._compressor is not None and (size < 0 or len(self._pending) < size):
            chunk = self._read(CHUNK)
            if isinstance(chunk, str):
                chunk = chunk.encode("utf-8")
            if chunk:
                self._pending += self._compressor.compress(chunk)
            else:
                self._pending += self._compressor.flush()
                self._compressor = None
        if size < 0 or size >= len(self._pending):
            out = bytes(self._pending)
            self._pending.clear()
        else:
            out = bytes(self._pending[:size])
            del self._pending[:size]
        return out


class Decoder:
    """Streaming decoder: ``feed`` compressed bytes, get bounded chunks of output.

    ``finish`` raises CorruptBody when the stream stopped before its end. Each output
    chunk is at most CHUNK bytes, so a small body that inflates hugely (a "zip bomb")
    never sits in memory whole. Feeds may be cut anywhere: the output does not depend
    on where one feed ends and the next begins.
    """

    def __init__(self, codec: str) -> None:
        self.codec = codec
        # Made by the first bytes, so that an empty body (an empty object stored with
        # a Content-Encoding header) has no stream left unfinished.
        self._inflater: Optional["zlib._Decompress"] = None
        # Bytes too few to tell what follows (at most one); joined to the next feed.
        self._held = b""
        self._padded = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            yield from self._feed(data)
        except zlib.error as exc:
            raise CorruptBody(f"{self.codec} body does not decode: {exc}") from exc

    def _feed(self, data: bytes) -> Iterator[bytes]:
        if self._held:
            data, self._held = self._held + data, b""
        while True:
            if self._inflater is None or self._inflater.eof:
                data = self._start(data)
                if not data:
                    return
            inflater = self._inflater
            assert inflater is not None  # _start made one, or returned nothing to decode
            out = inflater.decompress(data, CHUNK)
            if out:
                yield out
            if inflater.eof:
                data = inflater.unused_data
            else:
                data = inflater.unconsumed_tail
                # A full chunk may leave output pending inside zlib even when all the
                # input was taken: ask again until a short chunk says it is drained.
                if not data and len(out) < CHUNK:
                    return

    def _start(self, data: bytes) -> bytes:
        """Start the stream that ``data`` begins, if it begins one; return what to inflate."""
        if not data:
            return b""
        if self._inflater is None:
            if self.codec == "gzip":
                self._inflater = zlib.decompressobj(31)
            elif len(data) < 2:
                # One byte cannot tell a zlib header from raw deflate.
                self._held = bytes(data)
                return b""
            else:
                self._inflater = zlib.decompressobj(15 if _looks_like_zlib(data) else -15)
            return data
        # A gzip file may hold several members back to back (gzip a b > ab.gz); zero
        # padding after the last one is tolerated, and anything after the padding is
        # garbage, as gzip(1) has it.
        if self.codec == "gzip" and not self._padded:
            if data[:2] == b"\x1f\x8b":
                self._inflater = zlib.decompressobj(31)
                return data
            if data == b"\x1f":
                # The feed ended between the magic bytes of the next member.
                self._held = bytes(data)
                return b""
        if not data.strip(b"\x00"):
            self._padded = True
            return b""
        raise CorruptBody(f"{self.codec} body has {len(data)} unexpected bytes after its end")

    def finish(self) -> None:
        if self._held or (self._inflater is not None and not self._inflater.eof):
            raise CorruptBody(f"{self.codec} body ends before the end of its compressed stream")


def _looks_like_zlib(data: bytes) -> bool:
    if len(data) < 2:
        return True
    cmf, flg = data[0], data[1]
    return cmf & 0x0F == 8 and (cmf * 256 + flg) % 31 == 0


def decode_into(read: Callable[[int], bytes], write: Callable[[bytes], object], codec: str) -> None:
    """Decode everything ``read`` returns with ``codec``, in bounded chunks, into ``write``.

    Raises CorruptBody when the bytes do not decode or stop before their end.
    """
    decoder = Decoder(codec)
    for chunk in iter(lambda: read(CHUNK * 4), b""):
        for out in decoder.feed(chunk):
            write(out)
    decoder.finish()
