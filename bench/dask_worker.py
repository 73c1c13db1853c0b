"""Run one variant of the Dask suite in a process of its own: copy every object of a prefix.

    python bench/dask_worker.py batch|dask --endpoint URL --bucket SRC --prefix src/ \\
        --dst-bucket DST --objects N --concurrency 64 --access-key A --secret-key S

``batch``: this process lists the prefix and copies each object in one s3po batch.
``dask``: this process starts a LocalCluster of 2 worker processes (its scheduler runs
here) and calls s3po.dask.copy_prefix; CPU and peak RSS are read in each worker too.
Speaks the JSON-lines protocol of bench/worker.py (start/end of the "copy" phase, then
one result).
"""

import argparse
import resource
import sys

from worker import Phases, _emit, botocore_config, peak_rss_mib


def _cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("variant", choices=("batch", "dask"))
    for option in ("--endpoint", "--bucket", "--prefix", "--dst-bucket", "--access-key", "--secret-key"):
        parser.add_argument(option, required=True)
    parser.add_argument("--objects", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keys-per-shard", type=int, default=1000)
    parser.add_argument("--handshake", action="store_true")
    args = parser.parse_args(argv)

    from botocore.config import Config

    import s3po

    conn = s3po.Connection(endpoint_url=args.endpoint, region_name="us-east-1",
                           aws_access_key_id=args.access_key, aws_secret_access_key=args.secret_key,
                           config=botocore_config(Config, args.concurrency), max_connections=args.concurrency)
    phases = Phases(args.objects, args.handshake)
    extra = {}
    if args.variant == "batch":
        def copy():
            copied = 0
            with conn.batch(args.concurrency, keep_results=False, raise_errors=True) as batch:
                for key in conn.objects(args.bucket, args.prefix):
                    batch.copy(args.bucket, key.key, args.dst_bucket, key.key)
                    copied += 1
            return copied

        copied = phases.run("copy", copy)
    else:
        import distributed

        import s3po.dask
        from s3po.jobs import planners

        cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)
        client = distributed.Client(cluster)
        client.run(lambda: None)  # workers up before the clock starts
        before = client.run(_cpu_s)

        def copy():
            return s3po.dask.copy_prefix(
                client, conn, args.bucket, args.prefix, args.dst_bucket, skip_identical=False,
                planner=planners.by_sampling(args.keys_per_shard),
                jobs_per_worker=args.concurrency // args.workers)

        report = phases.run("copy", copy)
        after = client.run(_cpu_s)
        extra = {"worker_cpu_s": [after[address] - before[address] for address in sorted(before)],
                 "worker_peak_rss_mib": [value for _, value in sorted(client.run(peak_rss_mib).items())],
                 "shards": report.shards}
        copied = report.succeeded
        if not report.ok:
            raise SystemExit(f"copy_prefix failed: {report.totals()} {report.failures[:3]}")
        client.close()
        cluster.close()
    if copied != args.objects:
        raise SystemExit(f"copied {copied} objects, not {args.objects}")
    versions = {name: __import__(name).__version__ for name in ("s3po", "boto3", "botocore")}
    if args.variant == "dask":
        import dask
        import distributed
        versions.update(dask=dask.__version__, distributed=distributed.__version__)
    _emit(event="result", variant=args.variant, phases=phases.results, versions=versions,
          peak_rss_mib=peak_rss_mib(), **extra)


if __name__ == "__main__":
    sys.exit(main())
