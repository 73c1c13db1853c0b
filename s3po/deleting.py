"""Deleting: one key, many keys with DeleteObjects (1,000 a request), everything under a prefix."""

from __future__ import annotations

from typing import Iterable, Iterator, Optional, Sequence, TypeVar

from .context import CallContext
from .errors import DeleteException, code_and_message, s3_url
from .listing import names

__all__ = ["DELETE_BATCH", "chunked", "delete", "delete_keys", "delete_prefix", "outcome"]

T = TypeVar("T")
DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys a request


def delete(ctx: CallContext, bucket: str, key: str) -> None:
    ctx.request("delete_object", what=f"delete {s3_url(bucket, key)}", Bucket=bucket, Key=key)


def delete_keys(ctx: CallContext, bucket: str, keys: Iterable[str], what: Optional[str] = None) -> int:
    """Delete ``keys`` in chunks; returns how many the store reported deleted.

    Keys the store refused are listed in the DeleteException raised once every chunk
    has been tried. ``what`` names the request in errors (a prefix, say).
    """
    deleted = 0
    refused: list[tuple[str, str, str]] = []
    for chunk in _chunks(iter(keys), DELETE_BATCH):
        request = {"Objects": [{"Key": key} for key in chunk], "Quiet": False}
        response = ctx.request("delete_objects", what=f"delete {s3_url(bucket, what)}", Bucket=bucket,
                               Delete=request)
        deleted += len(response.get("Deleted", ()))
        refused += [(e.get("Key"), e.get("Code"), e.get("Message")) for e in response.get("Errors", ())]
    if refused:
        shown = ", ".join(f"{key} ({code})" for key, code, _ in refused[:10])
        more = f" and {len(refused) - 10} more" if len(refused) > 10 else ""
        error = DeleteException(
            f"delete {s3_url(bucket, what)}: S3 refused {len(refused)} key(s): {shown}{more}",
            bucket=bucket, key=what, code=refused[0][1], operation="delete", failed=refused,
        )
        error.deleted = deleted  # type: ignore[attr-defined]
        raise error
    return deleted


def delete_prefix(ctx: CallContext, bucket: str, prefix: str) -> int:
    return delete_keys(ctx, bucket, names(ctx, bucket, prefix, None), prefix)


def outcome(keys: Sequence[str], error: Optional[BaseException]) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Which of ``keys`` one ``delete_many`` deleted, and which it did not: (deleted, refused).

    ``error`` is what the call raised (None: every key was deleted). A DeleteException
    that lists refused keys means S3 deleted all the others (DeleteObjects answers key
    by key); any other error failed the request itself, so no key is known deleted.
    Refused rows are (key, code, message). Meant for calls of at most DELETE_BATCH keys
    (one request): past that, a request failing after earlier ones deleted their keys
    would report those as refused.
    """
    if error is None:
        return list(keys), []
    listed = error.failed if isinstance(error, DeleteException) else []
    if listed:
        reasons = {key: (code or "Refused", message or code or "S3 refused to delete it")
                   for key, code, message in listed}
        return ([key for key in keys if key not in reasons],
                [(key, *reasons[key]) for key in keys if key in reasons])
    code, message = code_and_message(error)
    return [], [(key, code, message) for key in keys]


def chunked(items: Iterable[T], size: int = DELETE_BATCH) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), read as they are needed."""
    return _chunks(iter(items), size)


def _chunks(items: Iterator[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
