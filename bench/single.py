"""The single-call suite: the CPU one small PUT and one small GET cost, back to back.

Each variant (bench/single_worker.py) runs in its own process, straight to the server
(no proxy, no latency: the CPU per request is what is measured), --single-calls PUTs
then GETs of --size bytes, one after another. The target: s3po's lean request path at
most 0.3 times boto3's CPU per PUT and per GET.
"""

import json
import statistics
import subprocess

import harness
import peers

WORKER = harness.BENCH / "single_worker.py"
VARIANTS = ("s3po-lean", "s3po-botocore", "boto3", "minio-py", "obstore")
TARGET = 0.3  # s3po-lean's CPU per request, as a fraction of boto3's
MINIO_REQUIREMENTS = ("minio==7.2.20",)


def python_for(variant):
    if variant == "obstore":
        return peers.obstore_python()
    if variant == "minio-py":
        return peers.venv("minio", MINIO_REQUIREMENTS)
    return harness.interpreter(variant)


def run(args, server, notes):
    admin = harness.admin_client(server)
    bucket = "s3po-bench-single"
    admin.create_bucket(Bucket=bucket)
    pythons, unavailable = {}, {}
    for variant in args.single_variants:
        try:
            pythons[variant] = python_for(variant)
        except peers.Unavailable as err:
            unavailable[variant] = str(err)
            harness.log(f"{variant}: not available: {err}")
    runs = []
    try:
        for repeat in range(args.single_repeat):
            order = list(pythons)
            order = order[repeat % len(order):] + order[:repeat % len(order)]
            for variant in order:
                command = [str(pythons[variant]), str(WORKER), variant, "--endpoint", server.url,
                           "--bucket", bucket, "--access-key", server.access_key, "--secret-key", server.secret_key,
                           "--calls", str(args.single_calls), "--size", str(args.size)]
                done = subprocess.run(command, capture_output=True, text=True, timeout=900,
                                      env=harness.worker_env())
                if done.returncode != 0:
                    harness.log(f"{variant}: failed: {done.stderr.strip().splitlines()[-1:]}")
                    unavailable[variant] = "failed (see the log)"
                    continue
                result = json.loads(done.stdout.strip().splitlines()[-1])
                harness.log(f"{variant} repeat {repeat + 1}/{args.single_repeat}: PUT "
                            f"{result['put_cpu_s'] * 1000 / result['calls']:.3f} ms, GET "
                            f"{result['get_cpu_s'] * 1000 / result['calls']:.3f} ms of CPU")
                runs.append(result)
    finally:
        harness.empty_and_delete(admin, bucket)
    summary = {}
    for variant in args.single_variants:
        done = [run for run in runs if run["variant"] == variant]
        if not done:
            continue
        summary[variant] = {
            "runs": len(done), "versions": done[-1]["versions"],
            "put_cpu_ms": statistics.median(run["put_cpu_s"] * 1000 / run["calls"] for run in done),
            "get_cpu_ms": statistics.median(run["get_cpu_s"] * 1000 / run["calls"] for run in done)}
    text = report(summary, unavailable, args, server)
    print(text)
    harness.write_results(args.single_json, {"summary": summary, "runs": runs, "machine": harness.machine()},
                          text)


def report(summary, unavailable, args, server):
    boto3 = summary.get("boto3")
    rows = []
    for variant in args.single_variants:
        if variant in unavailable and variant not in summary:
            rows.append([variant, "unavailable: " + unavailable[variant], "", "", ""])
            continue
        entry = summary[variant]
        rows.append([variant, f"{entry['put_cpu_ms']:.3f}", f"{entry['get_cpu_ms']:.3f}",
                     f"{entry['put_cpu_ms'] / boto3['put_cpu_ms']:.2f}" if boto3 else "",
                     f"{entry['get_cpu_ms'] / boto3['get_cpu_ms']:.2f}" if boto3 else ""])
    lines = [harness.markdown_table(["variant", "PUT CPU ms", "GET CPU ms", "PUT ÷ boto3", "GET ÷ boto3"],
                                    rows, 1), ""]
    lean = summary.get("s3po-lean")
    if lean and boto3:
        for what in ("put", "get"):
            ratio = lean[f"{what}_cpu_ms"] / boto3[f"{what}_cpu_ms"]
            lines.append(f"target  {what.upper()}: s3po-lean CPU / boto3's: {ratio:.2f} (goal <= {TARGET}) "
                         + ("met" if ratio <= TARGET else "MISSED"))
    lines.append(f"{args.single_calls} calls of {args.size} bytes each way, one after another, straight to "
                 f"{server.version}; medians of {args.single_repeat} runs, each in its own process")
    lines.append("versions: " + "; ".join(f"{variant}: " + ", ".join(f"{k} {v}" for k, v in entry["versions"].items())
                                          for variant, entry in summary.items()))
    return "\n".join(lines)
