"""Whole trees: upload_tree, download_tree, copy_tree, sync, and downloads kept inside their folder.

Logic runs on moto in-process (quick); what depends on the wire (mtimes from real
LastModified headers, interrupted trees) runs against the moto server on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import boto3
import pytest

import s3po
from s3po import deleting, treepaths
from s3po.localtree import walk
from s3po.treepaths import unsafe_reason
from s3po.treeplan import Item, TreeOrderError, plan
from s3po_fixtures import BUCKET, MiB, endpoint_options, interruptible, make_connection

FILES = {
    "a.txt": b"alpha",
    "a/b.txt": b"bee",
    "a/c/d.bin": b"\x00" * 300,
    "a!x": b"bang",
    "z": b"zed",
    "\u00e9t\u00e9/caf\u00e9.txt": b"unicode",
}


@pytest.fixture
def mocked():
    conn = make_connection()
    with conn.mock(buckets=[BUCKET]):
        yield conn


@pytest.fixture
def wire(server_url):
    conn = make_connection(server_url)
    conn.create_bucket(BUCKET)
    return conn


def make_tree(root, files=FILES):
    for relative, body in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
    return root


def read_tree(root):
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root).replace(os.sep, "/")] = open(path, "rb").read()
    return found


def test_a_folder_goes_up_and_comes_back_the_same_over_the_wire(wire, tmp_path):
    source = make_tree(tmp_path / "src")
    report = wire.upload_tree(BUCKET, "data", source)  # no trailing "/": still a folder
    assert report.ok and report.transferred == len(FILES)
    assert report.transferred_bytes == sum(map(len, FILES.values()))
    assert sorted(wire.list(BUCKET)) == sorted(f"data/{relative}" for relative in FILES)
    report = wire.download_tree(BUCKET, "data/", tmp_path / "out")
    assert report.ok and report.transferred == len(FILES)
    assert read_tree(tmp_path / "out") == FILES
    # Each file carries its object's LastModified, so a second sync moves nothing.
    for record in wire.objects(BUCKET, "data/"):
        path = tmp_path / "out" / record.key[len("data/"):]
        assert int(path.stat().st_mtime) == int(record.last_modified.timestamp())
    again = wire.download_tree(BUCKET, "data", tmp_path / "out", sync=True)
    assert (again.transferred, again.skipped) == (0, len(FILES))
    again = wire.upload_tree(BUCKET, "data", source, sync=True)
    assert (again.transferred, again.skipped) == (0, len(FILES))


def test_the_local_walk_comes_in_s3_order(tmp_path):
    names = {"a.txt": b"", "a/b": b"", "a!x": b"", "a0": b"", "a/a/a": b"", "b": b"", "\u00e9": b"",
             "A": b"", "a-b/c": b"", "a/": None}
    make_tree(tmp_path, {name: body for name, body in names.items() if body is not None})
    walked = [entry.relative for entry in walk(str(tmp_path))]
    assert walked == sorted(walked, key=lambda name: name.encode("utf-8"))
    assert len(walked) == 9


def test_sync_copies_only_what_changed_and_deletes_only_when_asked(mocked, tmp_path):
    source = make_tree(tmp_path / "src")
    mocked.upload_tree(BUCKET, "p", source)
    (source / "z").write_bytes(b"a longer zed")
    (source / "new").write_bytes(b"new")
    (source / "a.txt").unlink()
    report = mocked.upload_tree(BUCKET, "p", source, sync=True)
    assert (report.transferred, report.skipped, report.deleted) == (2, len(FILES) - 2, 0)
    assert "p/a.txt" in set(mocked.list(BUCKET))
    report = mocked.upload_tree(BUCKET, "p", source, sync=True, delete=True)
    assert (report.transferred, report.deleted) == (0, 1)
    assert "p/a.txt" not in set(mocked.list(BUCKET))
    with pytest.raises(ValueError, match="needs sync=True"):
        mocked.upload_tree(BUCKET, "p", source, delete=True)


def test_compare_modes(mocked, tmp_path):
    source = make_tree(tmp_path / "src", {"f": b"same size 1"})
    mocked.upload_tree(BUCKET, "p", source)
    (source / "f").write_bytes(b"same size 2")  # same size, new content
    os.utime(source / "f", (0, 1))  # and an old mtime: only a checksum sees the change
    assert mocked.upload_tree(BUCKET, "p", source, sync=True, compare="size").transferred == 0
    assert mocked.upload_tree(BUCKET, "p", source, sync=True).transferred == 0
    assert mocked.upload_tree(BUCKET, "p", source, sync=True, compare="checksum").transferred == 1
    assert mocked.download(BUCKET, "p/f") == b"same size 2"
    assert mocked.upload_tree(BUCKET, "p", source, sync=True, compare="checksum").skipped == 1
    later = time.time() + 10
    os.utime(source / "f", (later, later))  # newer than the object: size-mtime uploads it again
    assert mocked.upload_tree(BUCKET, "p", source, sync=True).transferred == 1
    with pytest.raises(ValueError, match="compare"):
        mocked.upload_tree(BUCKET, "p", source, sync=True, compare="md5")


def test_checksum_compare_of_a_multipart_object(tmp_path):
    conn = make_connection(multipart_threshold=5 * MiB, part_size=5 * MiB)
    with conn.mock(buckets=[BUCKET]):
        source = make_tree(tmp_path / "src", {"big": os.urandom(11 * MiB)})
        conn.upload_tree(BUCKET, "p", source)
        assert next(conn.objects(BUCKET)).etag.endswith("-3")
        assert conn.upload_tree(BUCKET, "p", source, sync=True, compare="checksum").skipped == 1
        assert conn.download_tree(BUCKET, "p", tmp_path / "out").ok
        assert conn.download_tree(BUCKET, "p", tmp_path / "out", sync=True, compare="checksum").skipped == 1


def test_a_copy_of_a_multipart_object_is_seen_the_same_by_its_stored_checksum(tmp_path):
    conn = make_connection(multipart_threshold=5 * MiB, part_size=5 * MiB)
    with conn.mock(buckets=[BUCKET]):
        conn.upload(BUCKET, "src/big", os.urandom(11 * MiB))
        conn.upload(BUCKET, "src/small", b"small")
        assert conn.copy_tree(BUCKET, "src", BUCKET, "dst").transferred == 2
        assert next(conn.objects(BUCKET, "src/")).etag != next(conn.objects(BUCKET, "dst/")).etag
        again = conn.copy_tree(BUCKET, "src", BUCKET, "dst", sync=True, compare="checksum")
        assert (again.transferred, again.skipped) == (0, 2)
        conn.upload(BUCKET, "dst/big", os.urandom(11 * MiB))  # the same size, other bytes
        again = conn.copy_tree(BUCKET, "src", BUCKET, "dst", sync=True, compare="checksum")
        assert (again.transferred, again.skipped) == (1, 1)


def test_include_and_exclude_with_exclude_winning(mocked, tmp_path):
    source = make_tree(tmp_path / "src")
    report = mocked.upload_tree(BUCKET, "", source, include=["*.txt"], exclude=["a/*"])
    assert report.transferred == 2
    assert sorted(mocked.list(BUCKET)) == ["a.txt", "\u00e9t\u00e9/caf\u00e9.txt"]
    # Excluded keys are not deleted by a sync either.
    report = mocked.upload_tree(BUCKET, "", source, include=["z"], sync=True, delete=True)
    assert (report.transferred, report.deleted) == (1, 0)


def test_a_dry_run_plans_and_changes_nothing(mocked, tmp_path):
    source = make_tree(tmp_path / "src")
    mocked.upload(BUCKET, "p/stale", b"old")
    report = mocked.upload_tree(BUCKET, "p", source, sync=True, delete=True, dry_run=True)
    assert report.dry_run and report.transferred == 0
    planned = sorted((action.action, action.destination) for action in report.planned)
    assert planned == sorted([("upload", f"s3://{BUCKET}/p/{relative}") for relative in FILES]
                             + [("delete", f"s3://{BUCKET}/p/stale")])
    assert list(mocked.list(BUCKET)) == ["p/stale"]
    report = mocked.download_tree(BUCKET, "p", tmp_path / "out", dry_run=True)
    assert [action.action for action in report.planned] == ["download"]
    assert not (tmp_path / "out").exists()


def test_max_delete_refuses_every_deletion_beyond_it(mocked, tmp_path):
    source = make_tree(tmp_path / "src", {"keep": b"k"})
    for n in range(5):
        mocked.upload(BUCKET, f"p/old{n}", b"x")
    report = mocked.upload_tree(BUCKET, "p", source, sync=True, delete=True, max_delete=4)
    assert report.deletes_refused == 5 and report.deleted == 0 and not report.ok
    assert report.transferred == 1
    assert len(list(mocked.list(BUCKET, "p/old"))) == 5
    report = mocked.upload_tree(BUCKET, "p", source, sync=True, delete=True, max_delete=5)
    assert report.deleted == 5 and report.ok


def test_copy_tree_copies_server_side_and_syncs(mocked, tmp_path):
    mocked.upload_tree(BUCKET, "src", make_tree(tmp_path / "src"))
    report = mocked.copy_tree(BUCKET, "src", BUCKET, "dst")
    assert report.transferred == len(FILES)
    assert sorted(mocked.list(BUCKET, "dst/")) == sorted(f"dst/{relative}" for relative in FILES)
    report = mocked.copy_tree(BUCKET, "src", BUCKET, "dst", sync=True)
    assert (report.transferred, report.skipped) == (0, len(FILES))
    mocked.upload(BUCKET, "dst/extra", b"x")
    assert mocked.copy_tree(BUCKET, "src", BUCKET, "dst", sync=True, delete=True).deleted == 1
    with pytest.raises(ValueError, match="inside the other"):
        mocked.copy_tree(BUCKET, "src", BUCKET, "src/sub")


def test_progress_sees_every_step(mocked, tmp_path):
    seen = []
    report = mocked.upload_tree(BUCKET, "p", make_tree(tmp_path / "src"), progress=seen.append)
    events = [snapshot.event for snapshot in seen if snapshot.event is not None]
    assert sorted(event.source for event in events) == sorted(str(tmp_path / "src" / r) for r in FILES)
    last = seen[-1]
    assert last.planning_done and last.objects_done == last.objects_total == report.transferred
    assert last.bytes_done == last.bytes_total == report.transferred_bytes


def test_failures_are_reported_per_file_with_a_code(wire, tmp_path):
    source = make_tree(tmp_path / "src", {"a": b"1", "b": b"2"})
    report = wire.upload_tree("no-such-bucket-here", "p", source)
    assert report.transferred == 0 and len(report.failed) == 2
    assert {failure.code for failure in report.failed} == {"NoSuchBucket"}
    assert sorted(failure.what for failure in report.failed) == [
        "s3://no-such-bucket-here/p/a", "s3://no-such-bucket-here/p/b"]
    with pytest.raises(s3po.NotFound):
        wire.download_tree("no-such-bucket-here", "p", tmp_path / "out")


def test_a_folder_the_walk_cannot_read_keeps_its_objects_through_a_sync_with_delete(mocked, tmp_path, monkeypatch):
    source = make_tree(tmp_path / "src", {"private/p.txt": b"p", "z.txt": b"z"})
    mocked.upload_tree(BUCKET, "p", source)
    mocked.upload(BUCKET, "p/stale", b"gone from the folder")
    real_scandir = os.scandir

    def scandir(path="."):
        if str(path).endswith("private"):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = mocked.upload_tree(BUCKET, "p", source, sync=True, delete=True)
    assert [(failure.what, failure.code) for failure in report.failed] == [(str(source / "private"), "Unreadable")]
    assert report.deleted == 1  # p/stale; what the unreadable folder holds is not known, so kept
    assert sorted(mocked.list(BUCKET)) == ["p/private/p.txt", "p/z.txt"]
    # Excluded, the folder is not reported, and its objects stay: even where the pattern
    # leaves the folder out but not what it holds ("*/" matches "private/" alone).
    for exclude in (["private/*"], ["private/"], ["*/"]):
        report = mocked.upload_tree(BUCKET, "p", source, sync=True, delete=True, exclude=exclude)
        assert report.ok and report.deleted == 0, exclude
        assert sorted(mocked.list(BUCKET)) == ["p/private/p.txt", "p/z.txt"]


class _Hidden:
    """A DirEntry whose stat (and, for ``kind_too``, whose kind) cannot be looked at, as
    in a folder with read but no search permission."""

    def __init__(self, entry, kind_too):
        self._entry, self._kind_too = entry, kind_too
        self.name, self.path = entry.name, entry.path

    def _refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", self.path)

    def stat(self, *args, **kwargs):
        return self._refuse()

    def is_dir(self, *args, **kwargs):
        return self._refuse() if self._kind_too else self._entry.is_dir(*args, **kwargs)

    def is_symlink(self):
        return self._entry.is_symlink()


def test_entries_the_walk_cannot_look_at_are_failures_and_keep_their_objects(mocked, tmp_path, monkeypatch):
    source = make_tree(tmp_path / "src", {"a.txt": b"a", "hidden.txt": b"h", "odd/inside.txt": b"i", "odd-x.txt": b"x",
                                          "z.txt": b"z"})
    elsewhere = make_tree(tmp_path / "elsewhere", {"kept": b"k"})
    (source / "odd.d").symlink_to(elsewhere, target_is_directory=True)  # a fence between "odd" and "odd/"
    mocked.upload_tree(BUCKET, "p", source)
    for stale in ("p/stale", "p/odd-y"):
        mocked.upload(BUCKET, stale, b"gone from the folder")
    mocked.upload(BUCKET, "p/odd.d/kept", b"k")
    real_scandir = os.scandir

    class Listing:
        def __init__(self, path):
            self._listing = real_scandir(path)

        def __enter__(self):
            return [_Hidden(entry, entry.name == "odd") if entry.name in ("hidden.txt", "odd") else entry
                    for entry in self._listing.__enter__()]

        def __exit__(self, *exc):
            return self._listing.__exit__(*exc)

    monkeypatch.setattr(os, "scandir", Listing)
    report = mocked.upload_tree(BUCKET, "p", source, sync=True, delete=True)
    assert sorted((failure.what, failure.code) for failure in report.failed) == [
        (str(source / "hidden.txt"), "Unreadable"), (str(source / "odd"), "Unreadable")]
    # The stale keys go; the file, the entry of unknown kind and the symlinked folder keep theirs.
    assert report.deleted == 2
    assert sorted(mocked.list(BUCKET)) == ["p/a.txt", "p/hidden.txt", "p/odd-x.txt", "p/odd.d/kept",
                                           "p/odd/inside.txt", "p/z.txt"]


def test_a_symlink_to_a_folder_is_a_notice_and_its_objects_are_not_deleted(mocked, tmp_path):
    elsewhere = make_tree(tmp_path / "elsewhere", {"keep.txt": b"keep"})
    source = make_tree(tmp_path / "src", {"a.txt": b"a", "linked.txt": b"l"})
    (source / "linked").symlink_to(elsewhere, target_is_directory=True)
    mocked.upload(BUCKET, "p/linked/keep.txt", b"uploaded by a tool that follows links")
    report = mocked.upload_tree(BUCKET, "p", source, sync=True, delete=True)
    assert report.ok and not report.failed
    assert [(notice.what, notice.code) for notice in report.not_followed] == [(str(source / "linked"), "Symlink")]
    assert (report.transferred, report.deleted) == (2, 0)
    assert sorted(mocked.list(BUCKET)) == ["p/a.txt", "p/linked.txt", "p/linked/keep.txt"]


def test_names_that_are_not_utf8_are_reported_and_the_rest_of_the_tree_goes_up(mocked, tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    raw = os.fsencode(root)
    for name in (b"\xc0.txt", "\u00e9.txt".encode(), b"z.txt", b"d\xe9.txt", b"d\xe9/inside", b"d/ok"):
        path = os.path.join(raw, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as file:
            file.write(name)
    walked = [os.fsencode(entry.relative) for entry in walk(str(root))]
    assert walked == sorted(walked) == [b"d/ok", b"d\xe9.txt", b"d\xe9/", b"z.txt", b"\xc0.txt", "\u00e9.txt".encode()]
    for sync in (False, True):
        report = mocked.upload_tree(BUCKET, "p", root, sync=sync)
        assert sorted(os.fsencode(failure.what) for failure in report.failed) == sorted(
            os.path.join(raw, name) for name in (b"\xc0.txt", b"d\xe9.txt", b"d\xe9"))
        assert {failure.code for failure in report.failed} == {"NotUTF8"}
        assert sorted(mocked.list(BUCKET)) == ["p/d/ok", "p/z.txt", "p/\u00e9.txt"]


def test_deletions_s3_made_are_counted_when_it_refuses_others_in_the_same_request(mocked, tmp_path, monkeypatch):
    real = deleting.delete_keys

    def refusing_the_first(ctx, bucket, keys, what=None):
        keys = list(keys)
        real(ctx, bucket, keys[1:], what)
        raise s3po.DeleteException("refused", bucket=bucket, code="AccessDenied", operation="delete",
                                   failed=[(keys[0], "AccessDenied", "Access Denied")])

    monkeypatch.setattr(deleting, "delete_keys", refusing_the_first)
    for n in range(5):
        mocked.upload(BUCKET, f"p/old{n}", b"x")
    seen = []
    report = mocked.upload_tree(BUCKET, "p", make_tree(tmp_path / "src", {"new": b"n"}), sync=True, delete=True,
                                progress=seen.append)
    assert report.deleted == 4
    assert [(failure.what, failure.code) for failure in report.failed] == [(f"s3://{BUCKET}/p/old0", "AccessDenied")]
    assert sorted(mocked.list(BUCKET)) == ["p/new", "p/old0"]
    deleted = [s.event.destination for s in seen if s.event and s.event.action == "delete" and not s.event.error]
    assert sorted(deleted) == [f"s3://{BUCKET}/p/old{n}" for n in range(1, 5)]
    last = seen[-1]
    assert last.planning_done and last.objects_done == last.objects_total == 6 and last.deleted == 4


def test_sync_of_compressed_objects_moves_nothing_the_second_time(mocked, tmp_path):
    files = {"a.txt": b"hello " * 100, "b/c.txt": b"world " * 100}
    source = make_tree(tmp_path / "src", files)
    assert mocked.upload_tree(BUCKET, "z", source, compress="gzip").transferred == 2
    again = mocked.upload_tree(BUCKET, "z", source, compress="gzip", sync=True)
    assert (again.transferred, again.skipped) == (0, 2)
    later = time.time() + 10
    os.utime(source / "a.txt", (later, later))  # changed since: newer than its object
    assert mocked.upload_tree(BUCKET, "z", source, compress="gzip", sync=True).transferred == 1
    with pytest.raises(ValueError, match="size-mtime"):
        mocked.upload_tree(BUCKET, "z", source, compress="gzip", sync=True, compare="size")
    assert mocked.download_tree(BUCKET, "z", tmp_path / "out").transferred == 2  # decompressed
    assert read_tree(tmp_path / "out") == files
    again = mocked.download_tree(BUCKET, "z", tmp_path / "out", sync=True)
    assert (again.transferred, again.skipped) == (0, 2)
    (tmp_path / "out" / "a.txt").write_bytes(b"edited here")
    later = time.time() + 10
    os.utime(tmp_path / "out" / "a.txt", (later, later))  # edited since: downloaded again
    again = mocked.download_tree(BUCKET, "z", tmp_path / "out", sync=True)
    assert (again.transferred, again.skipped) == (1, 1)
    assert read_tree(tmp_path / "out") == files


@pytest.mark.parametrize("length", [232, 233, 255])
def test_names_up_to_255_bytes_download_with_a_temporary_name_that_fits(mocked, tmp_path, length):
    name = "x" * (length - 2) + "\u00e9"  # ends with a 2-byte character: cut by whole characters
    assert len(name.encode()) == length
    mocked.upload(BUCKET, f"t/{name}", b"body")
    mocked.download_file(BUCKET, f"t/{name}", tmp_path / "one" / name)
    assert (tmp_path / "one" / name).read_bytes() == b"body"
    report = mocked.download_tree(BUCKET, "t", tmp_path / "tree")
    assert report.ok and report.transferred == 1
    assert read_tree(tmp_path / "tree") == {name: b"body"}


def test_a_made_folder_counts_in_the_totals_of_the_progress(mocked, tmp_path):
    for key in ("t/empty/", "t/a", "t/b/"):
        mocked.upload(BUCKET, key, b"" if key.endswith("/") else b"a")
    seen = []
    report = mocked.download_tree(BUCKET, "t", tmp_path / "out", progress=seen.append)
    assert report.ok and report.transferred == 3
    last = seen[-1]
    assert last.planning_done and last.objects_done == last.objects_total == 3


def test_a_separator_of_the_system_inside_a_name_is_unsafe(monkeypatch):
    assert unsafe_reason("a\\b") is None  # on this system a backslash is a plain character
    monkeypatch.setattr(treepaths, "OTHER_SEPARATORS", ("\\",))  # as on Windows
    assert "separator" in unsafe_reason("a\\b")
    assert "separator" in unsafe_reason("dir/..\\..\\x")


# -- never writing outside the target -----------------------------------------------------------

UNSAFE = {
    "absolute": "/etc/passwd-s3po",
    "dot-dot": "../escaped",
    "dot-dot inside": "a/../../escaped",
    "dot": "./a",
    "empty component": "a//b",
    "long component": "x" * 256,
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_keys_are_reported_and_never_joined_onto_the_folder(wire, tmp_path, case):
    relative = UNSAFE[case]
    wire.upload(BUCKET, relative if case == "absolute" else "t/" + relative, b"evil")
    wire.upload(BUCKET, "t/fine", b"fine")
    target = tmp_path / "deep" / "target"
    report = wire.download_tree(BUCKET, "" if case == "absolute" else "t", target)
    assert len(report.failed) == 1
    assert report.failed[0].code == "Unsafe"
    assert report.failed[0].what.endswith(relative)
    assert read_tree(tmp_path) == {"deep/target/fine": b"fine"} or case == "absolute"
    assert not (tmp_path / "deep" / "escaped").exists() and not (tmp_path / "escaped").exists()
    assert not os.path.exists("/etc/passwd-s3po")


def test_a_nul_in_a_key_is_refused(mocked, tmp_path, monkeypatch):
    # No store lists a NUL (XML cannot carry one): the listing is faked for this one.
    assert unsafe_reason("a\x00b") == "NUL in the name"
    listing = [s3po.Key(BUCKET, "t/a\x00b", size=1, etag="x")]
    monkeypatch.setattr(mocked, "objects", lambda bucket, prefix: iter(listing))
    report = mocked.download_tree(BUCKET, "t", tmp_path / "out")
    assert [failure.code for failure in report.failed] == ["Unsafe"]
    assert not (tmp_path / "out").exists()


def test_a_symlink_inside_the_target_pointing_outside_is_not_written_through(wire, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "link").symlink_to(outside, target_is_directory=True)
    (target / "inner").mkdir()
    (target / "fine-link").symlink_to(target / "inner", target_is_directory=True)
    wire.upload(BUCKET, "t/link/evil", b"evil")
    wire.upload(BUCKET, "t/fine-link/ok", b"ok")
    report = wire.download_tree(BUCKET, "t", target)
    assert [failure.code for failure in report.failed] == ["Unsafe"]
    assert "symlink" in report.failed[0].message
    assert os.listdir(outside) == []
    assert (target / "inner" / "ok").read_bytes() == b"ok"


def test_folder_markers_make_folders_and_a_file_and_folder_key_is_a_conflict(wire, tmp_path):
    for key, body in (("t/empty/", b""), ("t/a", b"file a"), ("t/a/b", b"under a"), ("t/a/", b""),
                      ("t/c/d", b"d")):
        wire.upload(BUCKET, key, body)
    target = tmp_path / "out"
    (target / "c").mkdir(parents=True)
    (target / "c" / "keep").write_bytes(b"keep")
    wire.upload(BUCKET, "t/c", b"a file where a folder is")
    report = wire.download_tree(BUCKET, "t", target)
    assert (target / "empty").is_dir() and os.listdir(target / "empty") == []
    assert (target / "a").read_bytes() == b"file a"
    codes = sorted((failure.what.rsplit("/", 1)[1] if failure.code == "LocalError" else
                    failure.what.rsplit("/t/", 1)[1], failure.code) for failure in report.failed)
    # "c" is a key and "c/d" too: "c/d" is the conflict; and the key "c" finds a local folder.
    assert codes == [("a/", "Conflict"), ("a/b", "Conflict"), ("c", "LocalError"), ("c/d", "Conflict")]
    assert (target / "c" / "keep").read_bytes() == b"keep"  # the folder was not overwritten by a file
    assert not (target / "c" / "d").exists()
    assert not any(".s3po-part" in name for name in read_tree(target))


def test_a_file_where_a_folder_is_needed_fails_and_leaves_nothing_partial(wire, tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "blocked").write_bytes(b"a file")
    wire.upload(BUCKET, "t/blocked/inside", b"x")
    wire.upload(BUCKET, "t/other", b"y" * 100_000)
    report = wire.download_tree(BUCKET, "t", target)
    assert len(report.failed) == 1 and report.failed[0].code == "LocalError"
    assert read_tree(target) == {"blocked": b"a file", "other": b"y" * 100_000}


def test_the_planner_streams_and_refuses_a_stream_out_of_order():
    consumed = []

    def destination():
        for name in ("a", "b", "c", "d"):
            consumed.append(name)
            yield Item(name, name, 1, 0.0)

    steps = plan(iter([Item("a", "a", 1, 0.0)]), destination(), sync=True, delete=False,
                 same=lambda s, d: True, wanted=lambda r: True)
    assert next(steps).action == "skip"
    assert consumed in (["a"], ["a", "b"])  # at most one look ahead, not the whole listing
    unordered = iter([Item("b", "b", 1, 0.0), Item("a", "a", 1, 0.0)])
    with pytest.raises(TreeOrderError, match="byte order"):
        list(plan(unordered, iter(()), sync=True, delete=True, same=lambda s, d: True, wanted=lambda r: True))


# -- interrupted trees ----------------------------------------------------------------------------

INTERRUPTED = """
import os, sys
import s3po
MiB = 1024 * 1024
conn = s3po.Connection(**{endpoint!r}, region_name="us-east-1", aws_access_key_id="a",
                       aws_secret_access_key="b", multipart_threshold=5 * MiB, part_size=5 * MiB, workers=1)
