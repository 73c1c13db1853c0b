"""The exception hierarchy, and the one function that translates botocore errors into it."""

from __future__ import annotations

from typing import Any, Mapping, Optional

__all__ = [
    "BatchError",
    "Cancelled",
    "ChecksumMismatch",
    "DeleteException",
    "DeleteNotFound",
    "DownloadException",
    "DownloadNotFound",
    "NotFound",
    "S3POException",
    "UploadException",
    "UploadNotFound",
    "code_and_message",
    "describe",
    "translate",
]

# Error codes that mean "this bucket or key is not there". HeadObject has no body, so
# its 404 arrives with the bare status as the code (metadata.head tells the two apart).
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
_MISSING_REASONS = {"NoSuchKey": "no such key", "NoSuchBucket": "no such bucket"}


class S3POException(Exception):
    """Base of every error s3po raises for a failed S3 call.

    Carries ``bucket``, ``key``, ``operation`` and the S3 error ``code`` (None when the
    failure was not an S3 error response, such as a broken connection). The original
    error is chained as ``__cause__``.
    """

    def __init__(
        self,
        message: str,
        *,
        bucket: Optional[str] = None,
        key: Optional[str] = None,
        code: Optional[str] = None,
        operation: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.bucket = bucket
        self.key = key
        self.code = code
        self.operation = operation

    @property
    def url(self) -> str:
        """``s3://bucket/key`` (or ``s3://bucket/`` when there is no key)."""
        return s3_url(self.bucket, self.key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r}, code={self.code!r})"

    def __reduce__(self) -> Any:
        # Keyword-only details survive pickling (to another process, a Dask worker...).
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


def _rebuild(cls: type["S3POException"], message: str, state: dict[str, Any]) -> "S3POException":
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class UploadException(S3POException):
    """An upload failed (after its retries, when the failure was transient)."""


class DownloadException(S3POException):
    """A download, read or head failed, or the bytes received did not verify."""


class DeleteException(S3POException):
    """A delete failed; ``failed`` lists ``(key, code, message)`` for each key S3 refused."""

    def __init__(self, message: str, *, failed: Any = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.failed = list(failed)


class NotFound(S3POException):
    """The bucket (code NoSuchBucket) or the key (code NoSuchKey) does not exist.

    Raised by every operation. What is raised is also the operation's own kind of
    error: a missing bucket on upload is both a NotFound and an UploadException.
    """


class DownloadNotFound(NotFound, DownloadException):
    """A download, read, head or listing found no such bucket or key."""


class UploadNotFound(NotFound, UploadException):
    """An upload or copy found no such bucket (or, for a copy, no such source key)."""


class DeleteNotFound(NotFound, DeleteException):
    """A delete found no such bucket."""


_NOT_FOUND: Mapping[type, type] = {
    DownloadException: DownloadNotFound,
    UploadException: UploadNotFound,
    DeleteException: DeleteNotFound,
}


class Cancelled(S3POException):
    """The call was stopped before it finished: its batch was cancelled or the program interrupted.

    A cancelled upload leaves no object and no multipart upload behind; a cancelled
    download leaves no file.
    """


class ChecksumMismatch(Exception):
    """The bytes that arrived are not the bytes that were sent.

    Raised inside an attempt; it is transient (the next attempt usually succeeds) and is
    translated into an Upload/DownloadException when the retries run out.
    """

    def __init__(self, message: str, *, stored: bool = False, version_id: Optional[str] = None,
                 etag: Optional[str] = None) -> None:
        super().__init__(message)
        #: True when the damaged bytes became the object (a PutObject, a completed
        #: multipart upload), so it must be removed; a damaged part never does.
        self.stored = stored
        #: The version and ETag stored damaged, so that exactly it can be removed.
        self.version_id = version_id
        self.etag = etag


class BatchError(S3POException):
    """One or more calls of a batch (or background calls) failed; ``errors`` lists them."""

    def __init__(self, errors: Any) -> None:
        self.errors = list(errors)
        lines = [f"{len(self.errors)} call(s) failed:"]
        lines += [f"  {error}" for error in self.errors[:20]]
        if len(self.errors) > 20:
            lines.append(f"  ... and {len(self.errors) - 20} more")
        super().__init__("\n".join(lines))


def s3_url(bucket: Optional[str], key: Optional[str]) -> str:
    return f"s3://{bucket or ''}/{key or ''}"


def _response(exc: BaseException) -> Optional[Mapping[str, Any]]:
    # botocore's ClientError carries the parsed error response. Checked by shape, not
    # class, so that importing s3po does not import botocore (and with it ssl).
    response = getattr(exc, "response", None)
    return response if isinstance(response, Mapping) else None


def error_code(exc: BaseException) -> Optional[str]:
    """The S3 error code of a botocore ClientError, else None."""
    response = _response(exc)
    if response is None:
        return None
    return response.get("Error", {}).get("Code") or None


def http_status(exc: BaseException) -> Optional[int]:
    response = _response(exc)
    if response is None:
        return None
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status if isinstance(status, int) else None


def translate(
    exc: BaseException,
    cls: type[S3POException],
    operation: str,
    bucket: Optional[str],
    key: Optional[str] = None,
    code: Optional[str] = None,
    detail: Optional[str] = None,
) -> S3POException:
    """Turn any error of an S3 call into an s3po exception of class ``cls``.

    A missing bucket or key becomes the NotFound of ``cls``'s kind. ``code`` overrides
    the error's own (a HEAD's bare 404, once told apart). The caller raises the result
    ``from exc`` so the original stays the ``__cause__``.
    """
    code = code or error_code(exc)
    if code is None and http_status(exc) == 404:
        code = "404"
    if isinstance(exc, Cancelled):
        cls = Cancelled
        reason = "cancelled"
    elif code in _MISSING_CODES:
        cls = next((found for base, found in _NOT_FOUND.items() if issubclass(cls, base)), NotFound)
        reason = _MISSING_REASONS.get(code, "not found (no such key or bucket)")
    else:
        reason = describe(exc)
    if detail:
        reason = f"{detail}: {reason}"
    message = f"{operation} {s3_url(bucket, key)} failed: {reason}"
    return cls(message, bucket=bucket, key=key, code=code, operation=operation)


def describe(exc: BaseException) -> str:
    """One line on what went wrong: "SlowDown (HTTP 503) Please reduce...", or "Type: text"."""
    response = _response(exc)
    if response is not None:
        err = response.get("Error", {})
        code = err.get("Code") or "error"
        text = err.get("Message") or ""
        return f"{code} (HTTP {http_status(exc)}) {text}".strip()
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


def code_and_message(exc: BaseException) -> tuple[str, str]:
    """What a report says of one failure: an error code, and one line.

    The code is S3's own where there was one; "LocalError" for a file's trouble (an
    OSError); else the kind of error, that of its cause for an s3po error without a
    code (ChecksumMismatch, say). The line names the file of a local error, and the
    kind of error where the text alone would not say it.
    """
    if isinstance(exc, S3POException) and exc.code:
        code = exc.code
    elif isinstance(exc, OSError):
        code = "LocalError"
    elif isinstance(exc, S3POException) and exc.__cause__ is not None:
        code = type(exc.__cause__).__name__
    else:
        code = type(exc).__name__
    if isinstance(exc, OSError) and exc.filename is not None:
        return code, f"{exc.filename}: {exc.strerror or exc}"
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if not isinstance(exc, S3POException) and type(exc).__name__ not in line:
        line = f"{type(exc).__name__}: {line}"
    return code, line
