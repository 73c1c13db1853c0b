"""Listing: key names, Key records, and keys told apart from common prefixes, lazily."""

from __future__ import annotations

import heapq
from typing import Any, Iterator, Mapping, Optional, Union

from .context import CallContext
from .errors import DownloadException, s3_url
from .records import Key, Prefix, from_listing

__all__ = ["entries", "names", "objects", "pages"]


def pages(ctx: CallContext, bucket: str, prefix: str, delimiter: Optional[str],
          start_after: Optional[str] = None) -> Iterator[Mapping[str, Any]]:
    """ListObjectsV2 pages, each fetched (and retried) only when the previous one is used.

    ``start_after``: S3's StartAfter, the listing begins after this string (a key range
    can be listed without the keys before it).
    """
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if delimiter is not None:
        request["Delimiter"] = delimiter
    if start_after:
        request["StartAfter"] = start_after
    while True:
        page = ctx.request("list_objects_v2", what=f"list {s3_url(bucket, prefix)}", **request)
        yield page
        if not page.get("IsTruncated"):
            return
        token = page.get("NextContinuationToken")
        if not token:
            # Taking the listing for complete would make a sync delete every key past here.
            raise DownloadException(
                f"list {s3_url(bucket, prefix)} failed: the store says more keys follow but gave no "
                "continuation token to list them with", bucket=bucket, key=prefix, code="TruncatedListing",
                operation="list")
        request["ContinuationToken"] = token


def entries(ctx: CallContext, bucket: str, prefix: str, delimiter: Optional[str],
            start_after: Optional[str] = None) -> Iterator[Union[Key, Prefix]]:
    """Key records and, with a delimiter, Prefix records, merged in S3's order (UTF-8 bytes)."""
    for page in pages(ctx, bucket, prefix, delimiter, start_after):
        keys = [from_listing(bucket, entry) for entry in page.get("Contents", ())]
        found = [Prefix(bucket, entry["Prefix"]) for entry in page.get("CommonPrefixes", ())]
        if not found:
            yield from keys
            continue
        merged: Iterator[Union[Key, Prefix]] = heapq.merge(keys, found, key=_utf8_name)
        yield from merged


def names(ctx: CallContext, bucket: str, prefix: str, delimiter: Optional[str],
          start_after: Optional[str] = None) -> Iterator[str]:
    for entry in entries(ctx, bucket, prefix, delimiter, start_after):
        yield entry.key if isinstance(entry, Key) else entry.prefix


def objects(ctx: CallContext, bucket: str, prefix: str, delimiter: Optional[str],
            start_after: Optional[str] = None) -> Iterator[Key]:
    for entry in entries(ctx, bucket, prefix, delimiter, start_after):
        if isinstance(entry, Key):
            yield entry


def _utf8_name(entry: Union[Key, Prefix]) -> bytes:
    name = entry.key if isinstance(entry, Key) else entry.prefix
    return name.encode("utf-8", "surrogatepass")
