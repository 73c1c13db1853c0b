"""The large-object suite: one big file up and down, s3po against boto3's and others' transfers.

One file of --large-size-mib MiB of random bytes is made once per run, in a temporary
directory, outside any timing. Then, --large-repeat times, each variant (in a process of
its own, bench/large_worker.py; interleaved, in an order that rotates each round) uploads
it and downloads it again, through the same server and delaying proxy. Each download is
compared with the source byte for byte, and deleted, once its worker has exited.

The targets, per phase: s3po's throughput at least the best of s3transfer-same's and
aioboto3's; s3po's CPU per GiB at most the lower of theirs; and s3po's peak RSS above its
baseline within 64 MiB + workers x part size.

The store behaves as S3 does with checksums (--large-store s3, the default): the proxy
verifies the x-amz-checksum-* of uploads, keeps each object's full-object CRC and
returns it on a whole GET (rclone itself does none of it; see delayproxy.py). With
--large-store plain the server is as it is, and s3po falls back to MD5s. The "check"
column says what checked each s3po transfer, as s3po logs it; the peers, as configured
here (checksums only when required), check nothing but lengths.
"""

import os
import shutil
import tempfile
import time
from pathlib import Path

import harness

WORKER = harness.BENCH / "large_worker.py"
MiB = 1024 * 1024

VARIANTS = ("s3po", "s3po-patched", "s3transfer-default", "s3transfer-same", "aioboto3",
            "obstore")
S3PO_VARIANTS = ("s3po", "s3po-patched")
PEERS = ("s3transfer-same", "aioboto3")     # same concurrency and part size: the targets' bar
PHASES = ("upload", "download")

# s3po's settings (its defaults), which the "-same" peers copy.
WORKERS = 8                  # parts (uploads) or ranges (downloads) in flight per transfer
PART_SIZE = 8 * MiB          # what s3po picks (part_size=None) for objects up to 78 GiB
THRESHOLD = 10 * MiB         # multipart from this size
RSS_ALLOWANCE_MIB = 64       # on top of WORKERS x PART_SIZE: the memory target


# -- the file ----------------------------------------------------------------------------------

CHUNK = 8 * MiB


def make_source(directory, size):
    """Write ``size`` random bytes to a file in ``directory``; returns its path."""
    path = Path(directory) / "source.bin"
    with open(path, "wb") as target:
        left = size
        while left:
            left -= target.write(os.urandom(min(CHUNK, left)))
    return path


def same_bytes(path, other):
    """Whether two files of the same size hold the same bytes (both are in the page cache,
    so this runs at memory speed: several times faster than hashing them)."""
    mine, theirs = bytearray(CHUNK), bytearray(CHUNK)
    with open(path, "rb", buffering=0) as first, open(other, "rb", buffering=0) as second:
        while True:
            count = first.readinto(mine)
            if count != second.readinto(theirs):
                return False
            if count < CHUNK:    # the last chunk (regular files read whole chunks till then)
                return mine[:count] == theirs[:count]
            if mine != theirs:
                return False


