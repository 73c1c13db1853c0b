"""Errors and records with one meaning each, on every backend."""

from __future__ import annotations

import io
from datetime import timezone

import pytest
from s3po_fixtures import BUCKET

import s3po

MISSING = "no-such-bucket-s3po"

OPERATIONS = {
    "upload": (s3po.UploadException, lambda conn, tmp: conn.upload(MISSING, "k", b"x")),
    "upload_file": (s3po.UploadException, lambda conn, tmp: conn.upload_file(MISSING, "k", str(_file(tmp)))),
    "download": (s3po.DownloadException, lambda conn, tmp: conn.download(MISSING, "k")),
    "download into a file object": (s3po.DownloadException,
                                    lambda conn, tmp: conn.download(MISSING, "k", io.BytesIO())),
    "download_file": (s3po.DownloadException, lambda conn, tmp: conn.download_file(MISSING, "k", str(tmp / "o"))),
    "open": (s3po.DownloadException, lambda conn, tmp: conn.open(MISSING, "k")),
    "head": (s3po.DownloadException, lambda conn, tmp: conn.head(MISSING, "k")),
    "exists": (s3po.DownloadException, lambda conn, tmp: conn.exists(MISSING, "k")),
    "list": (s3po.DownloadException, lambda conn, tmp: list(conn.list(MISSING))),
    "objects": (s3po.DownloadException, lambda conn, tmp: list(conn.objects(MISSING))),
    "entries": (s3po.DownloadException, lambda conn, tmp: list(conn.entries(MISSING))),
    "delete": (s3po.DeleteException, lambda conn, tmp: conn.delete(MISSING, "k")),
    "delete_many": (s3po.DeleteException, lambda conn, tmp: conn.delete_many(MISSING, ["k"])),
    "delete_prefix": (s3po.DeleteException, lambda conn, tmp: conn.delete_prefix(MISSING, "p/")),
    "copy to": (s3po.UploadException, lambda conn, tmp: conn.copy(BUCKET, "src", MISSING, "k")),
    "copy from": (s3po.UploadException, lambda conn, tmp: conn.copy(MISSING, "src", BUCKET, "k")),
}


def _file(folder):
    path = folder / "local"
    path.write_bytes(b"local bytes")
    return path


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_missing_bucket_is_not_found_with_code_no_such_bucket_from_every_operation(conn, tmp_path, operation):
    conn.upload(BUCKET, "src", b"source")
    kind, call = OPERATIONS[operation]
    with pytest.raises(s3po.NotFound) as caught:
        call(conn, tmp_path)
    error = caught.value
    assert isinstance(error, kind)
    assert (error.bucket, error.code) == (MISSING, "NoSuchBucket")
    assert "no such bucket" in str(error) and f"s3://{MISSING}/" in str(error)


def test_exists_is_false_for_a_missing_key_and_raises_for_a_missing_bucket(conn):
    assert conn.exists(BUCKET, "nope") is False
    with pytest.raises(s3po.NotFound) as caught:
        conn.exists(MISSING, "nope")
    assert caught.value.code == "NoSuchBucket"


def _all_utc(record):
    return record.last_modified is None or record.last_modified.tzinfo == timezone.utc


def test_records_agree_across_calls(conn, backend):
    stored = conn.upload(BUCKET, "doc.json", b'{"a": 1}', headers={"x-amz-meta-owner": "alice"},
                         compress="gzip")
    assert stored.content_type == "application/json"
    assert stored.content_encoding == "gzip"
    assert stored.metadata == {"owner": "alice"}
    if backend != "inprocess":  # moto in-process answers without a Date header
        assert stored.last_modified is not None
    head = conn.head(BUCKET, "doc.json")
    assert (head.size, head.etag, head.content_type, head.content_encoding, dict(head.metadata)) == (
        stored.size, stored.etag, stored.content_type, stored.content_encoding, dict(stored.metadata))
    copied = conn.copy(BUCKET, "doc.json", BUCKET, "copy.json")
    assert copied.size == stored.size and copied.content_type == "application/json"
    assert copied.etag == stored.etag
    listed = {record.key: record for record in conn.objects(BUCKET)}
    assert listed["doc.json"].size == stored.size and listed["copy.json"].size == stored.size
    for record in (stored, head, copied, *listed.values()):
        assert _all_utc(record), record
        assert record.last_modified is None or record.last_modified.utcoffset().total_seconds() == 0


def test_a_folder_marker_and_a_common_prefix_of_the_same_name_are_told_apart(conn):
    conn.upload(BUCKET, "data/", b"")              # a folder-marker object
    conn.upload(BUCKET, "data/x.csv", b"1")         # something inside
    conn.upload(BUCKET, "readme", b"2")
    top = list(conn.entries(BUCKET))
    assert top == [s3po.Prefix(BUCKET, "data/"), top[1]] and isinstance(top[1], s3po.Key)
    assert top[1].key == "readme"
    inside = list(conn.entries(BUCKET, "data/"))
    assert [type(entry) for entry in inside] == [s3po.Key, s3po.Key]
    assert [entry.key for entry in inside] == ["data/", "data/x.csv"]
    # list() as documented: names, prefixes among them; objects(): only keys at that level.
    assert list(conn.list(BUCKET, delimiter="/")) == ["data/", "readme"]
    assert [record.key for record in conn.objects(BUCKET, delimiter="/")] == ["readme"]


def test_errors_travel_between_processes_whole():
    import pickle

    error = s3po.errors.UploadNotFound("upload s3://b/k failed: no such bucket", bucket="b", key="k",
                                       code="NoSuchBucket", operation="upload")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert (str(again), again.bucket, again.key, again.code, again.operation) == (
        str(error), "b", "k", "NoSuchBucket", "upload")
