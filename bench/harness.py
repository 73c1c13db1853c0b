"""What both suites share: running a worker while sampling the server and the proxy.

A worker is one variant in one process (bench/worker.py for the small suite,
bench/large_worker.py for the large one). It announces the start and the end of each timed
phase on stdout and waits; at each announcement this side samples the server's, the
proxy's and the machine's CPU. The rest is bookkeeping both suites need: buckets, medians,
saturation and noise notes, a Markdown table.
"""

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import peers
import servers

BENCH = Path(__file__).resolve().parent
SATURATED = 0.9     # a process busy this fraction of the phase (per core it can use) is the limit
NOISY = 0.25        # other processes busy this fraction of a core disturb the measurement


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# -- setting up --------------------------------------------------------------------------------

def interpreter(variant):
    """The Python that runs a variant: the project's, or the peer's own virtualenv."""
    if variant == "aioboto3":
        return peers.aioboto3_python()       # aioboto3 pins its own botocore
    if variant == "obstore":
        return peers.obstore_python()
    return Path(sys.executable)


def interpreters(variants):
    """({variant: python}, {variant: why it is unavailable})."""
    found, unavailable = {}, {}
    for variant in variants:
        try:
            found[variant] = interpreter(variant)
        except peers.Unavailable as err:
            unavailable[variant] = str(err)
            log(f"{variant}: not available: {err}")
    return found, unavailable


def start_proxy(server, latency_ms, checksums=False):
    """bench/delayproxy.py in front of ``server``, on uvloop when it can be installed.

    ``checksums``: the proxy verifies, keeps and returns checksums as S3 does.
    """
    try:
        python = peers.proxy_python()
    except peers.Unavailable as err:
        python = Path(sys.executable)
        log(f"proxy runs on plain asyncio: {err}")
    proxy = servers.Proxy(server.port, latency_ms, python, checksums)
    log(f"server {server.version} at {server.url}, proxy at {proxy.url} "
        f"(+{latency_ms:g} ms per response{', checksums as S3' if checksums else ''})")
    return proxy


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
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for upload in page.get("Uploads", []):
                client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"],
                                              UploadId=upload["UploadId"])
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


# -- one worker --------------------------------------------------------------------------------

def run_worker(command, server, proxy, timeout_s):
    """Run a worker to its end; its result, with the server's and proxy's share per phase.

    Returns ``{"status": "ok", ...the worker's result...}``, or ``{"status": "failed" or
    "unavailable", "reason": ...}``.
    """
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


def loads(numbers, wall, cpu):
    """The server's, proxy's and others' CPU over a phase's runs, and their share of a core.

    ``numbers`` are one phase's results over the runs; ``wall`` and ``cpu`` the client's
    spreads. The ``*_load`` fields are busy fractions of one core, from the medians.
    """
    fields = {}
    for name in ("server", "proxy", "other", "stolen"):
        used = spread([n[f"{name}_cpu_s"] for n in numbers])
        fields[f"{name}_cpu_s"] = used
        fields[f"{name}_load"] = used and used["median"] / wall["median"]
    fields["client_load"] = cpu["median"] / wall["median"]
    return fields


def saturation_notes(summary, phases, server):
    """Say where a process other than the client (or the whole machine) was the limit."""
    cores = os.cpu_count() or 1
    notes = []
    for variant, entry in summary.items():
        for phase in phases:
            numbers = entry[phase]
            server_load = numbers["server_load"]
            if server_load is not None and server_load >= SATURATED * server.cores:
                notes.append(f"server saturated during {variant} {phase}: "
                             f"{numbers['server_load']:.0%} of a core (it can use {server.cores})")
            if numbers["proxy_load"] is not None and numbers["proxy_load"] >= SATURATED:
                notes.append(f"proxy saturated during {variant} {phase}: "
                             f"{numbers['proxy_load']:.0%} of its one core")
            if machine_load(numbers) >= SATURATED * cores:
                notes.append(f"all {cores} cores busy during {variant} {phase} "
                             f"(client+server+proxy {machine_load(numbers):.0%} of a core): the "
                             f"machine, not the latency, bounds that row")
    return notes


def machine_load(numbers):
    """Client, server and proxy together, in cores kept busy."""
    return numbers["client_load"] + (numbers["server_load"] or 0) + (numbers["proxy_load"] or 0)


def noise_notes(summary, phases):
    """Say where other programs, or the hypervisor, took CPU from the benchmark."""
    notes = []
    for variant, entry in summary.items():
        for phase in phases:
            numbers = entry[phase]
            if (numbers["other_load"] or 0) >= NOISY:
                notes.append(f"noisy: other processes kept {numbers['other_load']:.0%} of a core "
                             f"busy during {variant} {phase}")
            if (numbers["stolen_load"] or 0) >= NOISY:
                notes.append(f"noisy: the hypervisor stole {numbers['stolen_load']:.0%} of a core "
                             f"during {variant} {phase}")
    return notes


# -- reporting ---------------------------------------------------------------------------------

def seconds(spread_):
    return f"{spread_['median']:.2f} [{spread_['min']:.2f}-{spread_['max']:.2f}]"


def ratio(value):
    return "" if value is None else f"{value:.2f}"


def cpu_share(spread_, load):
    if spread_ is None:
        return "n/a"
    return f"{spread_['median']:.2f} ({load:.0%})"


def markdown_table(header, rows, first_numeric):
    """One Markdown table that also reads in a terminal; columns from ``first_numeric`` on
    are right-aligned."""
    widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]

    def line(cells):
        return "| " + " | ".join(
            str(cell).rjust(width) if i >= first_numeric and cells is not header
            else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths))) + " |"

    rule = "|" + "|".join("-" * (width + 1) + (":" if i >= first_numeric else "-")
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


def setting_lines(server, proxy, versions):
    """The server, proxy, machine and package versions, as the report's last lines."""
    return [
        "server: " + server.version + f"; proxy: delayproxy.py on {proxy.event_loop}; "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}",
        "versions: " + "; ".join(
            ", ".join(f"{name} {version}" for name, version in sorted(found.items()))
            + f" ({where})" for where, found in versions.items()),
        "reproduce: make bench" + (f" BENCH_ARGS='{' '.join(sys.argv[1:])}'"
                                   if sys.argv[1:] else ""),
    ]


def machine():
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}


def write_results(path, document, text):
    """The numbers as JSON at ``path``, the report as Markdown beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    path.with_suffix(".md").write_text(text + "\n")
    log(f"wrote {path} and {path.with_suffix('.md')}")
