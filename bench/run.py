"""Benchmark s3po against its peers: many small objects, one local server, a fixed latency.

    make bench                                   # the defaults below
    make bench BENCH_ARGS='--repeat 5 --variants s3po boto3-threads'

Starts one S3 server on 127.0.0.1 (rclone serve s3 by default) behind bench/delayproxy.py,
which holds each response for --latency-ms. Then, --repeat times, runs every variant in a
process of its own (interleaved, in an order that rotates each round): it uploads
--objects objects of --size bytes with --concurrency requests in flight, then downloads
and checks them. Prints one table (medians, with min-max) and writes the numbers as JSON.
Peers that cannot be installed here get a row that says why; the run goes on.
"""

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import peers
import servers

BENCH = Path(__file__).resolve().parent
WORKER = BENCH / "worker.py"

# "s3po" runs in a gevent-patched program (greenlets on gevent's sockets); "s3po-unpatched"
# in a program that never patched (s3po's batch then runs boto3 on native threads).
VARIANTS = ("s3po", "s3po-unpatched", "boto3-sequential", "boto3-threads", "s3transfer",
            "aioboto3", "obstore")
S3PO_VARIANTS = ("s3po", "s3po-unpatched")
BOTO3_PEERS = ("boto3-threads", "s3transfer", "aioboto3")   # the ones s3po must keep up with
SEQUENTIAL = "boto3-sequential"                             # the bare-client-call reference
PHASES = ("upload", "download")
SATURATED = 0.9     # a process busy this fraction of the phase (per core it can use) is the limit
NOISY = 0.25        # other processes busy this fraction of a core disturb the measurement

TARGET_SPEEDUP = 10         # s3po vs sequential boto3
TARGET_CPU_RATIO = 1.2      # s3po's CPU per object vs a bare boto3 call's


def _log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def _non_negative_float(text):
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"variants: {', '.join(VARIANTS)} (the default)")
    parser.add_argument("--objects", type=_positive_int, default=1000)
    parser.add_argument("--size", type=_positive_int, default=4096, help="bytes per object")
    parser.add_argument("--latency-ms", type=_non_negative_float, default=20.0,
                        help="added to every response by the proxy")
    parser.add_argument("--concurrency", type=_positive_int, default=64)
    parser.add_argument("--repeat", type=_positive_int, default=3)
    parser.add_argument("--server", choices=("auto", "rclone", "s3rver", "moto"), default="auto")
    parser.add_argument("--json", type=Path, default=BENCH / "results" / "latest.json",
                        help="where to write the numbers (a .md table is written beside it)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS),
                        help="space- or comma-separated subset, in this order")
    args = parser.parse_args(argv)
    chosen = [name for item in args.variants for name in item.split(",") if name]
    known = VARIANTS
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        parser.error(f"unknown variants {', '.join(unknown)}; pick from {', '.join(known)}")
    args.variants = list(dict.fromkeys(chosen))
    return args


# -- setting up --------------------------------------------------------------------------------

def interpreter(variant):
    """The Python that runs a variant: the project's, or the peer's own virtualenv."""
    if variant == "aioboto3":
        return peers.aioboto3_python()       # aioboto3 pins its own botocore
    if variant == "obstore":
        return peers.obstore_python()
    return Path(sys.executable)


def admin_client(server):
    """A boto3 client straight to the server (no proxy) for buckets, outside the timing."""
    import boto3
    from botocore.config import Config
    return boto3.session.Session().client(
        "s3", endpoint_url=server.url, region_name="us-east-1",
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        config=Config(request_checksum_calculation="when_required",
                      response_checksum_validation="when_required",
                      s3={"addressing_style": "path"}, retries={"max_attempts": 3}))


def empty_and_delete(client, bucket):
    with contextlib.suppress(Exception):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        client.delete_bucket(Bucket=bucket)


