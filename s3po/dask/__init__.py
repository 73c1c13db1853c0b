"""s3po jobs on a Dask cluster: ``pip install "s3po[dask]"``.

    from distributed import Client
    import s3po, s3po.dask
    from s3po.jobs import planners

    client = Client("tcp://scheduler:8786")
    conn = s3po.Connection(region_name="eu-west-1")
    report = s3po.dask.copy_prefix(client, conn, "src-bucket", "logs/", "dst-bucket",
                                   ledger="s3://dst-bucket/_jobs/copy-logs/", report="copy.csv")

Jobs: ``map_keys`` (any function of each key), ``copy_prefix``, ``download_prefix``,
``delete_prefix``, ``audit_prefix``. The planning, the shards, the work of a task, the
ledger and the report are engine-neutral, in ``s3po.jobs``; this package only runs
them as Dask tasks. Refuses to run in a gevent-patched process (see
s3po.jobs.work.refuse_patched).
"""

from ..jobs.work import refuse_patched

refuse_patched("s3po.dask")

from ..jobs import SKIPPED, JobReport, planners  # noqa: E402
from .jobs import JobProgress, audit_prefix, copy_prefix, delete_prefix, download_prefix, map_keys  # noqa: E402

__all__ = [
    "SKIPPED",
    "JobProgress",
    "JobReport",
    "audit_prefix",
    "copy_prefix",
    "delete_prefix",
    "download_prefix",
    "map_keys",
    "planners",
]
