"""The camelCase names of earlier s3po releases, mapped onto today's methods.

They keep accepting what old releases accepted, options by position included (today's
methods take options by keyword only), and warn with a DeprecationWarning.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence

__all__ = ["LegacyNames"]

# The positions of each method's options in the releases that had them.
_UPLOAD_OPTIONS = ("headers", "compress", "retries")
_UPLOAD_FILE_OPTIONS = ("headers", "compress", "retries", "delete")
_DOWNLOAD_OPTIONS = ("retries", "decompress")


def _by_name(method: str, names: Sequence[str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    if len(args) > len(names):
        raise TypeError(f"{method}() takes at most {len(names)} options by position ({', '.join(names)})")
    options = dict(zip(names, args))
    clash = set(options) & set(kwargs)
    if clash:
        raise TypeError(f"{method}() got multiple values for {', '.join(sorted(clash))}")
    return {**options, **kwargs}


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"Connection.{old} is deprecated; use Connection.{new}", DeprecationWarning, stacklevel=3)


class LegacyNames:
    """Mixed into Connection: ``uploadString``, ``uploadFile``, ``downloadString``, ``downloadFile``."""

    def uploadString(self, bucket: str, key: str, data: Any, *args: Any, **kwargs: Any) -> Any:
        """Deprecated: use ``upload``."""
        _deprecated("uploadString", "upload")
        return self.upload(bucket, key, data, **_by_name("uploadString", _UPLOAD_OPTIONS, args, kwargs))  # type: ignore[attr-defined]

    def uploadFile(self, bucket: str, key: str, path_or_file: Any, *args: Any, **kwargs: Any) -> Any:
        """Deprecated: use ``upload_file`` (a path) or ``upload`` (a file object)."""
        _deprecated("uploadFile", "upload_file")
        if callable(getattr(path_or_file, "read", None)):
            return self.upload(bucket, key, path_or_file,  # type: ignore[attr-defined]
                               **_by_name("uploadFile", _UPLOAD_OPTIONS, args, kwargs))
        return self.upload_file(bucket, key, path_or_file,  # type: ignore[attr-defined]
                                **_by_name("uploadFile", _UPLOAD_FILE_OPTIONS, args, kwargs))

    def downloadString(self, bucket: str, key: str, *args: Any, **kwargs: Any) -> Optional[bytes]:
        """Deprecated: use ``download``."""
        _deprecated("downloadString", "download")
        return self.download(bucket, key, **_by_name("downloadString", _DOWNLOAD_OPTIONS, args, kwargs))  # type: ignore[attr-defined, no-any-return]

    def downloadFile(self, bucket: str, key: str, path_or_file: Any, *args: Any, **kwargs: Any) -> None:
        """Deprecated: use ``download_file`` (a path) or ``download`` (a file object)."""
        _deprecated("downloadFile", "download_file")
        options = _by_name("downloadFile", _DOWNLOAD_OPTIONS, args, kwargs)
        if callable(getattr(path_or_file, "write", None)):
            self.download(bucket, key, path_or_file, **options)  # type: ignore[attr-defined]
        else:
            self.download_file(bucket, key, path_or_file, **options)  # type: ignore[attr-defined]
