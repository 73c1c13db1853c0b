"""The keyword options of each operation, as types, written once.

Connection's methods, their background forms and Batch's methods all take these;
type checkers see each option by name and type, and reject a misspelt one.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Protocol, TypedDict, Union

__all__ = [
    "CopyOptions",
    "DeleteOptions",
    "DeletePrefixOptions",
    "DownloadFileOptions",
    "DownloadOptions",
    "HeadOptions",
    "ProgressCallback",
    "Readable",
    "UploadData",
    "UploadFileOptions",
    "UploadOptions",
]

#: ``progress(bytes_done, bytes_total)``; ``bytes_total`` is None while unknown.
ProgressCallback = Callable[[int, Optional[int]], Any]


class Readable(Protocol):
    """Anything with ``read(n)``: a binary or text file, a pipe, a socket file."""

    def read(self, size: int = ..., /) -> Any: ...


UploadData = Union[str, bytes, bytearray, memoryview, Readable]


class RetryOptions(TypedDict, total=False):
    retries: Optional[int]


class UploadOptions(RetryOptions, total=False):
    headers: Optional[Mapping[str, Any]]
    compress: Optional[str]
    progress: Optional[ProgressCallback]


class UploadFileOptions(UploadOptions, total=False):
    delete: bool


class DownloadOptions(RetryOptions, total=False):
    decompress: bool
    progress: Optional[ProgressCallback]


class DeletePrefixOptions(RetryOptions, total=False):
    whole_bucket: bool


DownloadFileOptions = DownloadOptions
HeadOptions = RetryOptions
DeleteOptions = RetryOptions
CopyOptions = RetryOptions
