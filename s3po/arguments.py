"""Checks of the caller's arguments, made before any request is sent."""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any

__all__ = ["check_bucket", "check_key", "check_path", "check_positive_int", "parse_s3_url"]

MAX_KEY_BYTES = 1024
_BUCKET_CHARS = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def check_bucket(bucket: Any) -> str:
    """S3's bucket naming rules; ValueError names the bucket and the rule it breaks."""
    if not isinstance(bucket, str):
        raise TypeError(f"bucket must be a str, not {type(bucket).__name__}")
    if not 3 <= len(bucket) <= 63:
        raise ValueError(f"invalid bucket name {bucket!r}: must be 3 to 63 characters long")
    if not _BUCKET_CHARS.match(bucket):
        raise ValueError(
            f"invalid bucket name {bucket!r}: use lowercase letters, digits, '.' and '-', "
            "beginning and ending with a letter or digit"
        )
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        raise ValueError(f"invalid bucket name {bucket!r}: '.' may not sit next to '.' or '-'")
    try:
        ipaddress.IPv4Address(bucket)
    except ValueError:
        return bucket
    raise ValueError(f"invalid bucket name {bucket!r}: must not look like an IP address")


def check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("key must not be empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise ValueError(f"key {key[:40]!r}... is longer than {MAX_KEY_BYTES} bytes in UTF-8")
    return key


def check_prefix(prefix: Any, name: str = "prefix") -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"{name} must be a str, not {type(prefix).__name__}")
    return prefix


def check_path(path: Any) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")
    return os.fspath(path)


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    return value


def parse_s3_url(url: Any, what: str = "URL") -> tuple[str, str]:
    """``s3://bucket/key`` as (bucket, key); the key may be empty (the whole bucket).

    ValueError, naming ``what``, for anything else: another scheme, ``s3:/b``, no
    bucket, a bucket name S3 would refuse.
    """
    if not isinstance(url, str):
        raise TypeError(f"{what} must be an s3:// URL (str), not {type(url).__name__}")
    if not url.startswith("s3://"):
        raise ValueError(f"bad {what} {url!r}: an S3 URL is s3://bucket/key")
    bucket, _, key = url[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"bad {what} {url!r}: no bucket name")
    try:
        check_bucket(bucket)
    except ValueError as exc:
        raise ValueError(f"bad {what} {url!r}: {exc}") from None
    return bucket, key
