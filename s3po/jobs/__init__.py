"""Jobs over every key under a prefix, whichever engine runs their tasks.

The engine-neutral core of ``s3po.dask``: shards (slices of the key space a task
lists by itself), planners that cut a prefix into shards, the work of one task over
one shard (``run_shard``), the actions of each job, the ledger of finished shards and
the report. Imports no engine.
"""

from . import planners
from .actions import SKIPPED, Audit, Copy, Delete, Download, MapKeys
from .ledger import Ledger
from .paths import UnsafeKey, local_path
from .report import FailedKey, JobReport, ShardResult
from .shards import InventoryFile, KeyList, Shard
from .work import run_shard

__all__ = [
    "SKIPPED",
    "Audit",
    "Copy",
    "Delete",
    "Download",
    "FailedKey",
    "InventoryFile",
    "JobReport",
    "KeyList",
    "Ledger",
    "MapKeys",
    "Shard",
    "ShardResult",
    "UnsafeKey",
    "local_path",
    "planners",
    "run_shard",
]
