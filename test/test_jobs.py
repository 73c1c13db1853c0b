"""The engine-neutral core of jobs: shards, planners, the work of a task, ledger, report, paths.

Planners are checked on a listing double that follows S3's rules (UTF-8 order,
StartAfter, Delimiter, 1,000 entries a page) and counts its pages, so that key spaces
of tens of thousands of keys cost nothing; the rest runs on moto in-process.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import hashlib
import io
import json
import os
import pickle
import threading
from collections import Counter

import pytest
from s3po_fixtures import make_connection

import s3po
from s3po import deleting, treepaths
from s3po.jobs import (
    SKIPPED,
    Copy,
    Delete,
    Download,
    FailedKey,
    KeyList,
    Ledger,
    MapKeys,
    Shard,
    ShardResult,
    UnsafeKey,
    local_path,
    planners,
    run_shard,
)
from s3po.jobs import work
from s3po.jobs.report import JobReport, ReportWriter
from s3po.records import Key, Prefix

BUCKET = "jobs"
TOP = "\U0010ffff"


class Listing:
    """Enough of a Connection for the planners: S3's listing of sorted names; counts pages."""

    def __init__(self, names):
        self.names = sorted(set(names))
        self.pages = 0

    def entries(self, bucket, prefix="", *, delimiter="/", start_after=None):
        names = self.names
        index = bisect.bisect_left(names, prefix)
        if start_after is not None:
            index = max(index, bisect.bisect_right(names, start_after))
        count = 0
        while index < len(names) and names[index].startswith(prefix):
            if count % 1000 == 0:
                self.pages += 1
            name = names[index]
            count += 1
            rest = name[len(prefix):]
            if delimiter and delimiter in rest:
                common = prefix + rest[:rest.index(delimiter) + len(delimiter)]
                yield Prefix(bucket, common)
                while index < len(names) and names[index].startswith(common):
                    index += 1
                continue
            yield Key(bucket, name, size=1)
            index += 1

    def objects(self, bucket, prefix="", *, delimiter=None, start_after=None):
        return (e for e in self.entries(bucket, prefix, delimiter=delimiter, start_after=start_after)
                if isinstance(e, Key))


class KeysOnlyListing(Listing):
    """A store that honours StartAfter only when it names a key that exists (rclone's)."""

    def entries(self, bucket, prefix="", *, delimiter="/", start_after=None):
        if start_after is not None and start_after not in self.names:
            start_after = None
        return super().entries(bucket, prefix, delimiter=delimiter, start_after=start_after)


def hashed(count, prefix="h/"):
    return [prefix + hashlib.md5(str(n).encode()).hexdigest()[:12] for n in range(count)]


ODD = [
    "m/",                      # a key equal to the prefix
    "m/a", "m/a" + TOP, "m/a" + TOP + "z",  # keys that hold the highest character
    "m/é/1", "m/日本/2", "m/\U0001f600",     # beyond ASCII
    "m/b/c/d", "m/b/", "m/b/x", "m/z" * 3,
] + [f"m/n/{n:06d}" for n in range(3500)] + [f"m/d/2024-0{m}-{d:02d}/part-{p}" for m in range(1, 4)
                                             for d in range(1, 29) for p in range(12)]

SHAPES = {
    "hashed": ("h/", hashed(20_000)),
    "numbered": ("n/", [f"n/{n:07d}" for n in range(20_000)]),
    "mixed": ("m/", ODD),
}
PLANNERS = [planners.whole(), planners.by_delimiter(1), planners.by_delimiter(3), planners.by_fanout(1),
            planners.by_fanout(2), planners.by_sampling(1000), planners.by_sampling(37),
            planners.by_sampling(50, probes=3)]


def keys_of(store, shard):
    return [key.key for key in shard.keys(store)]