def worker_env():
    """The environment minus AWS settings that would make the clients differ by machine."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_EC2_METADATA_DISABLED="true", PYTHONUNBUFFERED="1")
    return env


# -- one run -----------------------------------------------------------------------------------

def run_variant(variant, python, bucket, args, server, proxy):
    """Run one variant's worker; returns its result with the server's and proxy's share."""
    command = [str(python), str(WORKER), variant, "--endpoint", proxy.url, "--bucket", bucket,
               "--objects", str(args.objects), "--size", str(args.size),
               "--concurrency", str(args.concurrency),
               "--access-key", server.access_key, "--secret-key", server.secret_key,
               "--handshake"]
    if variant == SEQUENTIAL:
        command += ["--direct-endpoint", server.url]
    # Generous: sequential boto3 needs 2 x objects x latency, plus startup.
    timeout_s = 120 + 2 * args.objects * (args.latency_ms / 1000 + 0.05) * 2
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=stderr, text=True, env=worker_env(), cwd=BENCH.parent)
        killed = threading.Event()

        def kill():
            killed.set()
            process.kill()

        watchdog = threading.Timer(timeout_s, kill)
        watchdog.start()
        try:
            marks, outcome = _follow(process, server, proxy)
        finally:
            watchdog.cancel()
            process.wait()
        stderr.seek(0)
        errors = stderr.read().strip().splitlines()
    if outcome is None or process.returncode != 0:
        why = errors[-1] if errors else f"exit status {process.returncode}"
        if killed.is_set():
            why = f"killed after {timeout_s:.0f} s"
        return {"status": "failed", "reason": why[:300]}
    if outcome["event"] == "unavailable":
        return {"status": "unavailable", "reason": outcome["reason"]}
    for phase, numbers in outcome["phases"].items():
        numbers.update(_shares(marks[phase, "start"], marks[phase, "end"], numbers["cpu_s"]))
    return {"status": "ok", **outcome}


def _follow(process, server, proxy):
    """Read the worker's JSON lines to the end; returns (marks, its final event).

    The worker announces each phase's start and end and waits: at each announcement we
    sample the server's, the proxy's and the machine's CPU and the proxy's request count,
    then let it go on, so that no request of the next phase leaks into the sample.
    """
    marks, outcome = {}, None
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] not in ("start", "end"):
            outcome = event
            continue
        busy, stolen = servers.machine_cpu_s()
        marks[event["phase"], event["event"]] = {
            "server": server.cpu_s(), "proxy": proxy.cpu_s(), "requests": proxy.requests(),
            "busy": busy, "stolen": stolen}
        with contextlib.suppress(BrokenPipeError):
            process.stdin.write("go\n")
            process.stdin.flush()
    return marks, outcome


def _shares(start, end, client_cpu_s):
    """What the server, the proxy, the hypervisor and everything else used during a phase."""
    used = {name: None if start[name] is None else end[name] - start[name] for name in start}
    other = None
    if used["busy"] is not None:
        # Whatever else kept the cores busy meanwhile (this script included; it is idle).
        other = max(0.0, used["busy"] - client_cpu_s - (used["server"] or 0)
                    - (used["proxy"] or 0))
    return {"server_cpu_s": used["server"], "proxy_cpu_s": used["proxy"],
            "requests": used["requests"], "stolen_cpu_s": used["stolen"], "other_cpu_s": other}


# -- summarising -------------------------------------------------------------------------------

