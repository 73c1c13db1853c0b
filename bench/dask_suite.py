"""The Dask suite: copy_prefix of many small objects, one process against a local cluster.

Variants, each in a process of its own (bench/dask_worker.py), copying every object of
a prefix to another bucket through the delaying proxy, 64 requests in flight:

- ``batch``: one process lists the prefix and copies each object in one s3po batch;
- ``dask``: s3po.dask.copy_prefix on a LocalCluster of 2 worker processes (32 in
  flight in each), shards of 1,000 keys planned by sampling.

Both run at --dask-objects (20,000) and at a quarter of it, to show that the process
that drives the job stays flat in the number of keys. Reported: wall seconds, requests
per second, CPU of the driving process and of the workers, peak RSS of each.
"""

import concurrent.futures
import statistics
import time
from pathlib import Path

import harness

WORKER = harness.BENCH / "dask_worker.py"
VARIANTS = ("batch", "dask")
SOURCE = "bench-dask-src"


def seed(server, args):
    """The source objects: a quarter under src/a/, the rest under src/b/ (outside the timing)."""
    small = args.dask_objects // 4
    names = [f"src/{'a' if n < small else 'b'}/{n:07d}" for n in range(args.dask_objects)]
    body = bytes(range(256)) * (args.dask_size // 256) + bytes(args.dask_size % 256)
    client = harness.admin_client(server)
    if server.kind == "rclone":
        # rclone serves a folder: files written there before its first listing are the
        # objects, at no cost in requests.
        client.create_bucket(Bucket=SOURCE)
        for name in names:
            path = Path(server.data_dir) / SOURCE / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
    else:
        client.create_bucket(Bucket=SOURCE)
        with concurrent.futures.ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda name: client.put_object(Bucket=SOURCE, Key=name, Body=body), names))
    return {"src/": len(names), "src/a/": small}


def run_variant(variant, prefix, objects, bucket, args, server, proxy):
    command = [str(harness.interpreter("s3po")), str(WORKER), variant, "--endpoint", proxy.url,
               "--bucket", SOURCE, "--prefix", prefix, "--dst-bucket", bucket, "--objects", str(objects),
               "--concurrency", "64", "--access-key", server.access_key, "--secret-key", server.secret_key,
               "--handshake"]
    return harness.run_worker(command, server, proxy, timeout_s=300 + objects * 0.05)


def summarise(runs):
    summary = {}
    for run in runs:
        if run["status"] != "ok":
            continue
        entry = summary.setdefault((run["variant"], run["objects"]), [])
        entry.append(run)
    rows = {}
    for (variant, objects), done in summary.items():
        copy = [run["phases"]["copy"] for run in done]
        wall = harness.spread([n["wall_s"] for n in copy])
        cpu = harness.spread([n["cpu_s"] for n in copy])
        rows[variant, objects] = {
            "runs": len(done), "wall_s": wall, "client_cpu_s": cpu,
            "requests": statistics.median(n["requests"] for n in copy),
            "requests_per_s": statistics.median(n["requests"] / n["wall_s"] for n in copy),
            "client_peak_rss_mib": harness.spread([run["peak_rss_mib"] for run in done]),
            "worker_cpu_s": [statistics.median(values) for values in zip(*(run["worker_cpu_s"] for run in done))]
            if variant == "dask" else [],
            "worker_peak_rss_mib": [statistics.median(values)
                                    for values in zip(*(run["worker_peak_rss_mib"] for run in done))]
            if variant == "dask" else [],
            "shards": done[-1].get("shards"),
            "versions": done[-1]["versions"],
            **harness.loads(copy, wall, cpu),
        }
    return rows


def table(rows):
    header = ["variant", "objects", "wall s, median [min-max]", "requests/s", "client CPU s",
              "workers' CPU s", "client peak RSS MiB", "workers' peak RSS MiB", "server CPU s (%)",
              "proxy CPU s (%)"]
    lines = []
    for (variant, objects), row in sorted(rows.items(), key=lambda item: (item[0][1], item[0][0])):
        lines.append([
            variant, f"{objects:,}", harness.seconds(row["wall_s"]), f"{row['requests_per_s']:.0f}",
            f"{row['client_cpu_s']['median']:.1f}",
            " + ".join(f"{value:.1f}" for value in row["worker_cpu_s"]) or "-",
            f"{row['client_peak_rss_mib']['median']:.0f}",
            " / ".join(f"{value:.0f}" for value in row["worker_peak_rss_mib"]) or "-",
            harness.cpu_share(row["server_cpu_s"], row["server_load"]),
            harness.cpu_share(row["proxy_cpu_s"], row["proxy_load"])])
    return harness.markdown_table(header, lines, first_numeric=1)


def run(args, server, notes):
    proxy = harness.start_proxy(server, args.latency_ms)
    runs = []
    started = time.perf_counter()
    try:
        client = harness.admin_client(server)
        prefixes = seed(server, args)
        plan = [(variant, prefix) for prefix in ("src/", "src/a/") for variant in VARIANTS]
        for repeat in range(args.dask_repeat):
            shift = repeat % len(plan)
            for variant, prefix in plan[shift:] + plan[:shift]:
                bucket = f"bench-dask-{repeat}-{variant}-{prefix.count('/')}"
                client.create_bucket(Bucket=bucket)
                try:
                    result = run_variant(variant, prefix, prefixes[prefix], bucket, args, server, proxy)
                finally:
                    harness.empty_and_delete(client, bucket)
                runs.append({"variant": variant, "objects": prefixes[prefix], "repeat": repeat, **result})
                if result["status"] != "ok":
                    harness.log(f"{variant} {prefixes[prefix]} objects: {result['status']}: {result.get('reason')}")
                else:
                    harness.log(f"{variant} {prefixes[prefix]} objects: copy {result['phases']['copy']['wall_s']:.2f} s")
        harness.empty_and_delete(client, SOURCE)
    finally:
        proxy.stop()
    rows = summarise(runs)
    versions = {}
    for row in rows.values():
        versions.update(row["versions"])
    lines = [table(rows), "",
             f"copy_prefix (server-side CopyObject, after a HEAD of the source: 2 requests an object) of "
             f"{args.dask_size}-byte objects, 64 requests in flight, +{args.latency_ms:g} ms per response, "
             f"{args.dask_repeat} interleaved repeat(s); dask: LocalCluster of 2 worker processes, "
             f"shards of 1,000 keys, 32 in flight per worker; the client process runs the scheduler"]
    lines.extend(harness.saturation_notes({f"{v} {n}": {"copy": row} for (v, n), row in rows.items()},
                                          ("copy",), server))
    lines.extend(f"failed: {run['variant']} {run['objects']}: {run['reason']}" for run in runs
                 if run["status"] != "ok")
    lines.extend(f"note: {note}" for note in notes)
    lines.extend(harness.setting_lines(server, proxy, {"project venv": versions}))
    lines.append(f"took {time.perf_counter() - started:.0f} s")
    text = "\n".join(lines)
    print(text, flush=True)
    document = {"config": {"objects": args.dask_objects, "size": args.dask_size, "latency_ms": args.latency_ms,
                           "repeat": args.dask_repeat},
                "machine": harness.machine(), "server": {"kind": server.kind, "version": server.version},
                "rows": [{"variant": v, "objects": n, **row} for (v, n), row in rows.items()], "runs": runs}
    harness.write_results(args.dask_json, document, text)
