"""Peak memory of a tree sync as the tree grows: it must not grow with the number of keys.

Two measurements, each in a fresh process that reports its peak RSS (VmHWM) above its
RSS once imports are done and the Connection is made:

- ``planner N``: ``copy_tree(..., sync=True, delete=True)`` between two prefixes of N keys
  each, listed by a stub that streams synthetic ListObjectsV2 records (the same names
  on both sides, 200 of them of a different size whatever N) through the real code from
  the listing generator on: the sorted merge, the filter, the order check, the runner
  and its batch (the 200 that differ are really copied, against moto in-process, so
  that moto's own store is the same size in both measurements). Moto with
  200,000 objects would take hours to fill; the stub shows what s3po itself holds.
- ``server N``: over the wire, a real moto server: upload_tree of N small files, then a
  no-change ``upload_tree(sync=True)``, whose peak is reported.

    make bench BENCH_ARGS='--suite memory'
    .venv/bin/python bench/tree_memory.py planner 200000     # one measurement, as JSON
"""

import json
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import worker

BENCH = Path(__file__).resolve().parent
SIZES = (20_000, 200_000)
SERVER_FILES = 2_000
LIMIT_MIB = 32


def _measured(kind, count, sync):
    """Peak RSS of ``sync()`` (a tree call) above the RSS before it, with the report's counts."""
    baseline = worker.status_mib("VmRSS")
    exact = worker.reset_peak()
    report = sync()
    peak = worker.status_mib("VmHWM")
    if baseline is None or peak is None:
        raise SystemExit("the tree-memory suite reads /proc/self/status: Linux only")
    return {"kind": kind, "keys": count, "baseline_mib": baseline, "peak_mib": peak,
            "above_baseline_mib": peak - baseline, "peak_reset": exact,
            "skipped": report.skipped, "copied": report.transferred, "failed": len(report.failed)}


def planner(count):
    import s3po

    every = max(1, count // 200)

    class StubListing(s3po.Connection):
        """A Connection whose listings are synthetic and streamed; everything else is real."""

        def objects(self, bucket, prefix="", *, delimiter=None):
            stamp = datetime(2026, 1, 1, tzinfo=timezone.utc)
            for n in range(count):
                size = 1000 + (1 if (prefix.startswith("dst") and n % every == 0) else 0)
                yield s3po.Key(bucket, f"{prefix}d{n // 1000:04d}/key-{n:08d}.bin", size=size,
                               etag=f"{n:032x}", last_modified=stamp)

    conn = StubListing(region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with conn.mock(buckets=["memory"]):
        for n in range(0, count, every):  # the sources of the copies that will really happen
            conn.upload("memory", f"src/d{n // 1000:04d}/key-{n:08d}.bin", b"x" * 1000)
        return _measured("planner", count,
                         lambda: conn.copy_tree("memory", "src", "memory", "dst", sync=True, delete=True))


def server(count):
    sys.path.insert(0, str(BENCH.parent))
    import s3po
    from s3po.testing.server import MotoServer

    with MotoServer() as moto, tempfile.TemporaryDirectory() as folder:
        conn = s3po.Connection(endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="a",
                               aws_secret_access_key="b")
        conn.create_bucket("memory")
        for n in range(count):
            path = Path(folder) / f"d{n % 20}" / f"f{n:06d}"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b"x" * 100)
        conn.upload_tree("memory", "tree", folder)
        return _measured("server", count, lambda: conn.upload_tree("memory", "tree", folder, sync=True))


def measure(kind, count):
    done = subprocess.run([sys.executable, str(Path(__file__)), kind, str(count)], capture_output=True, text=True,
                          timeout=3600, cwd=BENCH.parent)
    if done.returncode != 0:
        raise SystemExit(f"{kind} {count} failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args=None, server_=None, notes=None):
    """The suite: both planner sizes and the server case; prints a table, checks the limit."""
    results = [measure("planner", count) for count in SIZES] + [measure("server", SERVER_FILES)]
    lines = ["| measurement | keys | peak RSS MiB | above baseline MiB | result |",
             "|---|---:|---:|---:|---|"]
    for result in results:
        lines.append(f"| {result['kind']} | {result['keys']:,} | {result['peak_mib']:.1f} | "
                     f"{result['above_baseline_mib']:.1f} | {result['skipped']:,} skipped, "
                     f"{result['copied']:,} transferred, {result['failed']} failed |")
    small, large = results[0], results[1]
    growth = large["peak_mib"] - small["peak_mib"]
    met = growth <= LIMIT_MIB
    lines.append("")
    lines.append(f"target  peak RSS of {SIZES[1]:,} keys - of {SIZES[0]:,}: {growth:.1f} MiB "
                 f"(goal <= {LIMIT_MIB}) {'met' if met else 'MISSED'}")
    lines.append("reproduce: make bench BENCH_ARGS='--suite memory'")
    text = "\n".join(lines)
    print(text, flush=True)
    out = BENCH / "results" / "memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"results": results, "growth_mib": growth, "met": met}, indent=2) + "\n")
    out.with_suffix(".md").write_text(text + "\n")
    return met


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(json.dumps({"planner": planner, "server": server}[sys.argv[1]](int(sys.argv[2]))))
    else:
        sys.exit(0 if run() else 1)