def spread(values):
    values = [value for value in values if value is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(runs, args):
    """Medians, min and max per variant and phase, and the ratios the targets speak of."""
    floor_s = args.objects * args.latency_ms / 1000 / args.concurrency
    summary = {}
    for variant in args.variants:
        done = [run for run in runs if run["variant"] == variant and run["status"] == "ok"]
        if not done:
            continue
        entry = {"runs": len(done),
                 "peak_rss_mib": spread([run["peak_rss_mib"] for run in done]),
                 "versions": done[-1]["versions"]}
        for phase in PHASES:
            numbers = [run["phases"][phase] for run in done]
            wall = spread([n["wall_s"] for n in numbers])
            cpu = spread([n["cpu_s"] for n in numbers])
            server_cpu = spread([n["server_cpu_s"] for n in numbers])
            proxy_cpu = spread([n["proxy_cpu_s"] for n in numbers])
            other_cpu = spread([n["other_cpu_s"] for n in numbers])
            stolen_cpu = spread([n["stolen_cpu_s"] for n in numbers])
            entry[phase] = {
                "wall_s": wall, "cpu_s": cpu,
                "cpu_ms_per_object": cpu["median"] * 1000 / args.objects,
                "requests_per_object": statistics.median(n["requests"] for n in numbers)
                / args.objects,
                "server_cpu_s": server_cpu, "proxy_cpu_s": proxy_cpu,
                "other_cpu_s": other_cpu, "stolen_cpu_s": stolen_cpu,
                "vs_floor": wall["median"] / floor_s if floor_s else None,
                # Busy fraction of one core, from the medians.
                "client_load": cpu["median"] / wall["median"],
                "server_load": server_cpu and server_cpu["median"] / wall["median"],
                "proxy_load": proxy_cpu and proxy_cpu["median"] / wall["median"],
                "other_load": other_cpu and other_cpu["median"] / wall["median"],
                "stolen_load": stolen_cpu and stolen_cpu["median"] / wall["median"],
            }
        if variant == SEQUENTIAL:
            entry["back_to_back_cpu_ms_per_object"] = {
                phase: statistics.median(
                    run["phases"][f"bare-{phase}"]["cpu_s"] * 1000
                    / run["phases"][f"bare-{phase}"]["objects"] for run in done)
                for phase in PHASES if all(f"bare-{phase}" in run["phases"] for run in done)}
        summary[variant] = entry
    base = summary.get("s3po")
    for entry in summary.values():
        for phase in PHASES:
            entry[phase]["vs_s3po"] = (entry[phase]["wall_s"]["median"]
                                       / base[phase]["wall_s"]["median"]) if base else None
    return summary, floor_s


def saturation_notes(summary, server):
    """Say where a process other than the client (or the whole machine) was the limit."""
    cores = os.cpu_count() or 1
    notes = []
    for variant, entry in summary.items():
        for phase in PHASES:
            numbers = entry[phase]
            if numbers["server_load"] is not None and numbers["server_load"] >= SATURATED * server.cores:
                notes.append(f"server saturated during {variant} {phase}: "
                             f"{numbers['server_load']:.0%} of a core (it can use {server.cores})")
            if numbers["proxy_load"] is not None and numbers["proxy_load"] >= SATURATED:
                notes.append(f"proxy saturated during {variant} {phase}: "
                             f"{numbers['proxy_load']:.0%} of its one core")
            total = (numbers["client_load"] + (numbers["server_load"] or 0)
                     + (numbers["proxy_load"] or 0))
            if total >= SATURATED * cores:
                notes.append(f"all {cores} cores busy during {variant} {phase} "
                             f"(client+server+proxy {total:.0%} of a core): the machine, not the "
                             f"latency, bounds that row")
    return notes


def noise_notes(summary):
    """Say where other programs, or the hypervisor, took CPU from the benchmark."""
    notes = []
    for variant, entry in summary.items():
        for phase in PHASES:
            numbers = entry[phase]
            if (numbers["other_load"] or 0) >= NOISY:
                notes.append(f"noisy: other processes kept {numbers['other_load']:.0%} of a core "
                             f"busy during {variant} {phase}")
            if (numbers["stolen_load"] or 0) >= NOISY:
                notes.append(f"noisy: the hypervisor stole {numbers['stolen_load']:.0%} of a core "
                             f"during {variant} {phase}")
    return notes


def targets(summary):
    """s3po's targets, per phase and s3po variant, as (name, value, goal, met)."""
    checks = []
    for variant in S3PO_VARIANTS:
        if variant in summary:
            checks += _targets_of(variant, summary)
    return checks


def _targets_of(variant, summary):
    s3po = summary[variant]
    checks = []
    sequential = summary.get(SEQUENTIAL)
    peers_present = [name for name in BOTO3_PEERS if name in summary]
    for phase in PHASES:
        wall = s3po[phase]["wall_s"]["median"]
        if sequential:
            speedup = sequential[phase]["wall_s"]["median"] / wall
            checks.append((f"{phase}: sequential boto3's wall / {variant}'s", round(speedup, 2),
                           f">= {TARGET_SPEEDUP}", speedup >= TARGET_SPEEDUP))
            ratio = s3po[phase]["cpu_ms_per_object"] / sequential[phase]["cpu_ms_per_object"]
            checks.append((f"{phase}: {variant} CPU per object / a bare boto3 call's",
                           round(ratio, 2), f"<= {TARGET_CPU_RATIO}", ratio <= TARGET_CPU_RATIO))
            warm = sequential.get("back_to_back_cpu_ms_per_object", {}).get(phase)
            if warm:
                # The stricter reading: a warm call that never sleeps costs less CPU.
                ratio = s3po[phase]["cpu_ms_per_object"] / warm
                checks.append((f"{phase}: {variant} CPU per object / a back-to-back boto3 call's",
                               round(ratio, 2), f"<= {TARGET_CPU_RATIO}",
                               ratio <= TARGET_CPU_RATIO))
        if peers_present:
            best = min(peers_present, key=lambda name: summary[name][phase]["wall_s"]["median"])
            ratio = wall / summary[best][phase]["wall_s"]["median"]
            checks.append((f"{phase}: {variant} wall / best boto3-based peer's ({best})",
                           round(ratio, 2), "<= 1.00", ratio <= 1.0))
    return checks


# -- reporting ---------------------------------------------------------------------------------

def _seconds(spread_):
    return f"{spread_['median']:.2f} [{spread_['min']:.2f}-{spread_['max']:.2f}]"


def _ratio(value):
    return "" if value is None else f"{value:.2f}"


def _cpu_share(spread_, load):
    if spread_ is None:
        return "n/a"
    return f"{spread_['median']:.2f} ({load:.0%})"


def table(summary, unavailable, args):
    """The results as one Markdown table: it reads in a terminal and pastes into the README."""
    header = ["phase", "variant", "wall s, median [min-max]", "÷ s3po", "÷ floor", "CPU s",
              "CPU ms/obj", "req/obj", "peak RSS MiB", "server CPU s (%)", "proxy CPU s (%)"]
    rows = []
    for phase in PHASES:
        for variant in args.variants:
            entry = summary.get(variant)
            if entry is None:
                reason = unavailable.get(variant, "no successful run")
                rows.append([phase, variant, f"not available: {reason}"] + [""] * 8)
                continue
            numbers = entry[phase]
            rows.append([
                phase, variant, _seconds(numbers["wall_s"]), _ratio(numbers["vs_s3po"]),
                _ratio(numbers["vs_floor"]), f"{numbers['cpu_s']['median']:.2f}",
                f"{numbers['cpu_ms_per_object']:.2f}", f"{numbers['requests_per_object']:.2f}",
                f"{entry['peak_rss_mib']['median']:.0f}",
                _cpu_share(numbers["server_cpu_s"], numbers["server_load"]),
                _cpu_share(numbers["proxy_cpu_s"], numbers["proxy_load"])])
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
    numeric = set(range(2, len(header)))

    def line(cells):
        return "| " + " | ".join(
            str(cell).rjust(width) if i in numeric and cells is not header else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (width + 1) + (":" if i in numeric else "-")
                          for i, width in enumerate(widths)) + "|"
    return "\n".join([line(header), rule] + [line(row) for row in rows])


def versions_by_environment(summary):
    """{virtualenv: {package: version}}: aioboto3 brings a botocore of its own."""
    found = {}
    for variant, entry in summary.items():
        where = {"aioboto3": "bench/.venv-aioboto3",
                 "obstore": "bench/.venv-obstore"}.get(variant, "project venv")
        found.setdefault(where, {}).update(entry["versions"])
    return found


def report(summary, floor_s, unavailable, runs, args, server, proxy, notes):
    lines = [table(summary, unavailable, args), ""]
    lines.append(f"floor: {args.objects} objects x {args.latency_ms:g} ms / {args.concurrency} "
                 f"in flight = {floor_s:.2f} s per phase; {args.objects} objects of "
                 f"{args.size} bytes, {args.repeat} interleaved repeats")
    sequential = summary.get(SEQUENTIAL)
    if sequential:
        bare = ", ".join(f"{phase} {sequential[phase]['cpu_ms_per_object']:.2f} ms"
                         for phase in PHASES)
        lines.append(f"bare boto3 client call ({SEQUENTIAL}), CPU per object: {bare}")
        warm = sequential.get("back_to_back_cpu_ms_per_object")
        if warm:
            lines.append("  the same calls back to back, straight to the server (no idle wait "
                         "between them): " + ", ".join(f"{phase} {value:.2f} ms"
                                                       for phase, value in warm.items()))
    for name, value, goal, met in targets(summary):
        lines.append(f"target  {name}: {value:.2f} (goal {goal}) {'met' if met else 'MISSED'}")
    if "s3po" not in summary:
        lines.append("targets: n/a until s3po runs")
    saturation = saturation_notes(summary, server)
    lines.extend(saturation or ["saturation: none (server, proxy and machine all below "
                                f"{SATURATED:.0%} busy in every phase)"])
    lines.extend(noise_notes(summary))
    lines.extend(f"note: {note}" for note in notes)
    failures = [run for run in runs if run["status"] == "failed"]
    lines.extend(f"failed: {run['variant']} repeat {run['repeat']}: {run['reason']}"
                 for run in failures)
    versions = versions_by_environment(summary)
    lines.append("server: " + server.version + f"; proxy: delayproxy.py on {proxy.event_loop}; "
                 f"{os.cpu_count()} cores, Python {platform.python_version()}, "
                 f"{platform.system()} {platform.machine()}")
    lines.append("versions: " + "; ".join(
        ", ".join(f"{name} {version}" for name, version in sorted(found.items())) + f" ({where})"
        for where, found in versions.items()))
    lines.append("reproduce: make bench" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'"
                                            if sys.argv[1:] else ""))
    return "\n".join(lines), versions, saturation


