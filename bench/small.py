"""The small-object suite: many small objects up and down, s3po against its peers.

Each variant (bench/worker.py) uploads --objects objects of --size bytes with
--concurrency requests in flight, then downloads and checks them. The targets: s3po at
least 10 times faster than sequential boto3, at no more than 1.2 times a bare boto3 call's
CPU per object, and no slower than the best boto3-based peer.
"""

import statistics
import time

import harness

WORKER = harness.BENCH / "worker.py"

# "s3po" runs in a gevent-patched program (greenlets on gevent's sockets); "s3po-unpatched"
# in a program that never patched (s3po's batch then runs boto3 on native threads).
VARIANTS = ("s3po", "s3po-unpatched", "boto3-sequential", "boto3-threads", "s3transfer",
            "aioboto3", "obstore")
S3PO_VARIANTS = ("s3po", "s3po-unpatched")
BOTO3_PEERS = ("boto3-threads", "s3transfer", "aioboto3")   # the ones s3po must keep up with
SEQUENTIAL = "boto3-sequential"                             # the bare-client-call reference
PHASES = ("upload", "download")

TARGET_SPEEDUP = 10         # s3po vs sequential boto3
TARGET_CPU_RATIO = 1.2      # s3po's CPU per object vs a bare boto3 call's


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
    return harness.run_worker(command, server, proxy, timeout_s)


# -- summarising -------------------------------------------------------------------------------

def summarise(runs, args):
    """Medians, min and max per variant and phase, and the ratios the targets speak of."""
    floor_s = args.objects * args.latency_ms / 1000 / args.concurrency
    summary = {}
    for variant in args.variants:
        done = [run for run in runs if run["variant"] == variant and run["status"] == "ok"]
        if not done:
            continue
        entry = {"runs": len(done),
                 "peak_rss_mib": harness.spread([run["peak_rss_mib"] for run in done]),
                 "versions": done[-1]["versions"]}
        for phase in PHASES:
            numbers = [run["phases"][phase] for run in done]
            wall = harness.spread([n["wall_s"] for n in numbers])
            cpu = harness.spread([n["cpu_s"] for n in numbers])
            entry[phase] = {
                "wall_s": wall, "cpu_s": cpu,
                "cpu_ms_per_object": cpu["median"] * 1000 / args.objects,
                "requests_per_object": statistics.median(n["requests"] for n in numbers)
                / args.objects,
                "vs_floor": wall["median"] / floor_s if floor_s else None,
                **harness.loads(numbers, wall, cpu),
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
                phase, variant, harness.seconds(numbers["wall_s"]),
                harness.ratio(numbers["vs_s3po"]), harness.ratio(numbers["vs_floor"]),
                f"{numbers['cpu_s']['median']:.2f}",
                f"{numbers['cpu_ms_per_object']:.2f}", f"{numbers['requests_per_object']:.2f}",
                f"{entry['peak_rss_mib']['median']:.0f}",
                harness.cpu_share(numbers["server_cpu_s"], numbers["server_load"]),
                harness.cpu_share(numbers["proxy_cpu_s"], numbers["proxy_load"])])
    return harness.markdown_table(header, rows, first_numeric=2)


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
    saturation = harness.saturation_notes(summary, PHASES, server)
    quiet = (f"saturation: none (server, proxy and machine all below {harness.SATURATED:.0%} "
             "busy in every phase)")
    lines.extend(saturation or [quiet])
    lines.extend(harness.noise_notes(summary, PHASES))
    lines.extend(f"note: {note}" for note in notes)
    failures = [run for run in runs if run["status"] == "failed"]
    lines.extend(f"failed: {run['variant']} repeat {run['repeat']}: {run['reason']}"
                 for run in failures)
    versions = harness.versions_by_environment(summary)
    lines.extend(harness.setting_lines(server, proxy, versions))
    return "\n".join(lines), versions, saturation


# -- the suite ---------------------------------------------------------------------------------

def run(args, server, notes):
    """Run the small suite against ``server`` behind a proxy of its own; print and write it."""
    interpreters, unavailable = harness.interpreters(args.variants)
    proxy = harness.start_proxy(server, args.latency_ms)
    runs = []
    try:
        client = harness.admin_client(server)
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
                    harness.empty_and_delete(client, bucket)
                runs.append({"variant": variant, "repeat": repeat, **result})
                if result["status"] == "unavailable":
                    unavailable[variant] = result["reason"]
                    harness.log(f"{variant}: not available: {result['reason']}")
                elif result["status"] == "failed":
                    harness.log(f"{variant} repeat {repeat + 1}: failed: {result['reason']}")
                else:
                    harness.log(f"{variant} repeat {repeat + 1}/{args.repeat}: " + ", ".join(
                        f"{phase} {result['phases'][phase]['wall_s']:.2f} s"
                        for phase in PHASES))
        summary, floor_s = summarise(runs, args)
        text, versions, saturation = report(summary, floor_s, unavailable, runs, args, server,
                                            proxy, notes)
    finally:
        proxy.stop()

    print(text, flush=True)
    document = {
        "config": {"objects": args.objects, "size": args.size, "latency_ms": args.latency_ms,
                   "concurrency": args.concurrency, "repeat": args.repeat,
                   "variants": args.variants, "server": args.server},
        "machine": harness.machine(),
        "server": {"kind": server.kind, "version": server.version, "cores": server.cores},
        "proxy": {"event_loop": proxy.event_loop},
        "floor_s": floor_s,
        "unavailable": unavailable,
        "summary": summary,
        "targets": [{"name": name, "value": value, "goal": goal, "met": met}
                    for name, value, goal, met in targets(summary)],
        "saturation": saturation,
        "noise": harness.noise_notes(summary, PHASES),
        "notes": notes,
        "versions": versions,
        "runs": runs,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    harness.write_results(args.json, document, text)
