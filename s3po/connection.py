"""Connection: the single-call API over one boto3 S3 client."""

from __future__ import annotations

import atexit
import functools
import heapq
import io
import logging
import os
import secrets
import threading
import warnings
import weakref
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping, Optional, TypeVar

from . import _client
from .arguments import check_bucket, check_key, check_path, check_positive_int, check_prefix
from .compression import check_codec, codec_of, decode_into
from .errors import (
    BatchError,
    ChecksumMismatch,
    DeleteException,
    DownloadException,
    NotFound,
    S3POException,
    UploadException,
    s3_url,
    translate,
)
from .headers import guess_content_type, to_put_params
from .integrity import verify_upload_etag
from .multipart import upload_parts
from .parts import DEFAULT_PART_SIZE, MAX_PART_SIZE, MIN_PART_SIZE, TransferSettings, choose_part_size
from .payload import Parts, prepare
from .progress import Progress, check_progress
from .ranged import FileSink, MemorySink, fetch
from .receive import Destination, receive
from .records import Key, from_head, from_listing, strip_etag
from .retry import RetryPolicy, check_retries
from .stream import ObjectStream, open_stream

__all__ = ["Connection", "MiB"]

# Spelled out here: inside class Connection, "list" names the method.
KeyChunk = list[str]
Refusals = list[tuple[str, str, str]]

logger = logging.getLogger(__name__)
T = TypeVar("T")

MiB = 1024 * 1024
DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys a request


def _backgroundable(method: Callable[..., T]) -> Callable[..., Any]:
    """Lets ``method`` also run in the background: ``background=True`` returns a Greenlet."""
    name = method.__name__

    @functools.wraps(method)
    def call(self: "Connection", *args: Any, background: bool = False,
             callback: Optional[Callable[[Any], Any]] = None, **kwargs: Any) -> Any:
        if background:
            return self._background_batch().submit(name, args, kwargs, callback)
        if callback is not None:
            raise TypeError(f"{name}(callback=...) needs background=True, or a batch")
        return method(self, *args, **kwargs)

    return call