print("ready", flush=True)
if {direction!r} == "up":
    conn.upload_tree("interrupted", "tree", {folder!r}, jobs=4)
else:
    conn.download_tree("interrupted", "tree", {target!r}, jobs=4)
print("finished", flush=True)
"""


@pytest.mark.parametrize("scheme", ["http"])
@pytest.mark.parametrize("direction", ["up", "down"])
def test_ctrl_c_during_a_tree_leaves_no_multipart_upload_and_no_partial_file(proxy, tmp_path, direction):
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b",
                          **endpoint_options(proxy.url))
    client.create_bucket(Bucket="interrupted")
    folder = tmp_path / "src"
    folder.mkdir()
    for n in range(3):
        body = os.urandom(16 * MiB)
        (folder / f"f{n}").write_bytes(body)
        if direction == "down":
            client.put_object(Bucket="interrupted", Key=f"tree/f{n}", Body=body)
    proxy.clear()
    proxy.latency_s = 1.0
    program = textwrap.dedent(INTERRUPTED.format(endpoint=endpoint_options(proxy.url), direction=direction,
                                                 folder=str(folder), target=str(tmp_path / "out")))
    process = subprocess.Popen([sys.executable, "-c", program], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, preexec_fn=interruptible)
    try:
        assert process.stdout.readline().strip() == "ready"
        method = "PUT" if direction == "up" else "GET"
        deadline = time.monotonic() + 60
        while proxy.count(method, path_contains="/interrupted/tree/") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0 and "finished" not in out
    assert "KeyboardInterrupt" in err
    assert client.list_multipart_uploads(Bucket="interrupted").get("Uploads", []) == []
    if direction == "up":
        assert client.list_objects_v2(Bucket="interrupted").get("KeyCount") == 0
    else:
        assert not (tmp_path / "out").exists() or read_tree(tmp_path / "out") == {}


def test_a_progress_callback_that_raises_stops_the_tree_and_fails_no_transfer(wire, tmp_path, capfd, caplog):
    source = make_tree(tmp_path / "src", {f"f{n:02d}": b"x" * 100 for n in range(40)})
    reported = []

    def progress(snapshot):
        if snapshot.event is not None and snapshot.event.action == "upload":
            reported.append(snapshot.event)
            raise BrokenPipeError(32, "the reader went away")

    caplog.set_level(logging.INFO, logger="s3po")
    with pytest.raises(BrokenPipeError):
        wire.upload_tree(BUCKET, "p", source, progress=progress, jobs=4)
    assert len(reported) == 1  # not called again once it raised
    stored = wire.list(BUCKET, "p/")
    assert 1 <= len(list(stored)) < 40
    # The transfer it reported succeeded: nothing says it, or any other, failed.
    assert not [r for r in caplog.records if "failed" in r.getMessage()], caplog.text
    assert "never looked at" not in capfd.readouterr().err
