"""s3po: your friendly neighborhood S3 helper."""

import logging

from .batch import Batch, CallError
from .calls import Call
from .connection import Connection
from .errors import (
    BatchError,
    Cancelled,
    DeleteException,
    DownloadException,
    NotFound,
    S3POException,
    UploadException,
)
from .progress import TransferTotals
from .records import Key, Prefix
from .retry import RetryPolicy
from .stream import ObjectStream
from .trees import TreeAction, TreeFailure, TreeProgress, TreeReport

__version__ = "0.2.0"

__all__ = [
    "Batch",
    "BatchError",
    "Call",
    "CallError",
    "Cancelled",
    "Connection",
    "DeleteException",
    "DownloadException",
    "Key",
    "NotFound",
    "ObjectStream",
    "Prefix",
    "RetryPolicy",
    "S3POException",
    "TransferTotals",
    "TreeAction",
    "TreeFailure",
    "TreeProgress",
    "TreeReport",
    "UploadException",
    "__version__",
]

# A library never configures logging: the program decides where records go.
logging.getLogger(__name__).addHandler(logging.NullHandler())