@pytest.mark.parametrize("store_class", [Listing, KeysOnlyListing])
@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("planner", PLANNERS, ids=repr)
def test_every_planner_gives_every_key_exactly_once(shape, planner, store_class):
    prefix, names = SHAPES[shape]
    if store_class is KeysOnlyListing:
        names = names[::4]  # there a range cut at an estimated point lists from its prefix's start
    store = store_class(names + ["other/1", "h", "n", "m"])  # neighbours outside the prefix
    shards = list(planner(store, BUCKET, prefix))
    seen = Counter(name for shard in shards for name in keys_of(store, shard))
    assert sorted(seen) == sorted(n for n in set(names) if n.startswith(prefix))
    assert max(seen.values()) == 1
    assert len({shard.id for shard in shards}) == len(shards)


@pytest.mark.parametrize("probes", [200, 5])
def test_sampling_cuts_hashed_and_numbered_keys_evenly_from_a_partial_listing(probes):
    for prefix, names in (SHAPES["hashed"], SHAPES["numbered"], ("h/", hashed(200_000))):
        store = Listing(names)
        shards = list(planners.by_sampling(1000, probes=probes)(store, BUCKET, prefix))
        planning_pages = store.pages
        sizes = [len(keys_of(store, shard)) for shard in shards]
        assert len(names) / 1000 * 0.9 <= len(shards) <= len(names) / 1000 * 1.7, sizes
        assert max(sizes) <= 1700 and sizes.count(0) <= 2, sizes
        # At most the budget, plus the characters of the levels it ran out at.
        assert planning_pages <= probes + 32, planning_pages


def test_a_lopsided_layout_past_the_budget_gives_uneven_shards_not_thousands():
    store = Listing(ODD)
    shards = list(planners.by_sampling(1000, probes=5)(store, BUCKET, "m/"))
    assert len(shards) <= 3 * planners.MAX_PARTS


def test_sampling_keeps_small_groups_together_and_cuts_at_real_keys():
    names = [f"s/{c}/{n}" for c in "abcdefgh" for n in range(30)]
    store = Listing(names)
    shards = list(planners.by_sampling(100)(store, BUCKET, "s/"))
    assert store.pages == 1
    sizes = [len(keys_of(store, shard)) for shard in shards]
    assert sum(sizes) == 240 and sizes[:2] == [100, 100]


def test_fanout_finds_the_characters_with_one_request_each():
    store = Listing(hashed(20_000))
    shards = list(planners.by_fanout(1)(store, BUCKET, "h/"))
    assert [shard.prefix for shard in shards] == [f"h/{c}" for c in "0123456789abcdef"]
    assert store.pages <= 17
    assert len(list(planners.by_fanout(2)(store, BUCKET, "h/"))) == 256


def test_delimiter_walk_gives_folders_and_the_keys_beside_them():
    store = Listing(ODD)
    shards = list(planners.by_delimiter(2)(store, BUCKET, "m/"))
    prefixes = {(shard.prefix, shard.delimiter) for shard in shards}
    assert ("m/d/2024-01-01/", None) in prefixes
    assert ("m/", "/") in prefixes and ("m/d/", "/") not in prefixes  # no key sits beside m/d/'s folders
    assert keys_of(store, Shard(BUCKET, "m/", delimiter="/"))[:2] == ["m/", "m/a"]


def test_planners_check_their_settings():
    for bad in (lambda: planners.by_sampling(0), lambda: planners.by_fanout(0),
                lambda: planners.by_delimiter(0), lambda: planners.by_delimiter(1, "")):
        with pytest.raises(ValueError):
            bad()


def test_a_range_shard_lists_from_start_after_and_stops_after_last():
    store = Listing([f"r/{n:04d}" for n in range(3000)])
    shard = Shard(BUCKET, "r/", start_after="r/1499", last="r/1999")
    assert keys_of(store, shard) == [f"r/{n:04d}" for n in range(1500, 2000)]
    assert store.pages == 1  # started at 1500, stopped within the first page


@pytest.fixture
def mocked():
    conn = make_connection()
    with conn.mock(buckets=[BUCKET, "dst"]):
        yield conn


