"""Connection: configuration, the client, and one method per operation.

Each method checks its arguments (bad ones raise before any request), makes the
call's context and hands over to the module that does the work: uploads.py,
downloads.py, stream.py, listing.py, deleting.py, metadata.py, copying.py,
buckets.py. Errors leave as s3po exceptions: translated here, or where a module knows
more than this boundary does (which part failed, which bucket a 404 meant).
"""

from __future__ import annotations

import functools
import io
import logging
import os
import weakref
from datetime import datetime
from typing import (
    TYPE_CHECKING,
    Any,
    BinaryIO,
    Callable,
    Iterable,
    Iterator,
    Literal,
    Mapping,
    Optional,
    TypeVar,
    Union,
    cast,
    overload,
)

from . import _client, buckets, copying, deleting, downloads, listing, metadata, uploads
from .arguments import check_bucket, check_key, check_path, check_positive_int, check_prefix
from .compression import check_codec
from .context import CallContext, in_call
from .errors import (
    Cancelled,
    DeleteException,
    DownloadException,
    S3POException,
    UploadException,
    translate,
)
from .headers import guess_content_type, to_put_params
from .legacy import LegacyNames
from .parallel import Slots
from .parts import MAX_PART_SIZE, MIN_PART_SIZE
from .payload import check_data
from .progress import Progress, check_progress
from .records import Key, Prefix
from .retry import RetryPolicy, check_retries
from .runtime import Cancellation, NativeWorkers, current, native
from .storechecks import StoreChecks, check_checksum_setting
from .stream import ObjectStream, open_stream
from .units import MiB

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .background import BackgroundCalls
    from .batch import Batch
    from .calls import Call
    from .mock import MockS3
    from .options import (
        CopyOptions,
        DeleteOptions,
        DeletePrefixOptions,
        DownloadFileOptions,
        DownloadOptions,
        HeadOptions,
        ProgressCallback,
        UploadData,
        UploadFileOptions,
        UploadOptions,
    )
    from .trees import TreeProgressCallback, TreeReport