def expected_part_size(size):
    """s3po's part size for ``size`` bytes: 8 MiB unless that needs more than 10,000 parts."""
    smallest = -(-size // 10_000)
    return max(PART_SIZE, -(-smallest // MiB) * MiB)


# -- one run -----------------------------------------------------------------------------------

def run_variant(variant, python, bucket, source, target, args, server, proxy):
    """Run one variant's worker, then check and delete what it downloaded."""
    command = [str(python), str(WORKER), variant, "--endpoint", proxy.url, "--bucket", bucket,
               "--key", "large.bin", "--file", str(source), "--download-to", str(target),
               "--workers", str(WORKERS), "--part-size", str(PART_SIZE),
               "--threshold", str(THRESHOLD),
               "--access-key", server.access_key, "--secret-key", server.secret_key,
               "--handshake"]
    # Generous: both phases at 4 MiB/s, plus startup.
    timeout_s = 120 + 2 * args.large_size_mib / 4
    result = harness.run_worker(command, server, proxy, timeout_s)
    if result["status"] == "ok":
        verify_started = time.perf_counter()
        problem = _check(target, source)
        result["verify_s"] = time.perf_counter() - verify_started
        if problem:
            result.update(status="failed", reason=f"download check: {problem}")
    return result


def _check(target, source):
    """None if ``target`` holds the source's bytes, else what is wrong with it."""
    if not target.exists():
        return "no file was written"
    found, size = target.stat().st_size, source.stat().st_size
    if found != size:
        return f"{found} bytes, not {size}"
    if not same_bytes(target, source):
        return "the bytes differ from the source's"
    return None


# -- summarising -------------------------------------------------------------------------------

def summarise(runs, args):
    """Medians, min and max per variant and phase, and each variant's ratios to s3po."""
    size_mib = args.large_size_mib
    summary = {}
    for variant in args.large_variants:
        done = [run for run in runs if run["variant"] == variant and run["status"] == "ok"]
        if not done:
            continue
        baselines = [run["baseline_rss_mib"] for run in done]
        entry = {
            "runs": len(done),
            "baseline_rss_mib": harness.spread(baselines),
            "peak_rss_mib": harness.spread([run["peak_rss_mib"] for run in done]),
            "peak_above_baseline_mib": harness.spread(
                [run["peak_rss_mib"] - run["baseline_rss_mib"] for run in done
                 if run["baseline_rss_mib"] is not None]),
            "versions": done[-1]["versions"],
            "checks": done[-1].get("checks") or {},
        }
        for phase in PHASES:
            numbers = [run["phases"][phase] for run in done]
            wall = harness.spread([n["wall_s"] for n in numbers])
            cpu = harness.spread([n["cpu_s"] for n in numbers])
            entry[phase] = {
                "wall_s": wall,
                "mib_per_s": harness.spread([size_mib / n["wall_s"] for n in numbers]),
                "cpu_s": cpu,
                "cpu_user_s": harness.spread([n["cpu_user_s"] for n in numbers]),
                "cpu_sys_s": harness.spread([n["cpu_sys_s"] for n in numbers]),
                "cpu_s_per_gib": cpu["median"] * 1024 / size_mib,
                "peak_rss_mib": harness.spread([n["peak_rss_mib"] for n in numbers]),
                "peak_above_baseline_mib": harness.spread(
                    [n["peak_rss_mib"] - run["baseline_rss_mib"] for n, run in zip(numbers, done)
                     if n["peak_rss_mib"] is not None and run["baseline_rss_mib"] is not None]),
                "requests": harness.spread([n["requests"] for n in numbers]),
                **harness.loads(numbers, wall, cpu),
            }
        summary[variant] = entry
    base = summary.get("s3po")
    for entry in summary.values():
        for phase in PHASES:
            numbers = entry[phase]
            numbers["throughput_vs_s3po"] = (
                numbers["mib_per_s"]["median"] / base[phase]["mib_per_s"]["median"]
                if base else None)
            numbers["cpu_vs_s3po"] = (numbers["cpu_s_per_gib"] / base[phase]["cpu_s_per_gib"]
                                      if base and base[phase]["cpu_s_per_gib"] else None)
    return summary


def targets(summary, size):
    """s3po's targets, per s3po variant and phase, as (name, value, goal, met)."""
    checks = []
    budget = RSS_ALLOWANCE_MIB + WORKERS * expected_part_size(size) / MiB
    peers = [name for name in PEERS if name in summary]
    for variant in S3PO_VARIANTS:
        s3po = summary.get(variant)
        if s3po is None:
            continue
        for phase in PHASES:
            if not peers:
                break
            fastest = max(peers, key=lambda name: summary[name][phase]["mib_per_s"]["median"])
            ratio = (s3po[phase]["mib_per_s"]["median"]
                     / summary[fastest][phase]["mib_per_s"]["median"])
            checks.append((f"{phase}: {variant} MiB/s / the faster peer's ({fastest})",
                           round(ratio, 2), ">= 1.00", ratio >= 1.0))
            thriftiest = min(peers, key=lambda name: summary[name][phase]["cpu_s_per_gib"])
            ratio = s3po[phase]["cpu_s_per_gib"] / summary[thriftiest][phase]["cpu_s_per_gib"]
            name = f"{phase}: {variant} CPU s per GiB / the thriftier peer's ({thriftiest})"
            checks.append((name, round(ratio, 2), "<= 1.00", ratio <= 1.0))
        above = s3po["peak_above_baseline_mib"]
        if above:
            # The worst run, not the median: this is a bound.
            checks.append((f"{variant} peak RSS above baseline, MiB (worst run)",
                           round(above["max"], 1), f"<= {budget:.0f}", above["max"] <= budget))
    return checks


def saturation_lines(summary, server):
    """The saturation notes, grouped: the large suite has many rows and often one cause."""
    notes = harness.saturation_notes(summary, PHASES, server)
    rows = len(summary) * len(PHASES)
    cores = os.cpu_count() or 1
    machine_bound = [f"{variant} {phase}" for variant, entry in summary.items()
                     for phase in PHASES
                     if harness.machine_load(entry[phase]) >= harness.SATURATED * cores]
    lines = [note for note in notes if not note.startswith(f"all {cores} cores busy")]
    if machine_bound and len(machine_bound) == rows:
        lines.append(f"saturation: all {cores} cores at least {harness.SATURATED:.0%} busy "
                     "(client + server + proxy) in every row: the machine, not the latency, "
                     "bounds everyone's throughput here, so compare the CPU columns first "
                     "(a lighter client leaves more of the machine to the server)")
    elif machine_bound:
        lines.append(f"saturation: all {cores} cores at least {harness.SATURATED:.0%} busy "
                     f"during {', '.join(machine_bound)}")
    if not lines:
        lines.append("saturation: none (server, proxy and machine all below "
                     f"{harness.SATURATED:.0%} busy in every phase)")
    proxy_loads = [entry[phase]["proxy_load"] for entry in summary.values() for phase in PHASES
                   if entry[phase]["proxy_load"] is not None]
    if proxy_loads:
        lines.append(f"proxy: {min(proxy_loads):.0%}-{max(proxy_loads):.0%} of one core across "
                     "the rows (it streams bodies; it would be the limit near 90%)")
    return lines


# -- reporting ---------------------------------------------------------------------------------

def _user_and_system(numbers):
    return (f"{numbers['cpu_s']['median']:.2f} ({numbers['cpu_user_s']['median']:.2f}"
            f"+{numbers['cpu_sys_s']['median']:.2f})")


def _mib(spread_):
    return "n/a" if spread_ is None else f"{spread_['median']:.0f}"


def table(summary, unavailable, args):
    header = ["phase", "variant", "check", "wall s, median [min-max]", "MiB/s", "÷ s3po's",
              "CPU s (user+sys)", "CPU s/GiB", "÷ s3po's", "requests", "peak RSS MiB",
              "above baseline MiB", "server CPU s (%)", "proxy CPU s (%)"]
    rows = []
    for phase in PHASES:
        for variant in args.large_variants:
            entry = summary.get(variant)
            if entry is None:
                reason = unavailable.get(variant, "no successful run")
                rows.append([phase, variant, "", f"not available: {reason}"] + [""] * 10)
                continue
            numbers = entry[phase]
            check = entry["checks"].get(phase, "none") if variant in S3PO_VARIANTS else "length"
            rows.append([
                phase, variant, check, harness.seconds(numbers["wall_s"]),
                f"{numbers['mib_per_s']['median']:.0f}",
                harness.ratio(numbers["throughput_vs_s3po"]),
                _user_and_system(numbers),
                f"{numbers['cpu_s_per_gib']:.2f}", harness.ratio(numbers["cpu_vs_s3po"]),
                f"{numbers['requests']['median']:.0f}",
                _mib(numbers["peak_rss_mib"]), _mib(numbers["peak_above_baseline_mib"]),
                harness.cpu_share(numbers["server_cpu_s"], numbers["server_load"]),
                harness.cpu_share(numbers["proxy_cpu_s"], numbers["proxy_load"])])
    return harness.markdown_table(header, rows, first_numeric=3)


def report(summary, unavailable, runs, args, server, proxy, latency_ms, notes, durations, mismatches):
    size = args.large_size_mib * MiB
    lines = [table(summary, unavailable, args), ""]
    if args.large_store == "s3":
        lines.append(f"store: {server.kind} behind a proxy that verifies, keeps and returns checksums as "
                     f"S3 does (emulated in the proxy, its CPU in the proxy column); checksum "
                     f"mismatches it saw: {mismatches}")
    else:
        lines.append(f"store: {server.kind} as it is (it keeps no checksums: s3po checks MD5s)")
    lines.append(
        f"one file of {args.large_size_mib} MiB of random bytes, up then down, "
        f"{args.large_repeat} interleaved repeats, +{latency_ms:g} ms per response; "
        f"MiB/s is MiB per wall second; \"÷ s3po's\" is the variant's MiB/s (or CPU per GiB) "
        f"over s3po's; peak RSS is the phase's, \"above baseline\" over the RSS before the "
        f"upload")
    lines.append(
        f"settings: s3po workers={WORKERS}, part_size=None ({expected_part_size(size) // MiB} "
        f"MiB), multipart_threshold={THRESHOLD // MiB} MiB; s3transfer-same, aioboto3 and "
        f"obstore: {WORKERS} in flight, {PART_SIZE // MiB} MiB parts; s3transfer-default: "
        f"boto3's TransferConfig() (10 in flight, 8 MiB parts)")
    for variant in S3PO_VARIANTS:
        entry = summary.get(variant)
        if entry and entry["peak_above_baseline_mib"]:
            lines.append(f"{variant}: baseline RSS {entry['baseline_rss_mib']['median']:.0f} MiB, "
                         f"process peak {entry['peak_rss_mib']['median']:.0f} MiB, "
                         f"{entry['peak_above_baseline_mib']['median']:.0f} MiB above it "
                         f"(worst run {entry['peak_above_baseline_mib']['max']:.0f})")
    for name, value, goal, met in targets(summary, size):
        lines.append(f"target  {name}: {value:.2f} (goal {goal}) {'met' if met else 'MISSED'}")
    if "s3po" not in summary:
        lines.append("targets: n/a until s3po runs")
    lines.extend(saturation_lines(summary, server))
    lines.extend(harness.noise_notes(summary, PHASES))
    lines.extend(f"note: {note}" for note in notes)
    failures = [run for run in runs if run["status"] == "failed"]
    lines.extend(f"failed: {run['variant']} repeat {run['repeat']}: {run['reason']}"
                 for run in failures)
    lines.append(f"large suite: {durations['total_s']:.0f} s in all (making the file "
                 f"{durations['source_s']:.0f} s, workers {durations['workers_s']:.0f} s, "
                 f"checking downloads {durations['verify_s']:.0f} s)")
    versions = harness.versions_by_environment(summary)
    lines.extend(harness.setting_lines(server, proxy, versions))
    return "\n".join(lines), versions


# -- the suite ---------------------------------------------------------------------------------

def run(args, server, notes):
    """Run the large suite against ``server`` behind a proxy of its own; print and write it."""
    started = time.perf_counter()
    latency_ms = args.latency_ms if args.large_latency_ms is None else args.large_latency_ms
    size = args.large_size_mib * MiB
    interpreters, unavailable = harness.interpreters(args.large_variants)
    scratch = Path(tempfile.mkdtemp(prefix="s3po-bench-large-"))
    proxy = None
    runs = []
    durations = {"workers_s": 0.0, "verify_s": 0.0}
    try:
        harness.log(f"large suite: writing {args.large_size_mib} MiB of random bytes ...")
        made = time.perf_counter()
        source = make_source(scratch, size)
        durations["source_s"] = time.perf_counter() - made
        proxy = harness.start_proxy(server, latency_ms, checksums=args.large_store == "s3")
        client = harness.admin_client(server)
        variants = [variant for variant in args.large_variants if variant in interpreters]
        for repeat in range(args.large_repeat):
            shift = repeat % len(variants) if variants else 0
            for variant in variants[shift:] + variants[:shift]:
                if variant in unavailable:
                    continue
                bucket = f"large-{repeat}-{variant}"
                place = scratch / f"run-{repeat}-{variant}"
                place.mkdir()
                client.create_bucket(Bucket=bucket)
                began = time.perf_counter()
                try:
                    result = run_variant(variant, interpreters[variant], bucket, source,
                                         place / "large.bin", args, server, proxy)
                finally:
                    shutil.rmtree(place, ignore_errors=True)
                    harness.empty_and_delete(client, bucket)
                durations["verify_s"] += result.get("verify_s", 0.0)
                durations["workers_s"] += time.perf_counter() - began - result.get("verify_s", 0)
                runs.append({"variant": variant, "repeat": repeat, **result})
                _log_run(variant, repeat, result, args, unavailable)
        summary = summarise(runs, args)
        durations["total_s"] = time.perf_counter() - started
        mismatches = proxy.stats().get("mismatches", 0)
        text, versions = report(summary, unavailable, runs, args, server, proxy, latency_ms,
                                notes, durations, mismatches)
    finally:
        if proxy is not None:
            proxy.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    print(text, flush=True)
    document = {
        "config": {"size_mib": args.large_size_mib, "latency_ms": latency_ms,
                   "repeat": args.large_repeat, "variants": args.large_variants,
                   "server": args.server, "store": args.large_store, "workers": WORKERS,
                   "part_size": PART_SIZE,
                   "multipart_threshold": THRESHOLD,
                   "rss_budget_mib": RSS_ALLOWANCE_MIB + WORKERS * expected_part_size(size) / MiB},
        "machine": harness.machine(),
        "server": {"kind": server.kind, "version": server.version, "cores": server.cores},
        "proxy": {"event_loop": proxy.event_loop},
        "unavailable": unavailable,
        "summary": summary,
        "targets": [{"name": name, "value": value, "goal": goal, "met": met}
                    for name, value, goal, met in targets(summary, size)],
        "saturation": saturation_lines(summary, server),
        "noise": harness.noise_notes(summary, PHASES),
        "notes": notes,
        "durations_s": durations,
        "versions": versions,
        "runs": runs,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    harness.write_results(args.large_json, document, text)


def _log_run(variant, repeat, result, args, unavailable):
    if result["status"] == "unavailable":
        unavailable[variant] = result["reason"]
        harness.log(f"{variant}: not available: {result['reason']}")
    elif result["status"] == "failed":
        harness.log(f"{variant} repeat {repeat + 1}: failed: {result['reason']}")
    else:
        harness.log(f"{variant} repeat {repeat + 1}/{args.large_repeat}: " + ", ".join(
            f"{phase} {result['phases'][phase]['wall_s']:.2f} s "
            f"({args.large_size_mib / result['phases'][phase]['wall_s']:.0f} MiB/s)"
            for phase in PHASES))
