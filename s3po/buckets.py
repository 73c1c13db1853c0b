"""Buckets: creating one in the client's region, listing those the credentials own."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from .context import CallContext
from .errors import error_code, s3_url
from .records import utc

__all__ = ["create_bucket", "list_buckets"]


def create_bucket(ctx: CallContext, bucket: str) -> None:
    """Create ``bucket`` in the client's region; a bucket you already own is fine."""
    request: dict[str, Any] = {"Bucket": bucket}
    region = ctx.client.meta.region_name
    if region and region != "us-east-1":
        # us-east-1 is the one region that refuses an explicit LocationConstraint.
        request["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        ctx.request("create_bucket", what=f"create {s3_url(bucket, None)}", **request)
    except Exception as exc:
        if error_code(exc) != "BucketAlreadyOwnedByYou":
            raise


def list_buckets(ctx: CallContext) -> list[tuple[str, Optional[datetime]]]:
    """(name, creation date in UTC) of every bucket the credentials own."""
    response = ctx.request("list_buckets", what="list buckets")
    return [(entry["Name"], utc(entry.get("CreationDate"))) for entry in response.get("Buckets", ())]
