"""s3po jobs on a Dask cluster, against an embedded S3 server: no AWS account needed.

    pip install "s3po[dask]" "moto[server]"
    python demo/dask_jobs.py

Starts moto's S3 server on 127.0.0.1 and a LocalCluster of 2 worker processes, stores
600 small objects, then copies them to another bucket (recording finished shards in
a ledger and writing a report), runs the same copy again (every shard is skipped from
the ledger), audits the copies and deletes the originals. This is an application, so
it prints.
"""

from __future__ import annotations

import os
import tempfile

from distributed import Client, LocalCluster

import s3po
import s3po.dask
from s3po.jobs import planners
from s3po.testing.server import MotoServer


def main() -> None:
    with MotoServer() as server, LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                              dashboard_address=None) as cluster, Client(cluster) as client:
        # Credentials given here travel to the workers with the Connection; without
        # them each worker would resolve its own (environment, profile, role).
        conn = s3po.Connection(endpoint_url=server.url, region_name="us-east-1",
                               aws_access_key_id="demo", aws_secret_access_key="demo-secret")
        for bucket in ("photos", "backup"):
            conn.create_bucket(bucket)
        with conn.batch(32, raise_errors=True) as batch:
            for n in range(600):
                batch.upload("photos", f"2026/{n % 12 + 1:02d}/img-{n:05d}.jpg", b"jpeg" * (n % 50))
        print("stored 600 objects in s3://photos/2026/")

        with tempfile.TemporaryDirectory() as folder:
            ledger = os.path.join(folder, "ledger")
            report = s3po.dask.copy_prefix(
                client, conn, "photos", "2026/", "backup", planner=planners.by_delimiter(depth=1),
                ledger=ledger, report=os.path.join(folder, "copy.csv"), jobs_per_worker=16, max_in_flight=24,
                progress=lambda p: print(f"  {p.shards_done}/{p.shards_planned} shards, {p.objects_done} objects"))
            print(f"copied: {report.succeeded} objects, {report.bytes} bytes, {report.shards} shards, "
                  f"{report.failed} failed, in {report.seconds:.1f} s")
            again = s3po.dask.copy_prefix(client, conn, "photos", "2026/", "backup",
                                          planner=planners.by_delimiter(depth=1), ledger=ledger)
            print(f"again with the ledger: {again.shards_from_ledger} of {again.shards} shards skipped")

        audit = s3po.dask.audit_prefix(client, conn, "backup", "2026/", planner=planners.by_sampling(250))
        print(f"audited: {audit.succeeded} verified, {audit.failed} failed")
        gone = s3po.dask.delete_prefix(client, conn, "photos", "2026/", planner=planners.by_fanout(depth=3))
        print(f"deleted: {gone.succeeded} objects; left: {len(list(conn.list('photos')))}")
        assert report.ok and again.shards_from_ledger == again.shards and audit.succeeded == 600
        print("done")


if __name__ == "__main__":
    main()