# -- main --------------------------------------------------------------------------------------

def main(argv=None):
    args = parse_args(argv)
    interpreters, unavailable = {}, {}
    for variant in args.variants:
        try:
            interpreters[variant] = interpreter(variant)
        except peers.Unavailable as err:
            unavailable[variant] = str(err)
            _log(f"{variant}: not available: {err}")
    try:
        proxy_python = peers.proxy_python()
    except peers.Unavailable as err:
        proxy_python = Path(sys.executable)
        _log(f"proxy runs on plain asyncio: {err}")

    server, notes = servers.start_server(args.server)
    proxy = None
    runs = []
    try:
        proxy = servers.Proxy(server.port, args.latency_ms, proxy_python)
        _log(f"server {server.version} at {server.url}, proxy at {proxy.url} "
             f"(+{args.latency_ms:g} ms per response)")
        client = admin_client(server)
        variants = [variant for variant in args.variants if variant in interpreters]
        for repeat in range(args.repeat):
            # Rotate the order each round so no variant always runs first (cold caches).
            shift = repeat % len(variants) if variants else 0
            for variant in variants[shift:] + variants[:shift]:
                if variant in unavailable:
                    continue
                bucket = f"bench-{repeat}-{variant}"
                client.create_bucket(Bucket=bucket)
                try:
                    result = run_variant(variant, interpreters[variant], bucket, args, server,
                                         proxy)
                finally:
                    empty_and_delete(client, bucket)
                runs.append({"variant": variant, "repeat": repeat, **result})
                if result["status"] == "unavailable":
                    unavailable[variant] = result["reason"]
                    _log(f"{variant}: not available: {result['reason']}")
                elif result["status"] == "failed":
                    _log(f"{variant} repeat {repeat + 1}: failed: {result['reason']}")
                else:
                    _log(f"{variant} repeat {repeat + 1}/{args.repeat}: " + ", ".join(
                        f"{phase} {result['phases'][phase]['wall_s']:.2f} s"
                        for phase in PHASES))
        summary, floor_s = summarise(runs, args)
        text, versions, saturation = report(summary, floor_s, unavailable, runs, args, server,
                                            proxy, notes)
    finally:
        if proxy is not None:
            proxy.stop()
        server.stop()

    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "config": {"objects": args.objects, "size": args.size, "latency_ms": args.latency_ms,
                   "concurrency": args.concurrency, "repeat": args.repeat,
                   "variants": args.variants, "server": args.server},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "server": {"kind": server.kind, "version": server.version, "cores": server.cores},
        "proxy": {"event_loop": proxy.event_loop},
        "floor_s": floor_s,
        "unavailable": unavailable,
        "summary": summary,
        "targets": [{"name": name, "value": value, "goal": goal, "met": met}
                    for name, value, goal, met in targets(summary)],
        "saturation": saturation,
        "noise": noise_notes(summary),
        "notes": notes,
        "versions": versions,
        "runs": runs,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    args.json.write_text(json.dumps(document, indent=2) + "\n")
    args.json.with_suffix(".md").write_text(text + "\n")
    _log(f"wrote {args.json} and {args.json.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
