"""s3po.dask jobs on a real local cluster: 2 worker processes, against the loopback server.

One cluster and one set of source keys serve the whole module (a LocalCluster takes
seconds to start). Every request of the workers goes through the HTTP fault proxy,
which counts them and breaks them on command.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys

import pytest
from s3po_fixtures import MiB, make_connection

import s3po
from s3po.jobs import Copy, Download, MapKeys, planners

distributed = pytest.importorskip("distributed")  # in the test extra: missing means a broken install

import s3po.dask  # noqa: E402
from s3po.dask import jobs as dask_jobs  # noqa: E402

SRC = "dask-src"
DST = "dask-dst"
KEYS = 2000
FOLDERS = 8


def name_of(n: int) -> str:
    return f"data/{n % FOLDERS}/{hashlib.md5(str(n).encode()).hexdigest()[:8]}-{n}"


NAMES = sorted(name_of(n) for n in range(KEYS))


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as local, distributed.Client(local) as client:
        yield client


@pytest.fixture(scope="module")
def proxy(shared_fault_proxies, moto_server):
    """The HTTP fault proxy in front of a server emptied once for this module."""
    moto_server.reset()
    proxy = shared_fault_proxies["http"]
    proxy.clear()
    yield proxy
    proxy.clear()


@pytest.fixture(scope="module")
def source(proxy):
    conn = make_connection(proxy.url, retries=3)
    for bucket in (SRC, DST):
        conn.create_bucket(bucket)
    with conn.batch(32, raise_errors=True) as batch:
        for n in range(KEYS):
            batch.upload(SRC, name_of(n), b"x" * (n % 40))
    return conn


@pytest.fixture
def conn(source, proxy, cluster):
    proxy.clear()
    cluster.wait_for_workers(2, timeout=60)
    return source


def puts(proxy, prefix):
    return proxy.count(method="PUT", path_contains=f"/{DST}/{prefix}")


def test_copy_prefix_over_many_shards_then_a_rerun_skips_identical_objects(conn, proxy, cluster, tmp_path):
    seen = []
    report = s3po.dask.copy_prefix(cluster, conn, SRC, "data/", DST, "copied/",
                                   planner=planners.by_sampling(100), progress=seen.append,
                                   report=str(tmp_path / "copy.csv"))
    assert report.ok and (report.objects, report.succeeded, report.skipped) == (KEYS, KEYS, 0)
    assert report.shards >= 15 and report.bytes == sum(n % 40 for n in range(KEYS))
    assert sorted(conn.list(DST, "copied/")) == sorted("copied/" + n[len("data/"):] for n in NAMES)
    assert puts(proxy, "copied/") == KEYS
    assert seen[-1].shards_done == report.shards and seen[-1].planning_done and seen[-1].objects_done == KEYS
    assert [row for row in csv.reader(open(tmp_path / "copy.csv"))] == [
        ["bucket", "key", "version_id", "error_code", "message"]]
    proxy.clear()
    again = s3po.dask.copy_prefix(cluster, conn, SRC, "data/", DST, "copied/", planner=planners.by_fanout(1))
    assert (again.objects, again.skipped, again.succeeded) == (KEYS, KEYS, 0)
    assert puts(proxy, "copied/") == 0 and proxy.count(method="HEAD") == 0  # the listings told


def test_a_failed_shard_is_reported_and_a_rerun_with_the_ledger_does_only_it(conn, proxy, cluster, tmp_path):
    planner = planners.by_sampling(40)
    shards = list(planner(conn, SRC, "data/3/"))
    victim = shards[len(shards) // 2]
    victim_keys = [key.key for key in victim.keys(conn)]
    ledger = str(tmp_path / "ledger")
    # Every listing of that shard fails: 2 attempts (retries=1) in each of 2 task attempts.
    proxy.add_fault("status", count=4, method="GET", query_contains="start-after=" + victim.start_after.replace("/", "%2F"),
                    status=500, code="InternalError")
    flaky = make_connection(proxy.url, retries=1)
    first = s3po.dask.copy_prefix(cluster, flaky, SRC, "data/3/", DST, "ledgered/", planner=planner,
                                  ledger=ledger, retries=1, report=str(tmp_path / "first.jsonl"))
    assert first.shards_failed == 1 and first.shards == len(shards) - 1 and not first.ok
    assert first.failures[-1].key == victim.describe() and first.failures[-1].error_code == "InternalError"
    assert len(os.listdir(os.path.join(ledger, "shards"))) == len(shards) - 1
    lines = [json.loads(line) for line in open(tmp_path / "first.jsonl")]
    assert lines[0]["totals"]["shards_failed"] == 1 and lines[1]["error_code"] == "InternalError"
    proxy.clear()
    rerun = s3po.dask.copy_prefix(cluster, flaky, SRC, "data/3/", DST, "ledgered/", planner=planner, ledger=ledger)
    assert rerun.ok and rerun.shards_from_ledger == len(shards) - 1 and rerun.shards == len(shards)
    assert rerun.objects == len(NAMES) // FOLDERS and rerun.succeeded == len(NAMES) // FOLDERS
    assert puts(proxy, "ledgered/") == len(victim_keys)  # only the shard not finished before
    assert proxy.count(method="HEAD") == len(victim_keys)  # copy's HEAD of each source: none for the others
    with pytest.raises(ValueError, match="another job"):
        s3po.dask.copy_prefix(cluster, flaky, SRC, "data/3/", DST, "elsewhere/", planner=planner, ledger=ledger)


def test_a_worker_killed_mid_job_loses_and_doubles_nothing(conn, proxy, cluster):
    victim = next(iter(cluster.run(os.getpid).values()))
    proxy.latency_s = 0.03  # long enough for the kill to land in the middle of tasks
    killed = []
    expected = sorted("survived/" + n[len("data/1/"):] for n in NAMES if n.startswith("data/1/"))

    def kill_one(progress):
        if not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(progress.shards_done)

    report = s3po.dask.copy_prefix(cluster, conn, SRC, "data/1/", DST, "survived/", planner=planners.by_sampling(20),
                                   progress=kill_one, jobs_per_worker=2)
    assert killed and killed[0] < report.shards - 2  # it died with the job far from done
    assert report.ok and report.objects == len(expected) and report.succeeded + report.skipped == len(expected)
    assert sorted(conn.list(DST, "survived/")) == expected
    assert victim not in cluster.run(os.getpid).values()


def test_slowdown_is_retried_within_the_cluster_wide_cap(conn, proxy, cluster):
    shards = list(planners.by_sampling(50)(conn, SRC, "data/5/"))
    proxy.clear()
    proxy.latency_s = 0.02
    proxy.add_fault("status", count=12, method="PUT", status=503, code="SlowDown")
    patient = make_connection(proxy.url, retries=12)  # more attempts than faults: none can run out
    # The planner gives one shard twice: its keys are copied once.
    report = s3po.dask.copy_prefix(cluster, patient, SRC, "data/5/", DST, "capped/",
                                   planner=lambda c, b, p: shards + shards[:1],
                                   jobs_per_worker=8, max_in_flight=3, skip_identical=False)
    assert report.ok and report.succeeded == KEYS // FOLDERS
    assert len([r for r in proxy.requests if r.status == 503]) == 12
    assert 2 <= proxy.max_in_flight <= 3  # 2 workers x 8 threads would have sent 16 at once
    # The job's semaphore is gone from the workers: none keeps refreshing leases for it.
    assert set(cluster.run(lambda: len(dask_jobs._semaphores)).values()) == {0}


def test_the_cluster_wide_cap_counts_the_ranges_of_large_objects_too(conn, proxy, cluster):
    for n in range(3):
        conn.upload(SRC, f"large/{n}", os.urandom(20 * MiB))
    proxy.clear()
    proxy.latency_s = 0.05
    report = s3po.dask.audit_prefix(cluster, make_connection(proxy.url, part_size=5 * MiB), SRC, "large/",
                                    planner=planners.whole(), jobs_per_worker=4, max_in_flight=2)
    assert report.ok and report.succeeded == 3
    assert len([r for r in proxy.requests if r.method == "GET" and "large/" in r.path]) >= 12  # ranged
    assert proxy.max_in_flight <= 2  # 3 objects of 4 ranges at once would have been up to 12
    for n in range(3):
        conn.delete(SRC, f"large/{n}")


def test_download_prefix_writes_every_file_and_nothing_outside(conn, proxy, cluster, tmp_path):
    for name in ("odd/../escape", "odd//double", "odd/ok", "odd/dir/"):
        conn.upload(SRC, name, b"" if name.endswith("/") else b"odd")
    target = tmp_path / "out"
    report = s3po.dask.download_prefix(cluster, conn, SRC, "", str(target), planner=planners.by_delimiter(2))
    assert report.succeeded == KEYS + 1 and report.skipped == 1
    assert sorted(row.key for row in report.failures) == ["odd/../escape", "odd//double"]
    assert {row.error_code for row in report.failures} == {"UnsafeKey"}
    written = sorted(os.path.relpath(os.path.join(folder, f), target) for folder, _, files in os.walk(target)
                     for f in files)
    assert written == sorted(NAMES + ["odd/ok"])
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert (target / NAMES[7]).read_bytes() == b"x" * (int(NAMES[7].rsplit("-", 1)[1]) % 40)
    # A prefix without "/" is a folder: "odd" is odd/, and its neighbour "oddity" stays out.
    conn.upload(SRC, "oddity", b"a neighbour")
    folder = tmp_path / "odd"
    report = s3po.dask.download_prefix(cluster, conn, SRC, "odd", str(folder))
    assert (report.objects, report.succeeded, report.skipped) == (4, 1, 1)
    assert [f for _, _, files in os.walk(folder) for f in files] == ["ok"]
    for name in ("odd/../escape", "odd//double", "odd/ok", "odd/dir/", "oddity"):
        conn.delete(SRC, name)


def test_audit_prefix_reports_the_object_whose_bytes_do_not_verify(conn, proxy, cluster):
    bad = next(name for name in NAMES if name.startswith("data/2/") and int(name.rsplit("-", 1)[1]) % 40 > 10)
    proxy.add_fault("flip", count=20, method="GET", path_contains=bad.split("/")[-1])
    report = s3po.dask.audit_prefix(cluster, conn, SRC, "data/", planner=planners.by_fanout(2))
    assert report.objects == KEYS and report.succeeded == KEYS - 1
    (row,) = report.failures
    assert (row.bucket, row.key, row.error_code) == (SRC, bad, "ChecksumMismatch")


def test_map_keys_and_delete_prefix(conn, proxy, cluster, tmp_path):
    def check(conn, key):
        if key.key.endswith("7"):
            raise s3po.DownloadException("refused", bucket=key.bucket, key=key.key, code="AccessDenied")
        return s3po.dask.SKIPPED if key.size == 0 else conn.head(key.bucket, key.key).size

    ledger = tmp_path / "ledger"
    report = s3po.dask.map_keys(cluster, conn, SRC, "data/", check, planner=planners.by_delimiter(1),
                                ledger=str(ledger))
    sevens = [n for n in NAMES if n.endswith("7")]
    assert report.shards == FOLDERS and report.failed == len(sevens)
    # Only shards without failed keys are recorded: a rerun does the others again.
    failing_folders = {name.split("/")[1] for name in sevens}
    assert 0 < len(os.listdir(ledger / "shards")) == FOLDERS - len(failing_folders)
    assert sorted(row.key for row in report.failures) == sevens
    assert report.skipped == len([n for n in NAMES if int(n.rsplit("-", 1)[1]) % 40 == 0 and not n.endswith("7")])
    gone = s3po.dask.delete_prefix(cluster, conn, DST, "copied/", planner=planners.by_fanout(1))
    assert gone.ok and gone.objects == KEYS and list(conn.list(DST, "copied/")) == []
    with pytest.raises(ValueError, match="whole_bucket"):
        s3po.dask.delete_prefix(cluster, conn, DST, "")


def test_jobs_refuse_what_cannot_travel_or_run():
    import boto3

    with pytest.raises(TypeError, match="travel to the workers.*Session"):
        s3po.dask.copy_prefix(None, s3po.Connection(boto3.session.Session()), SRC, "a/", DST, "b/")
    with pytest.raises(ValueError, match="onto itself"):
        s3po.dask.copy_prefix(None, s3po.Connection(), SRC, "a/", SRC)
    with pytest.raises(ValueError, match="inside the other"):
        s3po.dask.copy_prefix(None, s3po.Connection(), SRC, "a", SRC, "a/copy")
    with pytest.raises(ValueError, match="its own ledger"):
        s3po.dask.delete_prefix(None, s3po.Connection(), SRC, "a", ledger=f"s3://{SRC}/a/_ledger/")
    with pytest.raises(ValueError, match="tasks_in_flight"):
        s3po.dask.delete_prefix(None, s3po.Connection(), SRC, "a", tasks_in_flight=-1)
    with pytest.raises(ValueError, match="host.*pid"):
        s3po.dask.download_prefix(None, s3po.Connection(), SRC, "a", "/data/{worker}/out")


def f(conn, key):
    return None


def g(conn, key):
    return None


def test_a_job_is_the_same_job_again_only_with_the_same_settings():
    def identity(action, planner=planners.whole()):
        return dask_jobs._identity(action, SRC, "a/", planner)

    assert identity(Copy("a/", DST, "b/")) == identity(Copy("a", DST, "b"))
    assert identity(Copy("a/", DST, "b/")) != identity(Copy("a/", DST, "b/", skip_identical=False))
    assert identity(Download("a/", "/x")) != identity(Download("a/", "/x", decompress=False))
    assert identity(MapKeys(f)) != identity(MapKeys(g))
    # A plain function as the planner is named, not shown with its address: a rerun is the same job.
    plans = [lambda c, b, p: [], lambda c, b, p: []]
    assert "0x" not in json.dumps(identity(MapKeys(f), plans[0]))
    assert identity(MapKeys(f), plans[0]) == identity(MapKeys(f), plans[1])
    # Two lambdas of one module, or two closures of one factory, are two jobs.
    lambdas = [lambda conn, key: key.size, lambda conn, key: key.etag]
    assert identity(MapKeys(lambdas[0])) != identity(MapKeys(lambdas[1]))

    def factory(suffix):
        return lambda conn, key: key.key + suffix

    assert identity(MapKeys(factory(".a"))) != identity(MapKeys(factory(".b")))
    assert identity(MapKeys(factory(".a"))) == identity(MapKeys(factory(".a")))
    defaults = [lambda conn, key, suffix=".a": key.key + suffix, lambda conn, key, suffix=".b": key.key + suffix]
    assert identity(MapKeys(defaults[0])) != identity(MapKeys(defaults[1]))

    def recursive(conn, key, depth=0):
        return recursive(conn, key, depth + 1) if depth < 1 else key

    identity(MapKeys(recursive))
    # A set is described the same way whatever the process's hash seed.
    program = ("import json, sys\n"
               "from s3po.dask import jobs\n"
               "def fn(conn, key):\n"
               "    return key.key.rsplit('.', 1)[-1] in {'txt', 'csv', 'json', 'parquet'}\n"
               "print(json.dumps(jobs._stable(fn)))\n")
    described = {subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                                env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2", "3")}
    assert len(described) == 1 and "fn" in described.pop()


def test_a_gevent_patched_program_is_refused_with_a_clear_message():
    program = ("import s3po.dask\n"
               "from gevent import monkey; monkey.patch_all()\n"
               "try:\n"
               "    s3po.dask.audit_prefix(None, s3po.Connection(), 'b', 'p/')\n"
               "except RuntimeError as exc:\n"
               "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert "cannot run in a gevent-patched process" in done.stdout, done.stderr
    patched_first = subprocess.run([sys.executable, "-c", "from gevent import monkey; monkey.patch_all()\n"
                                    "import s3po.dask"], capture_output=True, text=True, timeout=120)
    assert patched_first.returncode != 0 and "gevent-patched" in patched_first.stderr


def test_the_example_of_the_docs_runs_against_the_embedded_server():
    demo = os.path.join(os.path.dirname(__file__), "..", "demo", "dask_jobs.py")
    done = subprocess.run([sys.executable, demo], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "copied: 600 objects" in done.stdout and "12 of 12 shards skipped" in done.stdout
    assert done.stdout.rstrip().endswith("done")


def test_the_semaphore_is_closed_even_when_the_workers_cannot_be_told():
    closed = []

    class Client:
        class scheduler:
            semaphore_close = "close"

        def run(self, *args, **kwargs):
            raise OSError("a worker went away")

        def sync(self, function, **kwargs):
            closed.append((function, kwargs))

    dask_jobs._close_semaphore(Client(), "s3po-job")
    assert closed == [("close", {"name": "s3po-job"})]