def test_start_after_on_moto_and_the_shard_kinds_on_a_real_listing(mocked):
    for name in ("a/1", "a/2", "a/3", "a/b/4", "b/5"):
        mocked.upload(BUCKET, name, name)
    assert list(mocked.list(BUCKET, "a/", start_after="a/1")) == ["a/2", "a/3", "a/b/4"]
    assert keys_of(mocked, Shard(BUCKET, "a/", start_after="a/1", last="a/3")) == ["a/2", "a/3"]
    assert keys_of(mocked, Shard(BUCKET, "a/", delimiter="/")) == ["a/1", "a/2", "a/3"]
    assert keys_of(mocked, KeyList(BUCKET, ("b/5", "a/1"))) == ["b/5", "a/1"]
    with pytest.raises(TypeError):
        list(mocked.list(BUCKET, start_after=5))
    shards = list(planners.by_sampling(2)(mocked, BUCKET, "a/"))
    assert sorted(n for s in shards for n in keys_of(mocked, s)) == ["a/1", "a/2", "a/3", "a/b/4"]


def test_key_files_are_cut_into_slices_outside_keys_left_out(mocked, tmp_path):
    listing = tmp_path / "keys.txt"
    listing.write_text("".join(f"k/{n}\n" for n in range(25)) + "other/1\n\n")
    shards = list(planners.from_key_file(str(listing), keys_per_shard=10)(mocked, BUCKET, "k/"))
    assert [len(shard.names) for shard in shards] == [10, 10, 5]
    assert shards[0].names[0] == "k/0" and shards[0].id != shards[1].id
    manifest = f"{BUCKET},k/with%20space\n{BUCKET},k/plus%2Bsign\n"
    mocked.upload(BUCKET, "manifests/m.csv", manifest)
    (shard,) = planners.from_key_file(f"s3://{BUCKET}/manifests/m.csv")(mocked, BUCKET, "k/")
    assert shard.names == ("k/with space", "k/plus+sign")


def test_an_inventory_manifest_gives_one_shard_per_data_file(mocked):
    schema = "Bucket, Key, VersionId, IsLatest, Size, LastModifiedDate, ETag"
    rows = [[BUCKET, "inv/a%20b", "v1", "true", "3", "2024-05-01T10:00:00.000Z", "abc"],
            [BUCKET, "inv/c", "", "true", "0", "2024-05-01T10:00:00.000Z", "def"],
            [BUCKET, "elsewhere/d", "", "true", "1", "2024-05-01T10:00:00.000Z", "123"]]
    for index in range(2):
        text = io.StringIO()
        csv.writer(text).writerows(rows)
        mocked.upload("dst", f"inventory/data/{index}.csv.gz", gzip.compress(text.getvalue().encode()))
    manifest = {"sourceBucket": BUCKET, "destinationBucket": "arn:aws:s3:::dst", "fileFormat": "CSV",
                "fileSchema": schema, "files": [{"key": f"inventory/data/{n}.csv.gz"} for n in range(2)]}
    mocked.upload("dst", "inventory/manifest.json", json.dumps(manifest))
    shards = list(planners.from_inventory("s3://dst/inventory/manifest.json")(mocked, BUCKET, "inv/"))
    assert len(shards) == 2 and shards[0].id != shards[1].id
    keys = list(shards[0].keys(mocked))
    assert [(k.key, k.size, k.etag, k.version_id) for k in keys] == [("inv/a b", 3, "abc", "v1"), ("inv/c", 0, "def", None)]
    assert keys[0].last_modified.tzinfo is not None
    with pytest.raises(ValueError, match="lists bucket"):
        list(planners.from_inventory("s3://dst/inventory/manifest.json")(mocked, "dst", ""))


class Leases:
    """A limiter double: a plain semaphore that remembers the most leases held at once."""

    def __init__(self, size):
        self._semaphore = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()
        self.held = self.most = self.taken = 0

    def acquire(self, timeout=None):
        if not self._semaphore.acquire(timeout=timeout if timeout is None or timeout > 0 else None) \
                if timeout is None or timeout > 0 else not self._semaphore.acquire(blocking=False):
            return False
        with self._lock:
            self.held += 1
            self.taken += 1
            self.most = max(self.most, self.held)
        return True

    def release(self):
        with self._lock:
            self.held -= 1
        self._semaphore.release()


