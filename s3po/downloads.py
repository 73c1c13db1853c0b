"""Downloads: into memory, into a caller's file object, or into a file at a path.

All three run the one engine (ranged.fetch) into a sink, and hand the bytes over only
once they verified: memory is returned, a file object is written once, a file is
renamed into place. Objects stored with Content-Encoding gzip or deflate are decoded
after the fetch, unless the caller asked for the stored bytes.
"""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
from typing import Any, BinaryIO, Optional

from .atomicfile import AtomicFile
from .compression import CHUNK, codec_of, decode_into
from .context import CallContext
from .errors import s3_url
from .progress import Progress
from .runtime import native
from .ranged import Fetched, fetch
from .sinks import FileSink, MemorySink, Sink, SpoolSink, naming
from .units import IN_MEMORY_MAX

__all__ = ["to_file", "to_fileobj", "to_memory"]

logger = logging.getLogger(__name__)


def _fetch(ctx: CallContext, bucket: str, key: str, sink: Sink, progress: Progress) -> Fetched:
    fetched = fetch(ctx, bucket, key, sink, ctx.chunk, progress)
    logger.debug("download %s: %d bytes, checked by %s", s3_url(bucket, key), fetched.size, fetched.check)
    return fetched


def _codec(fetched: Fetched, decompress: bool) -> Optional[str]:
    return codec_of(fetched.content_encoding) if decompress else None


def to_memory(ctx: CallContext, bucket: str, key: str, *, decompress: bool, progress: Progress) -> bytes:
    sink = MemorySink()
    try:
        fetched = _fetch(ctx, bucket, key, sink, progress)
    except BaseException:
        # The failure is kept (by a batch, a handle) with the frames it ran through,
        # and a closure among them may still reach this sink: it lets go now.
        sink.buffer = bytearray()
        raise
    data = bytes(sink.buffer)  # the one copy; BytesIO over bytes shares them
    sink.buffer = bytearray()
    codec = _codec(fetched, decompress)
    if codec is not None:
        decoded = io.BytesIO()
        decode_into(io.BytesIO(data).read, decoded.write, codec)
        data = decoded.getvalue()
    progress.finish()
    return data


def to_fileobj(ctx: CallContext, bucket: str, key: str, fobj: BinaryIO, *, decompress: bool,
               progress: Progress) -> None:
    """Write the object into ``fobj`` once it verified; a failure leaves ``fobj`` untouched."""
    with SpoolSink(native().lock()) as sink:
        fetched = _fetch(ctx, bucket, key, sink, progress)
        codec = _codec(fetched, decompress)
        if codec is None:
            _copy_into(sink.reader(), fobj)
        else:
            # Decoded into a second spool first: a body that does not decode must not
            # leave half its bytes in the caller's file.
            with tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_MAX, prefix="s3po-") as decoded:
                decode_into(sink.reader().read, decoded.write, codec)
                decoded.seek(0)
                _copy_into(decoded, fobj)
    progress.finish()


def _copy_into(source: Any, fobj: BinaryIO) -> None:
    with naming(getattr(fobj, "name", None) or repr(fobj)):
        shutil.copyfileobj(source, fobj, CHUNK * 4)


def to_file(ctx: CallContext, bucket: str, key: str, path: str, *, decompress: bool,
            progress: Progress) -> None:
    """Download into ``path`` atomically (see AtomicFile)."""
    with AtomicFile(path) as target:
        fetched = _fetch(ctx, bucket, key, FileSink(target.file.fileno(), path, native().lock()), progress)
        codec = _codec(fetched, decompress)
        if codec is not None:
            stored = target.file
            stored.seek(0)
            decoded = target.replacement()
            with naming(path):
                decode_into(stored.read, decoded.write, codec)
    progress.finish()
