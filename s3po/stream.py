"""``Connection.open``: a read-only stream of one object that resumes where it broke."""

from __future__ import annotations

import io
import logging
from typing import Any, Iterator

from .compression import CHUNK, CorruptBody, Decoder, codec_of
from .errors import ChecksumMismatch, DownloadException, describe, s3_url, translate
from .integrity import BodyCheck
from .records import Key, from_head, strip_etag
from .retry import RetryPolicy, is_transient

__all__ = ["ObjectStream", "open_stream"]

logger = logging.getLogger(__name__)


class ObjectStream(io.BufferedReader):
    """A buffered binary stream of an S3 object; ``info`` is the object's Key record."""

    info: Key


def open_stream(client: Any, bucket: str, key: str, policy: RetryPolicy, decompress: bool) -> ObjectStream:
    """Send the first GET (retried like any call) and wrap its body in a stream."""
    what = f"open {s3_url(bucket, key)}"
    try:
        response = policy.call(lambda: client.get_object(Bucket=bucket, Key=key), what=what)
    except Exception as exc:
        raise translate(exc, DownloadException, "open", bucket, key) from exc
    raw: io.RawIOBase = _ResumingReader(client, bucket, key, policy, response)
    codec = codec_of(response.get("ContentEncoding")) if decompress else None
    if codec:
        raw = _DecodingReader(raw, codec, bucket, key)
    stream = ObjectStream(raw, buffer_size=CHUNK)
    stream.info = from_head(bucket, key, response)
    return stream


class _ResumingReader(io.RawIOBase):
    """The raw bytes of one object version.

    When the connection breaks mid-body, it asks again with ``Range`` from the current
    offset and ``If-Match`` on the ETag, so a resume can never splice two versions
    together. Each resume spends one of the call's retries. Size and MD5 are verified
    when the body ends.
    """

    def __init__(self, client: Any, bucket: str, key: str, policy: RetryPolicy, response: Any) -> None:
        super().__init__()
        self._client = client
        self._bucket = bucket
        self._key = key
        self._policy = policy
        self._body = response["Body"]
        self._etag_header = response.get("ETag")
        self._size = response.get("ContentLength")
        self._check = BodyCheck(strip_etag(self._etag_header), self._size, response)
        self._offset = 0
        self._retries_used = 0
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._ended or len(buffer) == 0:
            return 0
        while True:
            try:
                chunk = self._body.read(min(len(buffer), CHUNK))
                break
            except Exception as exc:
                if not is_transient(exc):
                    raise translate(exc, DownloadException, "read", self._bucket, self._key) from exc
                self._resume(exc)
        if not chunk:
            self._end()
            return 0
        self._check.update(chunk)
        self._offset += len(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _resume(self, cause: BaseException) -> None:
        while True:
            if self._retries_used >= self._policy.retries:
                raise translate(cause, DownloadException, "read", self._bucket, self._key) from cause
            self._retries_used += 1
            wait = self._policy.delay(self._retries_used)
            logger.warning(
                "read %s: stream broke at byte %d (%s); resuming, attempt %d of %d, in %.2f s",
                s3_url(self._bucket, self._key),
                self._offset,
                describe(cause),
                self._retries_used + 1,
                self._policy.attempts,
                wait,
            )
            self._policy.sleep(wait)
            self._close_body()
            try:
                response = self._client.get_object(
                    Bucket=self._bucket,
                    Key=self._key,
                    Range=f"bytes={self._offset}-",
                    IfMatch=self._etag_header,
                )
            except Exception as exc:
                if not is_transient(exc):
                    raise translate(exc, DownloadException, "read", self._bucket, self._key) from exc
                cause = exc
                continue
            content_range = response.get("ContentRange") or ""
            if not content_range.startswith(f"bytes {self._offset}-"):
                # A server that ignored Range sent the object from its start: reading on
                # would splice the beginning in after the bytes already handed out.
                response["Body"].close()
                raise DownloadException(
                    f"read {s3_url(self._bucket, self._key)} failed: asked to resume at byte "
                    f"{self._offset} but the server answered {content_range or 'without a range'}",
                    bucket=self._bucket, key=self._key, operation="read",
                ) from cause
            self._body = response["Body"]
            return

    def _end(self) -> None:
        self._ended = True
        self._close_body()
        try:
            self._check.verify()
        except ChecksumMismatch as exc:
            raise translate(exc, DownloadException, "read", self._bucket, self._key) from exc

    def _close_body(self) -> None:
        try:
            self._body.close()
        except Exception:  # closing a broken connection may itself fail; it is gone either way
            pass

    def close(self) -> None:
        if not self.closed:
            self._close_body()
        super().close()


class _DecodingReader(io.RawIOBase):
    """Decompresses another raw stream on the fly, in bounded chunks."""

    def __init__(self, raw: io.RawIOBase, codec: str, bucket: str, key: str) -> None:
        super().__init__()
        self._raw = raw
        self._decoder = Decoder(codec)
        self._bucket = bucket
        self._key = key
        self._outputs: Iterator[bytes] = iter(())
        self._pending = b""
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            while not self._pending:
                self._pending = next(self._outputs, b"")
                if self._pending:
                    break
                if self._ended:
                    return 0
                chunk = self._raw.read(CHUNK)
                if chunk:
                    self._outputs = self._decoder.feed(chunk)
                else:
                    self._ended = True
                    self._decoder.finish()
        except CorruptBody as exc:
            raise translate(exc, DownloadException, "read", self._bucket, self._key) from exc
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()
