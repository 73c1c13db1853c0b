"""HTTP header names, as people know them, to boto3's PutObject parameters and back."""

from __future__ import annotations

import mimetypes
import re
from typing import Any, Mapping, Optional

__all__ = ["METADATA_PREFIX", "SUPPORTED_HEADERS", "guess_content_type", "to_put_params"]

METADATA_PREFIX = "x-amz-meta-"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # what an HTTP header name may hold (RFC 9110)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but the tab

# Lower-cased header name -> PutObject / CreateMultipartUpload parameter.
SUPPORTED_HEADERS: Mapping[str, str] = {
    "cache-control": "CacheControl",
    "content-disposition": "ContentDisposition",
    "content-encoding": "ContentEncoding",
    "content-language": "ContentLanguage",
    "content-type": "ContentType",
    "expires": "Expires",
    "x-amz-acl": "ACL",
    "x-amz-server-side-encryption": "ServerSideEncryption",
    "x-amz-server-side-encryption-aws-kms-key-id": "SSEKMSKeyId",
    "x-amz-storage-class": "StorageClass",
    "x-amz-tagging": "Tagging",
}

# mimetypes reports compressed files (x.tar.gz) as the inner type plus an encoding; the
# bytes on S3 are the compressed file, so the honest type is the compressor's.
_COMPRESSED_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
    "br": "application/x-brotli",
}


def to_put_params(headers: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """Map ``headers`` onto boto3 keyword arguments; unknown names raise ValueError.

    Names match case-insensitively; ``x-amz-meta-*`` headers become ``Metadata``.
    """
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise TypeError(f"headers must be a mapping of header name to value, not {type(headers).__name__}")
    params: dict[str, Any] = {}
    metadata: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str):
            raise TypeError(f"header names must be str, not {name!r}")
        lowered = name.strip().lower()
        if not _TOKEN.fullmatch(lowered):
            raise ValueError(f"header name {name!r} is not a valid HTTP header name")
        if lowered.startswith(METADATA_PREFIX) and len(lowered) > len(METADATA_PREFIX):
            metadata[lowered[len(METADATA_PREFIX):]] = _text(name, value)
        elif lowered in SUPPORTED_HEADERS:
            param = SUPPORTED_HEADERS[lowered]
            params[param] = value if param == "Expires" else _text(name, value)
        else:
            supported = ", ".join(sorted(SUPPORTED_HEADERS)) + ", x-amz-meta-*"
            raise ValueError(f"unsupported header {name!r}; supported headers: {supported}")
    if metadata:
        params["Metadata"] = metadata
    return params


def guess_content_type(key: str) -> Optional[str]:
    """The Content-Type suggested by the key's extension, or None.

    Only the type is guessed: a ``.gz`` key gets ``application/gzip``, never a
    Content-Encoding, because the stored bytes really are a gzip file.
    """
    content_type, encoding = mimetypes.guess_type(key, strict=False)
    if encoding is not None:
        return _COMPRESSED_TYPES.get(encoding, "application/octet-stream")
    return content_type


def _text(name: str, value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"header {name!r} must be a str, not {type(value).__name__}")
    if _CONTROL.search(value):
        # A line break would end the header and start another (header injection).
        raise ValueError(f"header {name!r} has a control character (a line break?) in its value")
    return value