def test_run_shard_runs_each_key_once_within_the_leases_and_reports_failures(mocked):
    with mocked.batch(16) as batch:
        for n in range(120):
            batch.upload(BUCKET, f"w/{n:03d}", b"x" * n)
    running, most, lock = [0], [0], threading.Lock()
    seen = Counter()

    def work(conn, key):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
            seen[key.key] += 1
        try:
            if key.key.endswith("7"):
                raise s3po.DownloadException("no", bucket=key.bucket, key=key.key, code="AccessDenied")
            return SKIPPED if key.size == 0 else conn.head(key.bucket, key.key)
        finally:
            with lock:
                running[0] -= 1

    leases = Leases(3)
    result = run_shard(mocked, Shard(BUCKET, "w/"), MapKeys(work), jobs=8, limiter=leases)
    assert set(seen.values()) == {1} and len(seen) == 120
    assert most[0] <= 3 and leases.most <= 3 and leases.held == 0
    assert (result.objects, result.skipped, len(result.failed)) == (120, 1, 12)
    assert result.succeeded == 107 and result.bytes == sum(range(120)) - sum(n for n in range(120) if n % 10 == 7)
    assert result.failed[0].error_code == "AccessDenied" and result.failed[0].bucket == BUCKET


def test_a_shard_whose_listing_fails_fails_the_task(mocked):
    with pytest.raises(s3po.NotFound):
        run_shard(mocked, Shard("no-such-bucket", "x/"), MapKeys(lambda conn, key: None), jobs=2)


def test_copy_skips_identical_objects_from_the_destination_listing(mocked):
    for n in range(5):
        mocked.upload(BUCKET, f"c/{n}", f"body {n}")
    mocked.copy(BUCKET, "c/1", "dst", "to/1")
    mocked.upload("dst", "to/2", "changed")
    action = Copy("c/", "dst", "to/")
    result = run_shard(mocked, Shard(BUCKET, "c/", start_after="c/0"), action, jobs=2)
    assert (result.objects, result.succeeded, result.skipped) == (4, 3, 1)
    assert mocked.download("dst", "to/2") == b"body 2"
    # Keys from a file have no order to merge on: each is looked up with a HEAD.
    result = run_shard(mocked, KeyList(BUCKET, ("c/3", "c/0")), action, jobs=2)
    assert (result.succeeded, result.skipped) == (1, 1)


def test_delete_reports_the_keys_it_could_not_delete(mocked):
    for n in range(2500):
        mocked.client.put_object(Bucket=BUCKET, Key=f"d/{n:04d}", Body=b"")
    result = run_shard(mocked, Shard(BUCKET, "d/"), Delete(), jobs=3)
    assert (result.objects, result.succeeded) == (2500, 2500)
    assert list(mocked.list(BUCKET, "d/")) == []


@pytest.mark.parametrize("where", ["folder", "s3"])
def test_the_ledger_keeps_finished_shards_of_one_job(mocked, tmp_path, where):
    location = str(tmp_path / "ledger") if where == "folder" else f"s3://{BUCKET}/ledgers/job-1"
    job = {"operation": "copy", "bucket": BUCKET, "prefix": "p/", "planner": "whole()", "target": None}
    ledger = Ledger(location, mocked)
    assert ledger.begin(job) == {}
    result = ShardResult("abc", "a shard", 3, 2, 0, 10, [FailedKey(BUCKET, "p/x", None, "AccessDenied", "no")])
    ledger.record(result)
    assert Ledger(location, mocked).begin(job) == {"abc": result}
    with pytest.raises(ValueError, match="belongs to another job"):
        Ledger(location, mocked).begin({**job, "prefix": "q/"})