__all__ = ["Connection", "MiB"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
Callback = Optional[Callable[[T], Any]]
PathLike = Union[str, "os.PathLike[str]"]
# Spelled out here: inside class Connection, "list" names the method.
Names = Iterator[str]
Entries = Iterator[Union[Key, Prefix]]
OwnedBuckets = list[tuple[str, Optional[datetime]]]


def _backgroundable(method: F) -> F:
    """Lets ``method`` also run in the background: ``background=True`` returns a Call at once.

    The method keeps its own signature (``background`` and ``callback`` are in it, for
    ``help()`` and type checkers); the body never sees them set.
    """
    name = method.__name__

    @functools.wraps(method)
    def call(self: "Connection", *args: Any, **kwargs: Any) -> Any:
        background = kwargs.pop("background", False)
        callback = kwargs.pop("callback", None)
        if background:
            return self._background().submit(name, args, kwargs, callback)
        if callback is not None:
            raise TypeError(f"{name}(callback=...) needs background=True, or a batch")
        return method(self, *args, **kwargs)

    return cast(F, call)


class Connection(LegacyNames):
    """A connection to S3 (or any S3-compatible store) with retries and integrity checks.

    Arguments, all but ``session`` by keyword:

    - ``session``: a ``boto3.session.Session`` (a profile, assumed-role credentials...);
      default: a new Session, which follows boto3's usual credential chain.
    - ``retries`` (3): retries of each request, part or range; ``retries=N`` means at
      most N+1 attempts (see the README for what each operation's bound covers).
    - ``backoff_base_s`` (0.1), ``backoff_cap_s`` (20.0): seconds; exponential backoff
      with full jitter, capped. ``backoff_base`` and ``backoff_cap`` are the same.
    - ``retry_policy``: a ``RetryPolicy`` instead of the three above.
    - ``multipart_threshold`` (10 MiB): larger bodies go up as multipart uploads.
    - ``part_size`` (None: 8 MiB, grown as needed to stay within 10,000 parts): the size
      of upload parts and of download ranges; 5 MiB to 5 GiB.
    - ``workers`` (8): parts or ranges in flight for one transfer.
    - ``max_connections`` (64): cap on this Connection's requests in flight, across all
      its batches and background calls; botocore's pool is sized to it.
    - ``verify_etag`` (True): compare ETags with the bytes' MD5s (uploads, downloads,
      streams); False for stores whose ETags are never MD5s. Sizes are always checked.
    - ``checksum`` ("auto"): the CRC sent with uploads and checked on downloads where
      the store verifies and keeps one: "auto" (CRC64NVME with awscrt, else CRC32;
      learned per store, see the README), "crc64nvme", "crc32c" or "crc32" (trusted to
      be verified), or "md5" (Content-MD5 and ETags only).
    - ``request_path`` ("lean"): the hot operations (PutObject, UploadPart, GetObject,
      HeadObject, DeleteObject) are signed and sent by s3po itself, everything else
      and every case it does not reproduce exactly by botocore; "botocore" sends
      everything through the boto3 client.
    - Any boto3 client keyword: ``endpoint_url``, ``region_name``, ``aws_access_key_id``,
      ``aws_secret_access_key``, ``aws_session_token``, ``config`` (a botocore Config),
      ``use_ssl``, ``verify``, ``api_version``, ``aws_account_id``.

    The boto3 client is built on first use (so a Connection made before the program
    monkey-patches does not import ssl) and shared by every call: ``conn.client``.
    ``close()``, or leaving ``with Connection(...) as conn:``, waits for background
    calls and releases threads and connections.
    """

    def __init__(
        self,
        session: Any = None,
        *,
        retries: Optional[int] = None,
        backoff_base_s: Optional[float] = None,
        backoff_cap_s: Optional[float] = None,
        retry_policy: Optional[RetryPolicy] = None,
        multipart_threshold: int = 10 * MiB,
        part_size: Optional[int] = None,
        workers: int = 8,
        max_connections: int = 64,
        verify_etag: bool = True,
        checksum: str = "auto",
        request_path: str = "lean",
        backoff_base: Optional[float] = None,
        backoff_cap: Optional[float] = None,
        **client_kwargs: Any,
    ) -> None:
        self.retry_policy = _retry_policy(retry_policy, retries, _alias("backoff_base_s", backoff_base_s,
                                                                         "backoff_base", backoff_base),
                                          _alias("backoff_cap_s", backoff_cap_s, "backoff_cap", backoff_cap))
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
        self.checksum = check_checksum_setting(checksum)
        # Per client (a mock's client is another store), made with it.
        self._store_checks: "weakref.WeakKeyDictionary[Any, StoreChecks]" = weakref.WeakKeyDictionary()
        if request_path not in ("lean", "botocore"):
            raise ValueError(f"request_path must be 'lean' or 'botocore', not {request_path!r}")
        self.request_path = request_path
        self._lean: Any = None  # leanpath.LeanPath, made with the client
        _client.check_client_arguments(session, client_kwargs)
        self._session = session
        self._client_kwargs = dict(client_kwargs)
        # What a copy of this Connection in another process is built from (__reduce__).
        self._arguments: dict[str, Any] = dict(
            retry_policy=self.retry_policy, multipart_threshold=multipart_threshold, part_size=part_size,
            workers=workers, max_connections=max_connections, verify_etag=verify_etag, checksum=self.checksum,
            request_path=request_path, **client_kwargs)
        self._client: Any = None
        self._client_locks: dict[bool, Any] = {}
        self._slots = Slots(max_connections)
        self._native_workers: Optional[NativeWorkers] = None
        self._background_calls: Optional["BackgroundCalls"] = None
        # Native: held only while making the background calls' batch, never across a switch.
        self._setup_lock = native().lock()
        self._said: set[str] = set()
        self._closed = False

    def __repr__(self) -> str:
        # Only where the client points: credentials never appear here.
        if self._client is not None:
            meta = self._client.meta
            return f"<s3po.Connection endpoint={meta.endpoint_url!r} region={meta.region_name!r}>"
        endpoint = self._client_kwargs.get("endpoint_url")
        region = self._client_kwargs.get("region_name")
        return f"<s3po.Connection endpoint={endpoint!r} region={region!r} (client not built yet)>"

    # -- pickling: a Connection travels as its arguments ------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the construction arguments; the receiver builds its own client.

        Nothing of this process travels: no client, pool, thread, lock, background call
        or active mock. Credentials given as arguments travel as given (inside the
        pickle, in clear); without them each process resolves boto3's credential chain
        itself (its environment, profile, instance or container role). A Connection
        made with a boto3 Session cannot travel: a Session's credential providers and
        caches belong to its process, and its credentials may be temporary ones that a
        copy could not refresh.
        """
        if self._session is not None:
            raise TypeError(
                "a Connection made with a boto3 Session cannot be pickled (a Session belongs to "
                "its process); give the credentials or the region as arguments "
                "(aws_access_key_id=..., region_name=...), or none and let each process "
                "resolve boto3's credential chain itself"
            )
        return (_rebuilt, (type(self), self._arguments))

    # -- the client ------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client every call uses (moto's, while a mock is active), built on first use."""
        from . import mock

        mocked = mock.client_for(self)
        if mocked is not None:
            return mocked
        client = self._client
        if client is None:
            self._check_open()
            runtime = current()
            lock = self._client_locks.setdefault(runtime.patched, runtime.lock())
            with lock:
                if self._client is None:
                    self._client = self._build_client()
                client = self._client
        return client

    def _build_client(self) -> Any:
        session = _client.new_session(self._session)
        client = _client.build_client(session, self.max_connections, self._client_kwargs)
        if self.request_path == "lean":
            from . import __version__
            from .leanpath import LeanPath

            self._lean = LeanPath(client, _client.credentials_for(session, self._client_kwargs),
                                  f"s3po/{__version__} {_runtime_agent()}", self.max_connections,
                                  _client.tls_verify(session, self._client_kwargs))
        return client

    @property
    def conn(self) -> Any:
        """The boto3 client, under the name earlier releases gave it."""
        return self.client

    # -- plumbing ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this Connection is closed")

    def _policy(self, retries: Optional[int]) -> RetryPolicy:
        if retries is not None:
            check_retries(retries)
        return self.retry_policy.with_retries(retries)

    def _context(self, retries: Optional[int] = None) -> CallContext:
        self._check_open()
        runtime = current()
        inside = in_call.get()
        client = self.client
        return CallContext(
            connection=self,
            client=client,
            lean=self._lean if client is self._client else None,  # never for a mock's client
            policy=self._policy(retries),
            runtime=runtime,
            cancellation=Cancellation(runtime, parent=inside.cancellation if inside is not None else None),
            holds_slot=inside is not None,
            workers=self.workers,
            part_size=self.part_size,
            verify_etag=self.verify_etag,
            checks=self._checks_for(client),
            slots=self._slots,
        )

    def _checks_for(self, client: Any) -> StoreChecks:
        checks = self._store_checks.get(client)
        if checks is None:
            if client is self._client:
                made = StoreChecks(self.checksum, client.meta.endpoint_url)
            else:
                # A mock's client says it is AWS; its store (moto) is not: it starts unknown,
                # and its stored checksums are not trusted (without the crc32c package moto
                # labels a CRC32 as a CRC32C).
                made = StoreChecks(self.checksum, None, keeps_checksums=False)
            checks = self._store_checks.setdefault(client, made)
        return checks

    def _run(self, operation: str, error_class: type[S3POException], bucket: Optional[str], key: Optional[str],
             work: Callable[[CallContext], T], retries: Optional[int] = None) -> T:
        """Run ``work`` in a new call context; every failure of S3 leaves as an s3po error.

        Errors that are the caller's pass through as they are: bad input found below the
        method (ValueError, TypeError) and local file errors (an OSError naming a file).
        """
        ctx = self._context(retries)
        try:
            return work(ctx)
        except Cancelled as exc:
            if exc.operation is not None:
                raise
            raise translate(exc, error_class, operation, bucket, key) from None  # say which call
        except (S3POException, ValueError, TypeError):
            raise
        except OSError as exc:
            if exc.filename is not None:
                raise
            raise translate(exc, error_class, operation, bucket, key) from exc
        except Exception as exc:
            raise translate(exc, error_class, operation, bucket, key) from exc

    def _say_once(self, topic: str, message: str) -> None:
        """Log ``message`` at INFO the first time ``topic`` comes up on this Connection."""
        if topic not in self._said:
            self._said.add(topic)
            logger.info("%s (said once per Connection)", message)

    def _workers(self) -> NativeWorkers:
        """The native threads that run batch and background calls in an unpatched program."""
        workers = self._native_workers
        if workers is None:
            with self._setup_lock:  # one pool, or a second could escape close()
                self._check_open()
                if self._native_workers is None:
                    self._native_workers = NativeWorkers(self.max_connections, "s3po-call")
                workers = self._native_workers
        return workers

    # -- concurrency -----------------------------------------------------------------

    def batch(self, poolsize: int = 20, *, raise_errors: bool = False, keep_results: bool = True) -> "Batch":
        """A Batch running this connection's calls concurrently, ``poolsize`` at once.

        The requests in flight of all batches and background calls of one connection
        never exceed ``max_connections``: a larger batch queues for free connections.
        """
        from .batch import Batch

        self._check_open()
        return Batch(self, poolsize, raise_errors=raise_errors, keep_results=keep_results)

    def _background(self) -> "BackgroundCalls":
        self._check_open()
        background = self._background_calls
        if background is None:
            from .background import BackgroundCalls

            with self._setup_lock:
                if self._background_calls is None:
                    self._background_calls = BackgroundCalls(self)
                background = self._background_calls
        return background

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for every background call; raise BatchError listing those that failed.

        Works from any thread or greenlet. Returns False if ``timeout`` (seconds)
        passed first, True when all are done.
        """
        background = self._background_calls
        return True if background is None else background.wait(timeout)

    def close(self) -> None:
        """Wait for background calls, then release threads and connections.

        Raises BatchError (after releasing everything) when background calls failed. A
        closed Connection refuses further calls.
        """
        if self._closed:
            return
        try:
            self.wait()
        finally:
            self._release()

    def _release(self) -> None:
        with self._setup_lock:  # no pool of threads is made after this one is closed
            self._closed = True
            workers = self._native_workers
        if workers is not None:
            workers.close()
        client, self._client = self._client, None
        if client is not None:
            client.close()
        if self._lean is not None:
            self._lean.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
            return
        # The block failed: background calls still running are stopped, not waited for.
        try:
            if self._background_calls is not None:
                self._background_calls.cancel()
        finally:
            self._release()

    # -- uploads -------------------------------------------------------------------

    @overload
    def upload(self, bucket: str, key: str, data: "UploadData", *, background: Literal[False] = False,
               **options: "Unpack[UploadOptions]") -> Key: ...

    @overload
    def upload(self, bucket: str, key: str, data: "UploadData", *, background: Literal[True],
               callback: Callback[Key] = None, **options: "Unpack[UploadOptions]") -> "Call[Key]": ...

    @_backgroundable
    def upload(self, bucket: str, key: str, data: "UploadData", *,
               headers: Optional[Mapping[str, Any]] = None, compress: Optional[str] = None,
               retries: Optional[int] = None, progress: Optional["ProgressCallback"] = None,
               background: bool = False, callback: Callback[Key] = None) -> Any:
        """Store ``data`` (str, bytes-like or a binary/text file object) at bucket/key.

        - ``headers``: HTTP headers by their usual names (Content-Type, Cache-Control,
          x-amz-meta-*, ...); an unknown one raises ValueError.
        - ``compress='gzip'`` or ``'deflate'``: compress the body (streaming, for files)
          and set Content-Encoding.
        - ``retries``: this call's retries (default: the Connection's).
        - ``progress(bytes_done, bytes_total)``: called as parts are confirmed, and once
          at the end.
        - ``background`` (False): True returns a started Call at once, and
          ``callback(key)`` runs when it succeeds; ``conn.wait()`` waits for all
          background calls.

        The MD5 of the bytes sent goes out as Content-MD5 and is compared with the ETag
        that comes back; a mismatch is retried, and damaged bytes are never left stored.
        Bodies larger than ``multipart_threshold`` go up as a multipart upload (aborted
        on failure). Returns the stored object's Key.
        """
        check_bucket(bucket)
        check_key(key)
        codec = check_codec(compress)
        params = _put_params(key, headers, codec)
        report = Progress(check_progress(progress))
        check_data(data)
        return self._run("upload", UploadException, bucket, key, lambda ctx: uploads.upload(
            ctx, bucket, key, data, params=params, codec=codec,
            multipart_threshold=self.multipart_threshold, progress=report), retries)

    @overload
    def upload_file(self, bucket: str, key: str, path: PathLike, *, background: Literal[False] = False,
                    **options: "Unpack[UploadFileOptions]") -> Key: ...

    @overload
    def upload_file(self, bucket: str, key: str, path: PathLike, *, background: Literal[True],
                    callback: Callback[Key] = None, **options: "Unpack[UploadFileOptions]") -> "Call[Key]": ...

    @_backgroundable
    def upload_file(self, bucket: str, key: str, path: PathLike, *,
                    headers: Optional[Mapping[str, Any]] = None, compress: Optional[str] = None,
                    retries: Optional[int] = None, delete: bool = False,
                    progress: Optional["ProgressCallback"] = None,
                    background: bool = False, callback: Callback[Key] = None) -> Any:
        """Upload the file at ``path``; ``delete=True`` removes it once the upload is confirmed.

        Options as for ``upload`` (``headers``, ``compress``, ``retries``, ``progress``,
        ``background``, ``callback``); large files go up in parts.
        """
        path = check_path(path)
        check_bucket(bucket)
        check_key(key)
        if os.path.isdir(path):
            raise IsADirectoryError(f"cannot upload {path!r}: it is a directory")
        if not os.path.exists(path):
            raise FileNotFoundError(2, "no such file to upload", path)
        codec = check_codec(compress)
        params = _put_params(key, headers, codec)
        report = Progress(check_progress(progress))
        return self._run("upload", UploadException, bucket, key, lambda ctx: uploads.upload_file(
            ctx, bucket, key, path, params=params, codec=codec,
            multipart_threshold=self.multipart_threshold, progress=report, delete=delete), retries)

    # -- downloads -----------------------------------------------------------------

    @overload
    def download(self, bucket: str, key: str, fobj: None = None, *, background: Literal[False] = False,
                 **options: "Unpack[DownloadOptions]") -> bytes: ...

    @overload
    def download(self, bucket: str, key: str, fobj: BinaryIO, *, background: Literal[False] = False,
                 **options: "Unpack[DownloadOptions]") -> None: ...

    @overload
    def download(self, bucket: str, key: str, fobj: None = None, *, background: Literal[True],
                 callback: Callback[bytes] = None, **options: "Unpack[DownloadOptions]") -> "Call[bytes]": ...

    @overload
    def download(self, bucket: str, key: str, fobj: BinaryIO, *, background: Literal[True],
                 callback: Callback[None] = None, **options: "Unpack[DownloadOptions]") -> "Call[None]": ...

    @_backgroundable
    def download(self, bucket: str, key: str, fobj: Optional[BinaryIO] = None, *,
                 retries: Optional[int] = None, decompress: bool = True,
                 progress: Optional["ProgressCallback"] = None,
                 background: bool = False, callback: Callback[Any] = None) -> Any:
        """The object's bytes, or None after writing them into the binary file ``fobj``.

        - ``decompress`` (True): objects stored with Content-Encoding gzip or deflate are
          decoded; False gives the stored bytes.
        - ``retries``, ``progress(bytes_done, bytes_total)`` (stored bytes received),
          ``background``, ``callback``: as for ``upload``.

        Size and content are verified before anything is handed over. Objects larger
        than ``part_size`` (8 MiB by default) are fetched as ``workers`` concurrent
        ranges. Into ``fobj``, nothing is written until the bytes verified, so a failed
        download leaves ``fobj`` as it was.
        """
        check_bucket(bucket)
        check_key(key)
        report = Progress(check_progress(progress))
        if fobj is None:
            return self._run("download", DownloadException, bucket, key, lambda ctx: downloads.to_memory(
                ctx, bucket, key, decompress=decompress, progress=report), retries)
        if isinstance(fobj, (io.TextIOBase, str, bytes, os.PathLike)):
            raise TypeError("fobj must be a file object opened in binary mode ('wb'); for a path use download_file")
        if not callable(getattr(fobj, "write", None)):
            raise TypeError(f"fobj must be a binary file object with write(), not {type(fobj).__name__}")
        target = fobj
        return self._run("download", DownloadException, bucket, key, lambda ctx: downloads.to_fileobj(
            ctx, bucket, key, target, decompress=decompress, progress=report), retries)

    @overload
    def download_file(self, bucket: str, key: str, path: PathLike, *, background: Literal[False] = False,
                      **options: "Unpack[DownloadFileOptions]") -> None: ...

    @overload
    def download_file(self, bucket: str, key: str, path: PathLike, *, background: Literal[True],
                      callback: Callback[None] = None,
                      **options: "Unpack[DownloadFileOptions]") -> "Call[None]": ...

    @_backgroundable
    def download_file(self, bucket: str, key: str, path: PathLike, *,
                      retries: Optional[int] = None, decompress: bool = True,
                      progress: Optional["ProgressCallback"] = None,
                      background: bool = False, callback: Callback[None] = None) -> Any:
        """Download into the file at ``path``, atomically.

        Options as for ``download`` (``retries``, ``decompress``, ``progress``,
        ``background``, ``callback``). The bytes land in a preallocated temporary file
        beside ``path`` (ranges written in place), renamed into place once verified. On
        any failure nothing is left at ``path`` (an existing file there is untouched),
        no temporary file remains, and folders this call created are removed. A full
        disk fails at once, before the ranges are fetched, with an OSError naming ``path``.
        """
        path = check_path(path)
        check_bucket(bucket)
        check_key(key)
        report = Progress(check_progress(progress))
        return self._run("download", DownloadException, bucket, key, lambda ctx: downloads.to_file(
            ctx, bucket, key, path, decompress=decompress, progress=report), retries)

    def open(self, bucket: str, key: str, *, decompress: bool = True, retries: Optional[int] = None) -> ObjectStream:
        """A read-only binary stream of the object, decompressed like ``download``.

        An object up to ``part_size`` (8 MiB by default) streams from one GET; a
        connection that breaks mid-stream resumes with a Range request pinned to the
        ETag (each resume spends a retry). A larger one is fetched ahead as ``workers``
        concurrent ranges pinned to the ETag, each retried on its own, with at most
        ``workers`` + 1 ranges in memory. Size and content are checked at the end.
        """
        check_bucket(bucket)
        check_key(key)
        return self._run("open", DownloadException, bucket, key, lambda ctx: open_stream(
            ctx, bucket, key, decompress, ctx.chunk), retries)

    # -- listing and metadata --------------------------------------------------------

    def list(self, bucket: str, prefix: str = "", *, delimiter: Optional[str] = None,
             start_after: Optional[str] = None) -> Names:
        """Key names under ``prefix``, lazily, across all pages.

        With a ``delimiter``, yields the keys at that level and the common prefixes
        (which end with the delimiter), merged in S3's order (UTF-8 bytes). To tell a
        folder-marker key from a common prefix of the same name, use ``entries``.
        ``start_after``: only what sorts after this string (S3's StartAfter).
        """
        return self._listing(listing.names, bucket, prefix, delimiter, start_after)

    def objects(self, bucket: str, prefix: str = "", *, delimiter: Optional[str] = None,
                start_after: Optional[str] = None) -> Iterator[Key]:
        """Key records (size, etag, last_modified in UTC, storage_class) under ``prefix``, lazily.

        With a ``delimiter``, only the keys at that level (no common prefixes).
        ``start_after``: only keys that sort after this string (S3's StartAfter).
        """
        return self._listing(listing.objects, bucket, prefix, delimiter, start_after)

    def entries(self, bucket: str, prefix: str = "", *, delimiter: Optional[str] = "/",
                start_after: Optional[str] = None) -> Entries:
        """The keys (as Key records) and common prefixes (as Prefix records) at one level.

        In S3's order; ``delimiter`` defaults to "/", so this lists one "folder".
        ``start_after``: only what sorts after this string (S3's StartAfter).
        """
        return self._listing(listing.entries, bucket, prefix, delimiter, start_after)

    def _listing(self, kind: Callable[[CallContext, str, str, Optional[str], Optional[str]], Iterator[T]],
                 bucket: str, prefix: str, delimiter: Optional[str], start_after: Optional[str]) -> Iterator[T]:
        check_bucket(bucket)
        check_prefix(prefix)
        if start_after is not None:
            check_prefix(start_after, "start_after")
        if delimiter is not None:
            check_prefix(delimiter, "delimiter")
            if not delimiter:
                raise ValueError("delimiter must not be empty (use None for no delimiter)")
        ctx = self._context()
        pages = kind(ctx, bucket, prefix, delimiter, start_after)

        def translated() -> Iterator[T]:
            try:
                yield from pages
            except (S3POException, ValueError, TypeError):
                raise
            except Exception as exc:
                raise translate(exc, DownloadException, "list", bucket, prefix) from exc

        return translated()

    @overload
    def head(self, bucket: str, key: str, *, background: Literal[False] = False,
             **options: "Unpack[HeadOptions]") -> Key: ...

    @overload
    def head(self, bucket: str, key: str, *, background: Literal[True], callback: Callback[Key] = None,
             **options: "Unpack[HeadOptions]") -> "Call[Key]": ...

    @_backgroundable
    def head(self, bucket: str, key: str, *, retries: Optional[int] = None,
             background: bool = False, callback: Callback[Key] = None) -> Any:
        """The object's Key record, with content_type, content_encoding and metadata.

        A missing key raises NotFound with code NoSuchKey, a missing bucket NotFound with
        code NoSuchBucket. ``retries``, ``background``, ``callback``: as for ``upload``.
        """
        check_bucket(bucket)
        check_key(key)
        return self._run("head", DownloadException, bucket, key, lambda ctx: metadata.head(ctx, bucket, key),
                         retries)

    def _stored_checksum(self, bucket: str, key: str) -> Optional[tuple[str, str]]:
        """The object's full-object checksum (algorithm, base64), or None (see metadata.stored_checksum_of).

        Not public: a HEAD with checksum mode needs kms:Decrypt on KMS-encrypted objects,
        which a plain HEAD does not; only the comparison of copies asks it.
        """
        result: Optional[tuple[str, str]] = self._run(
            "head", DownloadException, bucket, key, lambda ctx: metadata.stored_checksum_of(ctx, bucket, key))
        return result

    @overload
    def exists(self, bucket: str, key: str, *, background: Literal[False] = False,
               **options: "Unpack[HeadOptions]") -> bool: ...

    @overload
    def exists(self, bucket: str, key: str, *, background: Literal[True], callback: Callback[bool] = None,
               **options: "Unpack[HeadOptions]") -> "Call[bool]": ...

    @_backgroundable
    def exists(self, bucket: str, key: str, *, retries: Optional[int] = None,
               background: bool = False, callback: Callback[bool] = None) -> Any:
        """True if the object exists, False if the bucket has no such key.

        A missing bucket is not a missing key: it raises NotFound (code NoSuchBucket).
        A 403 raises too: it says nothing of the key. ``retries``, ``background``,
        ``callback``: as for ``upload``.
        """
        check_bucket(bucket)
        check_key(key)
        return self._run("exists", DownloadException, bucket, key, lambda ctx: metadata.exists(ctx, bucket, key),
                         retries)

    # -- deleting, copying, buckets -----------------------------------------------------

    @overload
    def delete(self, bucket: str, key: str, *, background: Literal[False] = False,
               **options: "Unpack[DeleteOptions]") -> None: ...

    @overload
    def delete(self, bucket: str, key: str, *, background: Literal[True], callback: Callback[None] = None,
               **options: "Unpack[DeleteOptions]") -> "Call[None]": ...

    @_backgroundable
    def delete(self, bucket: str, key: str, *, retries: Optional[int] = None,
               background: bool = False, callback: Callback[None] = None) -> Any:
        """Delete one object; deleting a missing key succeeds, as on S3 (a missing bucket raises NotFound).

        ``retries``, ``background``, ``callback``: as for ``upload``.
        """
        check_bucket(bucket)
        check_key(key)
        return self._run("delete", DeleteException, bucket, key, lambda ctx: deleting.delete(ctx, bucket, key),
                         retries)

    @overload
    def delete_many(self, bucket: str, keys: Iterable[str], *, background: Literal[False] = False,
                    **options: "Unpack[DeleteOptions]") -> int: ...

    @overload
    def delete_many(self, bucket: str, keys: Iterable[str], *, background: Literal[True],
                    callback: Callback[int] = None, **options: "Unpack[DeleteOptions]") -> "Call[int]": ...

    @_backgroundable
    def delete_many(self, bucket: str, keys: Iterable[str], *, retries: Optional[int] = None,
                    background: bool = False, callback: Callback[int] = None) -> Any:
        """Delete ``keys`` with DeleteObjects, 1,000 a request; returns how many S3 reported deleted.

        S3 counts keys that did not exist as deleted. Keys S3 refused are listed in the
        DeleteException raised once every chunk has been tried. ``retries`` (for each
        request), ``background``, ``callback``: as for ``upload``.
        """
        check_bucket(bucket)
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
            raise TypeError("keys must be an iterable of key names (a list, not a single str)")
        names = [check_key(key) for key in keys]
        return self._run("delete", DeleteException, bucket, None,
                         lambda ctx: deleting.delete_keys(ctx, bucket, names), retries)

    @overload
    def delete_prefix(self, bucket: str, prefix: str, *, background: Literal[False] = False,
                      **options: "Unpack[DeletePrefixOptions]") -> int: ...

    @overload
    def delete_prefix(self, bucket: str, prefix: str, *, background: Literal[True],
                      callback: Callback[int] = None,
                      **options: "Unpack[DeletePrefixOptions]") -> "Call[int]": ...

    @_backgroundable
    def delete_prefix(self, bucket: str, prefix: str, *, whole_bucket: bool = False,
                      retries: Optional[int] = None,
                      background: bool = False, callback: Callback[int] = None) -> Any:
        """Delete every object under ``prefix``; returns how many S3 reported deleted.

        An empty prefix means every object in the bucket: that needs
        ``whole_bucket=True``, and raises ValueError otherwise, before any request.
        ``retries`` (for each request), ``background``, ``callback``: as for ``upload``.
        """
        check_bucket(bucket)
        check_prefix(prefix)
        if not prefix and not whole_bucket:
            raise ValueError(
                f"delete_prefix({bucket!r}, '') would delete every object in bucket {bucket!r}; "
                "pass whole_bucket=True to do that"
            )
        return self._run("delete", DeleteException, bucket, prefix,
                         lambda ctx: deleting.delete_prefix(ctx, bucket, prefix), retries)

    @overload
    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, *,
             background: Literal[False] = False, **options: "Unpack[CopyOptions]") -> Key: ...

    @overload
    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, *,
             background: Literal[True], callback: Callback[Key] = None,
             **options: "Unpack[CopyOptions]") -> "Call[Key]": ...

    @_backgroundable
    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, *,
             retries: Optional[int] = None,
             background: bool = False, callback: Callback[Key] = None) -> Any:
        """Copy an object server-side; returns the new object's Key (with its size).

        A missing source key or bucket raises NotFound naming the source; a missing
        destination bucket, NotFound naming the destination. ``retries``,
        ``background``, ``callback``: as for ``upload``.
        """
        for bucket, key in ((src_bucket, src_key), (dst_bucket, dst_key)):
            check_bucket(bucket)
            check_key(key)
        return self._run("copy", UploadException, dst_bucket, dst_key,
                         lambda ctx: copying.copy(ctx, src_bucket, src_key, dst_bucket, dst_key), retries)

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` in the client's region; a bucket you already own is fine."""
        check_bucket(bucket)
        self._run("create_bucket", S3POException, bucket, None, lambda ctx: buckets.create_bucket(ctx, bucket))

    def list_buckets(self) -> OwnedBuckets:
        """The buckets the credentials own, as (name, creation date in UTC), retried as every call is."""
        return self._run("list_buckets", S3POException, None, None, buckets.list_buckets)

    # -- whole trees (s3po/trees.py) ---------------------------------------------------

    def upload_tree(self, bucket: str, prefix: str, directory: PathLike, *,
                    include: Optional[Iterable[str]] = None, exclude: Optional[Iterable[str]] = None,
                    sync: bool = False, compare: str = "size-mtime", delete: bool = False,
                    max_delete: Optional[int] = None, dry_run: bool = False,
                    progress: Optional["TreeProgressCallback"] = None, jobs: Optional[int] = None,
                    compress: Optional[str] = None, headers: Optional[Mapping[str, Any]] = None) -> "TreeReport":
        """Upload every file under ``directory`` to ``prefix`` (a folder: "a" means "a/").

        key = prefix + the file's path relative to ``directory``, with "/" separators.

        - ``include`` / ``exclude``: glob patterns on the relative path (exclude wins).
        - ``sync=True``: skip files the prefix already holds the same, by ``compare``:
          "size-mtime" (same size, object not older than the file), "size", or
          "checksum" (same size and the ETag is the file's MD5, or its multipart ETag).
        - ``delete=True`` (with ``sync``): delete keys under the prefix that have no file;
          ``max_delete=N``: if more than N would go, delete none (``report.deletes_refused``).
        - ``dry_run=True``: change nothing; ``report.planned`` lists what would be done.
        - ``progress(TreeProgress)``: after each step and as bytes move (calls never overlap).
        - ``jobs``: requests in flight (default: ``max_connections``).
        - ``compress``, ``headers``: as for ``upload_file``, for every file. With
          ``compress``, a ``sync`` compares by age alone (the object not older than the
          file): sizes differ; "size" and "checksum" are refused (ValueError).

        Returns a TreeReport; failures of single files are in ``report.failed``, not raised.
        Folders or files that cannot be looked at and names that are not UTF-8 are
        reported as failures; symlinks to folders are not entered and are listed in
        ``report.not_followed`` (not a failure); ``delete`` removes nothing at or below
        any of them, whatever ``include`` and ``exclude`` say.
        The listing streams and the two sides are compared as two sorted streams: memory
        does not grow with the number of files. Interrupted (Ctrl-C, an exception in a
        progress callback), it leaves no multipart upload behind.
        """
        from . import trees

        check_bucket(bucket)
        check_prefix(prefix)
        directory = check_path(directory)
        options = trees.check_options(self, include, exclude, sync, compare, delete, dry_run, progress, jobs,
                                      max_delete)
        codec = check_codec(compress)
        _put_params("x", headers, codec)  # bad headers raise here, before any request
        return trees.upload_tree(self, bucket, prefix, directory, options, headers=headers, compress=codec)

    def download_tree(self, bucket: str, prefix: str, directory: PathLike, *,
                      include: Optional[Iterable[str]] = None, exclude: Optional[Iterable[str]] = None,
                      sync: bool = False, compare: str = "size-mtime", delete: bool = False,
                      max_delete: Optional[int] = None, dry_run: bool = False,
                      progress: Optional["TreeProgressCallback"] = None, jobs: Optional[int] = None,
                      decompress: bool = True) -> "TreeReport":
        """Download every key under ``prefix`` into ``directory``, each file atomically.

        Options as for ``upload_tree`` (``delete`` removes local files that have no key);
        ``decompress`` as for ``download_file``. Each file gets its object's LastModified
        as mtime, so a second ``sync`` moves nothing (with ``decompress``, a file whose
        mtime is exactly that stamp is the same even where its size is not the stored
        one). Never writes outside ``directory``: keys whose relative part is absolute,
        has a ".", ".." or empty component, a NUL, this system's other path separator or
        a component over 255 bytes, and keys that would write through a symlink
        pointing outside, are reported as failures; folder markers ("a/") make folders;
        a key below another key (``a/b`` below ``a``) is a conflict, reported. A failed
        or interrupted download leaves no temporary and no partial file.
        """
        from . import trees

        check_bucket(bucket)
        check_prefix(prefix)
        directory = check_path(directory)
        options = trees.check_options(self, include, exclude, sync, compare, delete, dry_run, progress, jobs,
                                      max_delete)
        return trees.download_tree(self, bucket, prefix, directory, options, decompress=decompress)

    def copy_tree(self, src_bucket: str, src_prefix: str, dst_bucket: str, dst_prefix: str, *,
                  include: Optional[Iterable[str]] = None, exclude: Optional[Iterable[str]] = None,
                  sync: bool = False, compare: str = "size-mtime", delete: bool = False,
                  max_delete: Optional[int] = None, dry_run: bool = False,
                  progress: Optional["TreeProgressCallback"] = None,
                  jobs: Optional[int] = None) -> "TreeReport":
        """Copy every key under ``src_prefix`` to ``dst_prefix``, server-side.

        Options as for ``upload_tree``; "checksum" compares ETags, and where they cannot
        tell (an object uploaded in parts and its copy) the stored full-object checksums,
        one HEAD of each. Prefixes of one bucket that hold one another are refused
        (ValueError).
        """
        from . import trees

        for bucket, prefix in ((src_bucket, src_prefix), (dst_bucket, dst_prefix)):
            check_bucket(bucket)
            check_prefix(prefix)
        options = trees.check_options(self, include, exclude, sync, compare, delete, dry_run, progress, jobs,
                                      max_delete)
        return trees.copy_tree(self, src_bucket, src_prefix, dst_bucket, dst_prefix, options)

    # -- testing -----------------------------------------------------------------------

    def mock(self, buckets: Iterable[str] = ()) -> "MockS3":
        """Route every Connection's calls to moto's in-memory S3 (a context manager)."""
        from .mock import MockS3

        return MockS3(self, buckets)


def _rebuilt(cls: type[Connection], arguments: dict[str, Any]) -> Connection:
    """A Connection unpickled: made anew from the arguments it was made with."""
    return cls(**arguments)


def _alias(name: str, value: Optional[float], old_name: str, old_value: Optional[float]) -> Optional[float]:
    if old_value is None:
        return value
    if value is not None:
        raise TypeError(f"give {name} or {old_name} (its earlier name), not both")
    return old_value


def _retry_policy(policy: Optional[RetryPolicy], retries: Optional[int], base: Optional[float],
                  cap: Optional[float]) -> RetryPolicy:
    if policy is not None:
        if not isinstance(policy, RetryPolicy):
            raise TypeError(f"retry_policy must be a RetryPolicy, not {type(policy).__name__}")
        if (retries, base, cap) != (None, None, None):
            raise TypeError("give retry_policy or retries/backoff_base_s/backoff_cap_s, not both")
        return policy
    defaults = RetryPolicy()
    return RetryPolicy(
        defaults.retries if retries is None else retries,
        defaults.backoff_base_s if base is None else base,
        defaults.backoff_cap_s if cap is None else cap,
    )


def _put_params(key: str, headers: Optional[Mapping[str, Any]], codec: Optional[str]) -> dict[str, Any]:
    """PutObject parameters from the caller's headers, the codec and the key's extension."""
    params = to_put_params(headers)
    if codec:
        declared = params.get("ContentEncoding")
        if declared and declared.strip().lower() != codec:
            raise ValueError(f"headers set Content-Encoding {declared!r} but compress={codec!r}")
        params["ContentEncoding"] = codec
    if "ContentType" not in params:
        guessed = guess_content_type(key)
        if guessed:
            params["ContentType"] = guessed
    return params


def _runtime_agent() -> str:
    import platform

    import botocore

    return f"Python/{platform.python_version()} botocore/{botocore.__version__}"
