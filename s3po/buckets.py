"""Buckets: creating one in the client's region."""

from __future__ import annotations

from typing import Any

from .context import CallContext
from .errors import error_code, s3_url

__all__ = ["create_bucket"]


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