@pytest.mark.parametrize("name", ["report.csv", "report.jsonl"])
def test_the_report_has_totals_and_one_row_per_failed_key(tmp_path, name):
    path = tmp_path / "out" / name
    writer = ReportWriter(str(path), JobReport("copy", BUCKET, "p/"))
    writer.add(ShardResult("1", "one", 2, 1, 0, 5, [FailedKey(BUCKET, "p/a,b", "v1", "SlowDown", 'said "no"')]))
    writer.add(ShardResult("2", "two", 3, 3, 0, 7), from_ledger=True)
    writer.add_failed_shard(BUCKET, "s3://jobs/p/* after 'p/x'", s3po.DownloadException("gone", code="NoSuchBucket"))
    report = writer.close()
    assert (report.shards, report.shards_from_ledger, report.shards_failed, report.objects, report.failed) == \
        (2, 1, 1, 5, 1)
    assert not report.ok and len(report.failures) == 2
    if name.endswith(".csv"):
        rows = list(csv.reader(path.open()))
        assert rows[0] == ["bucket", "key", "version_id", "error_code", "message"]
        assert rows[1] == [BUCKET, "p/a,b", "v1", "SlowDown", 'said "no"'] and rows[2][3] == "NoSuchBucket"
        assert json.loads((tmp_path / "out" / (name + ".totals.json")).read_text())["objects"] == 5
    else:
        lines = [json.loads(line) for line in path.open()]
        assert lines[0]["totals"]["bytes"] == 12 and lines[1]["key"] == "p/a,b" and len(lines) == 3
    assert [entry.name for entry in os.scandir(path.parent) if entry.name.startswith(".")] == []


@pytest.mark.parametrize("key", ["p/../x", "p//x", "p/a/./b", "p/", "p/a\0b", "/etc/passwd", "p/.."])
def test_keys_that_cannot_be_a_file_under_the_target_are_refused(tmp_path, key):
    with pytest.raises(UnsafeKey):
        local_path(str(tmp_path), "p/", key)


def test_a_symbolic_link_cannot_lead_a_key_outside(tmp_path):
    (tmp_path / "target").mkdir()
    os.symlink(tmp_path, tmp_path / "target" / "up")
    assert local_path(str(tmp_path / "target"), "p/", "p/a/b") == str(tmp_path / "target" / "a" / "b")
    with pytest.raises(UnsafeKey, match="symbolic link"):
        local_path(str(tmp_path / "target"), "p/", "p/up/x")


def test_an_inventory_of_all_versions_gives_each_key_once(mocked):
    schema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size"
    rows = [[BUCKET, "v/a", "3", "true", "false", "3"], [BUCKET, "v/a", "2", "false", "false", "2"],
            [BUCKET, "v/b", "9", "true", "true", ""], [BUCKET, "v/b", "8", "false", "false", "8"],
            [BUCKET, "v/c", "1", "true", "false", "1"]]
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    mocked.upload("dst", "inventory/all.csv", text.getvalue())
    shard = s3po.jobs.InventoryFile(BUCKET, "dst", "inventory/all.csv", tuple(schema.split(", ")), "v/")
    assert [(key.key, key.version_id) for key in shard.keys(mocked)] == [("v/a", "3"), ("v/c", "1")]


def test_a_copy_into_a_prefix_inside_its_source_is_refused(mocked):
    for name in ("data/a", "data/b"):
        mocked.upload(BUCKET, name, name)
    for source, destination in (("data/", "data/copy/"), ("data", "data"), ("data/copy", "data")):
        with pytest.raises(ValueError, match="inside the other|onto itself"):
            run_shard(mocked, Shard(BUCKET, "data/"), Copy(source, BUCKET, destination), jobs=1)
    assert sorted(mocked.list(BUCKET)) == ["data/a", "data/b"]
    assert run_shard(mocked, Shard(BUCKET, "data/"), Copy("data", "dst", "data"), jobs=1).succeeded == 2


def test_a_prefix_without_a_slash_is_a_folder_for_a_download(mocked, tmp_path):
    for name in ("data/x", "data/y/z", "database/x"):
        mocked.upload(BUCKET, name, name)
    result = run_shard(mocked, Shard(BUCKET, "data"), Download("data", str(tmp_path)), jobs=2)
    assert (result.succeeded, [(row.key, row.error_code) for row in result.failed]) == (
        2, [("database/x", "UnsafeKey")])
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == ["x", "y/z"]
    assert local_path(str(tmp_path), "data", "data/y/z") == str(tmp_path / "y" / "z")


