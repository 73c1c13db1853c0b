"""s3po: your friendly neighborhood S3 helper."""

import logging

from .connection import Connection
from .errors import (
    BatchError,
    DeleteException,
    DownloadException,
    NotFound,
    S3POException,
    UploadException,
)
from .progress import TransferTotals
from .records import Key
from .retry import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "BatchError",
    "Connection",
    "DeleteException",
    "DownloadException",
    "Key",
    "NotFound",
    "RetryPolicy",
    "S3POException",
    "TransferTotals",
    "UploadException",
    "__version__",
]

# A library never configures logging: the program decides where records go.
logging.getLogger(__name__).addHandler(logging.NullHandler())