class Connection:
    """A connection to S3 (or any S3-compatible store) with retries and integrity checks.

    ``session`` is a boto3 Session (default: a new one, which follows boto3's usual
    credential chain). Any boto3 client keyword (``endpoint_url``, ``region_name``,
    ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``, ``config``)
    passes through. The client is built once and shared by every call: ``conn.conn``.
    """

    def __init__(
        self,
        session: Any = None,
        *,
        retries: int = 3,
        backoff_base: float = 0.1,
        backoff_cap: float = 20.0,
        multipart_threshold: int = 10 * MiB,
        part_size: Optional[int] = None,
        workers: int = 8,
        max_connections: int = 64,
        verify_etag: bool = True,
        **client_kwargs: Any,
    ) -> None:
        self.retry_policy = RetryPolicy(retries, backoff_base, backoff_cap)
        self.multipart_threshold = check_positive_int("multipart_threshold", multipart_threshold, MIN_PART_SIZE)
        if part_size is not None:
            check_positive_int("part_size", part_size, MIN_PART_SIZE)
            if part_size > MAX_PART_SIZE:
                raise ValueError(f"part_size must be at most 5 GiB ({MAX_PART_SIZE} bytes), not {part_size!r}")
        self.part_size = part_size
        self.workers = check_positive_int("workers", workers)
        self.max_connections = check_positive_int("max_connections", max_connections)
        if not isinstance(verify_etag, bool):
            raise TypeError(f"verify_etag must be True or False, not {verify_etag!r}")
        self.verify_etag = verify_etag
        self.conn = _client.build_client(session, max_connections, client_kwargs)
        self._in_flight: Any = None  # concurrency.Limiters, made on first concurrent use
        self._background: Any = None  # the Batch behind background=True calls
        self._background_thread: Optional[int] = None
        self._setup_lock = threading.Lock()

    def __repr__(self) -> str:
        # Only where the client points: credentials never appear here.
        meta = self.conn.meta
        return f"<s3po.Connection endpoint={meta.endpoint_url!r} region={meta.region_name!r}>"

    # -- plumbing ------------------------------------------------------------------

    def _policy(self, retries: Optional[int]) -> RetryPolicy:
        if retries is not None:
            check_retries(retries)
        return self.retry_policy.with_retries(retries)

    def _run(
        self,
        operation: str,
        error_class: type[S3POException],
        bucket: str,
        key: Optional[str],
        attempt: Callable[[], T],
        policy: Optional[RetryPolicy] = None,
        on_retry: Optional[Callable[[], None]] = None,
    ) -> T:
        """One S3 call with the retry policy; every failure leaves as an s3po error."""
        policy = policy or self.retry_policy
        return self._translated(
            operation, error_class, bucket, key,
            lambda: policy.call(attempt, what=f"{operation} {s3_url(bucket, key)}", on_retry=on_retry),
        )

    @staticmethod
    def _translated(operation: str, error_class: type[S3POException], bucket: str, key: Optional[str],
                    work: Callable[[], T]) -> T:
        """Run ``work`` (which retries on its own); every failure leaves as an s3po error."""
        try:
            return work()
        except S3POException:
            raise
        except Exception as exc:
            raise translate(exc, error_class, operation, bucket, key) from exc

    def _transfer(self, policy: RetryPolicy) -> TransferSettings:
        return TransferSettings(self.conn, policy, self.workers, self._limiters, self.part_size, self.verify_etag)

    # -- concurrency -----------------------------------------------------------------

    def batch(self, poolsize: int = 20, *, raise_errors: bool = False, keep_results: bool = True):
        """A Batch running this connection's calls concurrently, ``poolsize`` at once.

        The requests in flight of all batches and background calls of one connection
        never exceed ``max_connections``: a larger batch queues for free connections.
        """
        from .batch import Batch

        return Batch(self, poolsize, raise_errors=raise_errors, keep_results=keep_results)

    def _limiters(self):
        with self._setup_lock:
            if self._in_flight is None:
                from .concurrency import Limiters

                self._in_flight = Limiters(self.max_connections)
            return self._in_flight

    def _background_batch(self):
        if self._background is None:
            self._background = self.batch(self.max_connections, keep_results=False)
            self._background_thread = threading.get_ident()
            _with_background_work.add(self)
        elif self._background_thread != threading.get_ident():
            raise RuntimeError("background calls of one Connection must come from one thread")
        return self._background

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for every background call; raise BatchError listing those that failed.

        Returns False if ``timeout`` (seconds) passed first, True when all are done.
        """
        background = self._background
        if background is None:
            return True
        done = background.wait(timeout)
        failed = background.take_errors()
        if failed:
            raise BatchError(failed)
        return done

    # -- uploads -------------------------------------------------------------------

    @_backgroundable
    def upload(
        self,
        bucket: str,
        key: str,
        data: Any,
        headers: Optional[Mapping[str, Any]] = None,
        compress: Optional[str] = None,
        retries: Optional[int] = None,
        *,
        progress: Optional[Callable[[int, Optional[int]], Any]] = None,
    ) -> Key:
        """Store ``data`` (str, bytes-like or a binary/text file object) at bucket/key.

        The MD5 of the bytes sent goes out as Content-MD5 and is compared with the
        ETag that comes back (where that ETag is an MD5); a mismatch is retried. With
        ``compress='gzip'`` or ``'deflate'`` the body is compressed (streaming, for
        files) and Content-Encoding is set. Bodies larger than ``multipart_threshold``
        go up as a multipart upload: ``workers`` parts at once, each verified and
        retried on its own, aborted on failure. ``progress(bytes_done, bytes_total)``
        is called as parts are confirmed, and once at the end. Returns the stored
        object's Key.
        """
        check_bucket(bucket)
        check_key(key)
        codec = check_codec(compress)
        params = to_put_params(headers)
        policy = self._policy(retries)
        report = Progress(check_progress(progress))
        if codec:
            declared = params.get("ContentEncoding")
            if declared and declared.strip().lower() != codec:
                raise ValueError(f"headers set Content-Encoding {declared!r} but compress={codec!r}")
            params["ContentEncoding"] = codec
        if "ContentType" not in params:
            guessed = guess_content_type(key)
            if guessed:
                params["ContentType"] = guessed
        with prepare(data, codec, self.multipart_threshold) as payload:
            if isinstance(payload, Parts):
                return self._upload_parts(bucket, key, params, payload, policy, report)

            def attempt() -> Key:
                response = self.conn.put_object(
                    Bucket=bucket, Key=key, Body=payload.body, ContentMD5=payload.content_md5, **params
                )
                etag = strip_etag(response.get("ETag"))
                if self.verify_etag:
                    verify_upload_etag(payload.md5_hex, etag, response)
                return Key(bucket, key, size=payload.size, etag=etag, version_id=response.get("VersionId"))

            stored = self._removing_damage(
                bucket, key, lambda: self._run("upload", UploadException, bucket, key, attempt, policy, payload.rewind)
            )
            report.total = payload.size
            report.advance(payload.size)
            report.finish()
            return stored

    def _upload_parts(self, bucket: str, key: str, params: dict[str, Any], body: Parts,
                      policy: RetryPolicy, report: Progress) -> Key:
        # Chosen before the first request, so a size S3 cannot take fails at once.
        part_size = choose_part_size(body.size_hint, self.part_size)
        report.total = body.size
        stored = self._removing_damage(bucket, key, lambda: self._translated(
            "upload", UploadException, bucket, key,
            lambda: upload_parts(self._transfer(policy), bucket, key, params, body, part_size, report),
        ))
        report.finish()
        return stored

    def _removing_damage(self, bucket: str, key: str, upload: Callable[[], Key]) -> Key:
        """Run ``upload``; if it failed having stored damaged bytes, remove them."""
        try:
            return upload()
        except UploadException as exc:
            cause = exc.__cause__
            if isinstance(cause, ChecksumMismatch) and cause.stored:
                self._remove_corrupt(bucket, key, cause.version_id)
            raise

    def _remove_corrupt(self, bucket: str, key: str, version_id: Optional[str]) -> None:
        """Delete what a failed upload stored damaged, so no wrong bytes stay behind."""
        extra = {"VersionId": version_id} if version_id else {}
        try:
            self.conn.delete_object(Bucket=bucket, Key=key, **extra)
        except Exception as exc:
            logger.warning("upload %s: could not remove the damaged object: %s", s3_url(bucket, key), exc)

    @_backgroundable
    def upload_file(
        self,
        bucket: str,
        key: str,
        path: Any,
        headers: Optional[Mapping[str, Any]] = None,
        compress: Optional[str] = None,
        retries: Optional[int] = None,
        delete: bool = False,
        *,
        progress: Optional[Callable[[int, Optional[int]], Any]] = None,
    ) -> Key:
        """Upload the file at ``path``; ``delete=True`` removes it once the upload is confirmed.

        Large files go up in parts, as with ``upload``; ``progress`` is called likewise.
        """
        path = check_path(path)
        check_bucket(bucket)
        check_key(key)
        if os.path.isdir(path):
            raise IsADirectoryError(f"cannot upload {path!r}: it is a directory")
        with open(path, "rb") as fobj:
            result = self.upload(bucket, key, fobj, headers=headers, compress=compress, retries=retries,
                                 progress=progress)
        if delete:
            os.remove(path)
        return result

    # -- downloads -----------------------------------------------------------------

    @_backgroundable
    def download(
        self,
        bucket: str,
        key: str,
        fobj: Optional[BinaryIO] = None,
        retries: Optional[int] = None,
        decompress: bool = True,
        *,
        progress: Optional[Callable[[int, Optional[int]], Any]] = None,
    ) -> Optional[bytes]:
        """The object's bytes, or None after writing them into the binary file ``fobj``.

        Objects stored with Content-Encoding gzip or deflate are decompressed unless
        ``decompress=False``. Size and content are verified. Into memory, objects
        larger than ``part_size`` (8 MiB by default) are fetched as ``workers``
        concurrent ranges. Into ``fobj``, the object streams in one request; a retry
        never duplicates bytes in ``fobj``, and a failure leaves it as it was.
        ``progress(bytes_done, bytes_total)`` counts the stored bytes received.
        """
        check_bucket(bucket)
        check_key(key)
        policy = self._policy(retries)
        report = Progress(check_progress(progress))
        if fobj is None:
            return self._download_to_memory(bucket, key, policy, decompress, report)
        if isinstance(fobj, io.TextIOBase):
            raise TypeError("fobj must be opened in binary mode ('wb'), not text mode")
        if not callable(getattr(fobj, "write", None)):
            raise TypeError(f"fobj must be a binary file object with write(), not {type(fobj).__name__}")
        dest = Destination(fobj)
        received = [0]

        def attempt() -> None:
            response = self.conn.get_object(Bucket=bucket, Key=key)
            received[0] = response.get("ContentLength") or 0
            receive(response, dest, decompress)

        try:
            self._run("download", DownloadException, bucket, key, attempt, policy, dest.reset)
        except BaseException:
            dest.discard()
            raise
        dest.commit()
        report.total = received[0]
        report.advance(received[0])
        report.finish()
        return None

    def _download_to_memory(self, bucket: str, key: str, policy: RetryPolicy, decompress: bool,
                            report: Progress) -> bytes:
        sink = MemorySink()
        fetched = self._fetch(bucket, key, sink, policy, report)
        codec = codec_of(fetched.content_encoding) if decompress else None
        data = bytes(sink.buffer)  # the one copy; BytesIO over bytes shares them
        sink.buffer = bytearray()
        if codec is not None:
            decoded = io.BytesIO()
            self._translated("download", DownloadException, bucket, key,
                             lambda: decode_into(io.BytesIO(data).read, decoded.write, codec))
            data = decoded.getvalue()
        report.finish()
        return data

    def _fetch(self, bucket: str, key: str, sink: Any, policy: RetryPolicy, report: Progress) -> Any:
        chunk = self.part_size or DEFAULT_PART_SIZE
        return self._translated("download", DownloadException, bucket, key,
                                lambda: fetch(self._transfer(policy), bucket, key, sink, chunk, report))

    @_backgroundable
    def download_file(
        self,
        bucket: str,
        key: str,
        path: Any,
        retries: Optional[int] = None,
        decompress: bool = True,
        *,
        progress: Optional[Callable[[int, Optional[int]], Any]] = None,
    ) -> None:
        """Download into the file at ``path``, atomically.

        Objects larger than ``part_size`` (8 MiB by default) are fetched as ``workers``
        concurrent ranges pinned to one ETag, written in place into a preallocated
        temporary file beside ``path`` that is renamed into place once verified. On
        any failure nothing is left at ``path`` (an existing file there is untouched),
        no temporary file remains, and folders this call created are removed.
        ``progress(bytes_done, bytes_total)`` counts the stored bytes received.
        """
        path = check_path(path)
        check_bucket(bucket)
        check_key(key)
        policy = self._policy(retries)
        report = Progress(check_progress(progress))
        if os.path.isdir(path):
            raise IsADirectoryError(f"cannot download to {path!r}: it is a directory")
        folder, name = os.path.split(os.path.abspath(path))
        created = _make_folders(folder)
        temporaries = [_temporary_name(folder, name)]
        try:
            # os.open honours the umask, so the final file gets the usual permissions.
            fd = os.open(temporaries[0], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "r+b") as raw:
                fetched = self._fetch(bucket, key, FileSink(raw.fileno()), policy, report)
                codec = codec_of(fetched.content_encoding) if decompress else None
                if codec is not None:
                    temporaries.append(_temporary_name(folder, name))
                    fd = os.open(temporaries[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                    with os.fdopen(fd, "wb") as decoded:
                        self._translated("download", DownloadException, bucket, key,
                                         lambda: decode_into(raw.read, decoded.write, codec))
            os.replace(temporaries[-1], path)
            if len(temporaries) > 1:
                os.remove(temporaries[0])
        except BaseException:
            for temporary in temporaries:
                _remove_quietly(temporary)
            for made in reversed(created):
                try:
                    os.rmdir(made)
                except OSError:
                    break
            raise
        report.finish()

    def open(
        self, bucket: str, key: str, decompress: bool = True, retries: Optional[int] = None
    ) -> ObjectStream:
        """A read-only binary stream of the object, decompressed like ``download``.

        An object up to ``part_size`` (8 MiB by default) streams from one GET; a
        connection that breaks mid-stream resumes with a Range request pinned to the
        ETag (each resume spends a retry). A larger one is fetched ahead as ``workers``
        concurrent ranges pinned to the ETag, each retried on its own, with at most
        ``workers`` + 1 ranges in memory. Size and content are checked at the end.
        """
        check_bucket(bucket)
        check_key(key)
        chunk = self.part_size or DEFAULT_PART_SIZE
        return open_stream(self._transfer(self._policy(retries)), bucket, key, decompress, chunk)

    # -- listing and metadata --------------------------------------------------------

    def list(self, bucket: str, prefix: str = "", delimiter: Optional[str] = None) -> Iterator[str]:
        """Key names under ``prefix``, lazily, across all pages.

        With a ``delimiter``, yields the keys at that level and the common prefixes
        (which end with the delimiter), merged in S3's order (UTF-8 bytes).
        """
        check_bucket(bucket)
        check_prefix(prefix)
        if delimiter is not None:
            check_prefix(delimiter, "delimiter")
            if not delimiter:
                raise ValueError("delimiter must not be empty (use None for no delimiter)")
        return self._list_names(bucket, prefix, delimiter)

    def _list_names(self, bucket: str, prefix: str, delimiter: Optional[str]) -> Iterator[str]:
        for page in self._pages(bucket, prefix, delimiter):
            keys = [entry["Key"] for entry in page.get("Contents", ())]
            if delimiter is None:
                yield from keys
            else:
                prefixes = [entry["Prefix"] for entry in page.get("CommonPrefixes", ())]
                yield from heapq.merge(keys, prefixes, key=_utf8)

    def objects(self, bucket: str, prefix: str = "") -> Iterator[Key]:
        """Key records (size, etag, last_modified, storage_class) under ``prefix``, lazily."""
        check_bucket(bucket)
        check_prefix(prefix)
        return (from_listing(bucket, entry) for page in self._pages(bucket, prefix, None)
                for entry in page.get("Contents", ()))

    def _pages(self, bucket: str, prefix: str, delimiter: Optional[str]) -> Iterator[Mapping[str, Any]]:
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if delimiter is not None:
            request["Delimiter"] = delimiter
        while True:
            page = self._run(
                "list", DownloadException, bucket, prefix, lambda: self.conn.list_objects_v2(**request)
            )
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            request["ContinuationToken"] = token

    @_backgroundable
    def head(self, bucket: str, key: str) -> Key:
        """The object's Key record, with content_type, content_encoding and metadata."""
        check_bucket(bucket)
        check_key(key)
        response = self._run(
            "head", DownloadException, bucket, key, lambda: self.conn.head_object(Bucket=bucket, Key=key)
        )
        return from_head(bucket, key, response)

    @_backgroundable
    def exists(self, bucket: str, key: str) -> bool:
        """True if the object exists; False on a 404 (missing key or bucket alike)."""
        try:
            self.head(bucket, key)
        except NotFound:
            return False
        return True

    # -- deleting, copying, buckets -----------------------------------------------------

    @_backgroundable
    def delete(self, bucket: str, key: str) -> None:
        """Delete one object; deleting a missing key succeeds, as on S3."""
        check_bucket(bucket)
        check_key(key)
        self._run("delete", DeleteException, bucket, key, lambda: self.conn.delete_object(Bucket=bucket, Key=key))

    @_backgroundable
    def delete_many(self, bucket: str, keys: Iterable[str]) -> int:
        """Delete ``keys`` with DeleteObjects, 1,000 a request; returns how many S3 reported deleted.

        S3 counts keys that did not exist as deleted. Keys S3 refused are listed in the
        DeleteException raised once every chunk has been tried.
        """
        check_bucket(bucket)
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
            raise TypeError("keys must be an iterable of key names (a list, not a single str)")
        keys = [check_key(key) for key in keys]
        return self._delete_chunks(bucket, None, _chunks(iter(keys), DELETE_BATCH))

    @_backgroundable
    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many S3 reported deleted."""
        check_bucket(bucket)
        check_prefix(prefix)
        return self._delete_chunks(bucket, prefix, _chunks(self._list_names(bucket, prefix, None), DELETE_BATCH))

    def _delete_chunks(self, bucket: str, prefix: Optional[str], chunks: Iterator[KeyChunk]) -> int:
        deleted = 0
        refused: Refusals = []
        for chunk in chunks:
            request = {"Objects": [{"Key": key} for key in chunk], "Quiet": False}

            def attempt(request: dict = request) -> Any:
                return self.conn.delete_objects(Bucket=bucket, Delete=request)

            response = self._run("delete", DeleteException, bucket, prefix, attempt)
            deleted += len(response.get("Deleted", ()))
            refused += [(e.get("Key"), e.get("Code"), e.get("Message")) for e in response.get("Errors", ())]
        if refused:
            shown = ", ".join(f"{key} ({code})" for key, code, _ in refused[:10])
            more = f" and {len(refused) - 10} more" if len(refused) > 10 else ""
            error = DeleteException(
                f"delete {s3_url(bucket, prefix)}: S3 refused {len(refused)} key(s): {shown}{more}",
                bucket=bucket, key=prefix, code=refused[0][1], operation="delete", failed=refused,
            )
            error.deleted = deleted  # type: ignore[attr-defined]
            raise error
        return deleted

    @_backgroundable
    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str,
             retries: Optional[int] = None) -> Key:
        """Copy an object server-side; returns the new object's Key."""
        for bucket, key in ((src_bucket, src_key), (dst_bucket, dst_key)):
            check_bucket(bucket)
            check_key(key)
        source = {"Bucket": src_bucket, "Key": src_key}

        def attempt() -> Key:
            response = self.conn.copy_object(CopySource=source, Bucket=dst_bucket, Key=dst_key)
            result = response.get("CopyObjectResult", {})
            return Key(dst_bucket, dst_key, etag=strip_etag(result.get("ETag")),
                       last_modified=result.get("LastModified"), version_id=response.get("VersionId"))

        try:
            return self._run("copy", UploadException, dst_bucket, dst_key, attempt, self._policy(retries))
        except UploadException as exc:
            # NoSuchKey can only be the source; NoSuchBucket could be either bucket,
            # so it stays an UploadException that names the code.
            if exc.code == "NoSuchKey":
                raise NotFound(
                    f"copy {s3_url(src_bucket, src_key)} -> {s3_url(dst_bucket, dst_key)} failed: "
                    f"{exc.code}", bucket=src_bucket, key=src_key, code=exc.code, operation="copy",
                ) from exc.__cause__
            raise

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` in the client's region; a bucket you already own is fine."""
        check_bucket(bucket)
        request: dict[str, Any] = {"Bucket": bucket}
        region = self.conn.meta.region_name
        if region and region != "us-east-1":
            # us-east-1 is the one region that refuses an explicit LocationConstraint.
            request["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self._run("create_bucket", S3POException, bucket, None, lambda: self.conn.create_bucket(**request))
        except S3POException as exc:
            if exc.code != "BucketAlreadyOwnedByYou":
                raise

    # -- testing -----------------------------------------------------------------------

    def mock(self, buckets: Iterable[str] = ()):
        """Route this connection's calls to moto's in-memory S3 (a context manager)."""
        from .mock import MockS3

        return MockS3(self, buckets)

    # -- names of earlier s3po releases ------------------------------------------------

    def uploadString(self, bucket: str, key: str, data: Any, *args: Any, **kwargs: Any) -> Key:
        """Deprecated: use ``upload``."""
        _deprecated("uploadString", "upload")
        return self.upload(bucket, key, data, *args, **kwargs)

    def uploadFile(self, bucket: str, key: str, path_or_file: Any, *args: Any, **kwargs: Any) -> Key:
        """Deprecated: use ``upload_file`` (a path) or ``upload`` (a file object)."""
        _deprecated("uploadFile", "upload_file")
        if callable(getattr(path_or_file, "read", None)):
            return self.upload(bucket, key, path_or_file, *args, **kwargs)
        return self.upload_file(bucket, key, path_or_file, *args, **kwargs)

    def downloadString(self, bucket: str, key: str, *args: Any, **kwargs: Any) -> Optional[bytes]:
        """Deprecated: use ``download``."""
        _deprecated("downloadString", "download")
        return self.download(bucket, key, None, *args, **kwargs)

    def downloadFile(self, bucket: str, key: str, path_or_file: Any, *args: Any, **kwargs: Any) -> None:
        """Deprecated: use ``download_file`` (a path) or ``download`` (a file object)."""
        _deprecated("downloadFile", "download_file")
        if callable(getattr(path_or_file, "write", None)):
            self.download(bucket, key, path_or_file, *args, **kwargs)
            return None
        return self.download_file(bucket, key, path_or_file, *args, **kwargs)


_with_background_work: "weakref.WeakSet[Connection]" = weakref.WeakSet()


@atexit.register
def _finish_background_work() -> None:
    """At exit, finish background calls still pending rather than drop them."""
    for connection in list(_with_background_work):
        background = connection._background
        if background.pending:
            logger.warning("finishing %d background call(s) of %r before exit", background.pending, connection)
        background.wait()
        background.report_errors()


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"Connection.{old} is deprecated; use Connection.{new}", DeprecationWarning, stacklevel=3)


def _utf8(name: str) -> bytes:
    return name.encode("utf-8", "surrogatepass")


def _chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _make_folders(folder: str) -> list[str]:
    """Create ``folder`` and missing parents; returns those created, outermost first."""
    missing = []
    current = folder
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    created = []
    for path in reversed(missing):
        try:
            os.mkdir(path)
            created.append(path)
        except FileExistsError:
            pass
    return created


def _temporary_name(folder: str, name: str) -> str:
    return os.path.join(folder, f".{name}.{secrets.token_hex(6)}.s3po-part")


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