def test_downloads_of_jobs_and_trees_refuse_the_same_names(tmp_path, monkeypatch):
    for name in ("x" * 256, "a/" + "\u00e9" * 128):  # a segment longer than a file name may be
        assert treepaths.unsafe_reason(name) is not None
        with pytest.raises(UnsafeKey):
            local_path(str(tmp_path), "p/", "p/" + name)
    monkeypatch.setattr(treepaths, "OTHER_SEPARATORS", ("\\",))  # as on Windows
    with pytest.raises(UnsafeKey, match="separator"):
        local_path(str(tmp_path), "p/", "p/a\\..\\..\\x")


def test_a_delete_counts_what_s3_deleted_when_it_refuses_part_of_a_request(mocked, monkeypatch):
    real = deleting.delete_keys

    def refusing_the_first(ctx, bucket, keys, what=None):
        keys = list(keys)
        real(ctx, bucket, keys[1:], what)
        raise s3po.DeleteException("refused", bucket=bucket, code="AccessDenied", operation="delete",
                                   failed=[(keys[0], "AccessDenied", "Access Denied")])

    for n in range(5):
        mocked.upload(BUCKET, f"r/{n}", b"x")
    monkeypatch.setattr(deleting, "delete_keys", refusing_the_first)
    result = run_shard(mocked, Shard(BUCKET, "r/"), Delete(), jobs=1)
    assert (result.objects, result.succeeded) == (5, 4)
    assert [(row.key, row.error_code, row.message) for row in result.failed] == [
        ("r/0", "AccessDenied", "Access Denied")]
    assert list(mocked.list(BUCKET, "r/")) == ["r/0"]


def test_a_worker_keeps_a_few_connections_not_one_per_set_of_arguments_ever_seen(monkeypatch):
    monkeypatch.setattr(work, "_connections", type(work._connections)())
    made = [make_connection(max_connections=n) for n in range(1, work.SHARED_CONNECTIONS + 5)]
    for conn in made:
        assert work.shared_connection(conn) is conn
    assert len(work._connections) == work.SHARED_CONNECTIONS
    again = make_connection(max_connections=len(made))
    assert work.shared_connection(again) is made[-1]  # the same arguments: the one kept


def test_tasks_of_one_job_share_one_connection_however_much_the_client_retried_between_them(monkeypatch):
    import random

    monkeypatch.setattr(work, "_connections", type(work._connections)())
    conn = make_connection()
    first = pickle.dumps(conn)  # as the first task is sent
    for retry in range(1, 4):
        conn.retry_policy.delay(retry)  # jitter drawn by the client's own calls
    random.random()
    later = pickle.dumps(conn)  # as a later task is sent
    assert first == later
    assert work.shared_connection(pickle.loads(first)) is work.shared_connection(pickle.loads(later))
    assert len(work._connections) == 1


def test_a_program_that_patched_threads_but_not_sockets_is_refused():
    import subprocess
    import sys

    program = ("from gevent import monkey; monkey.patch_all(socket=False, ssl=False)\n"
               "from s3po.jobs.work import refuse_patched\n"
               "try:\n"
               "    refuse_patched('s3po.dask')\n"
               "except RuntimeError as exc:\n"
               "    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert "cannot run in a gevent-patched process" in done.stdout and "threading" in done.stdout, done.stderr


def test_copy_skips_a_copy_of_an_object_uploaded_in_parts_by_its_stored_checksum():
    conn = make_connection(multipart_threshold=5 * 1024 * 1024, part_size=5 * 1024 * 1024)
    with conn.mock(buckets=[BUCKET, "dst"]):
        conn.upload(BUCKET, "m/big", os.urandom(11 * 1024 * 1024))
        action = Copy("m/", "dst", "m/")
        assert run_shard(conn, Shard(BUCKET, "m/"), action, jobs=1).succeeded == 1
        for shard in (Shard(BUCKET, "m/"), KeyList(BUCKET, ("m/big",))):  # listed, and looked up
            result = run_shard(conn, shard, action, jobs=1)
            assert (result.succeeded, result.skipped) == (0, 1)
