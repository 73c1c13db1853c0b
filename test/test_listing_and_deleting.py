"""list, objects, delete, delete_many, delete_prefix and create_bucket, on both backends."""

import datetime

import pytest
from botocore.stub import Stubber

import s3po
from s3po_fixtures import BUCKET, make_connection


def fill(conn, keys):
    with conn.batch(16, raise_errors=True) as batch:
        for key in keys:
            batch.upload(BUCKET, key, b"x")


def test_listing_and_bulk_deletes_cross_the_1000_key_page_limit(conn):
    # One fill serves every check: a thousand-odd requests cost seconds on moto.
    keys = [f"many/{n:05d}" for n in range(1205)]
    fill(conn, keys + ["other/1", "other/2"])
    listed = conn.list(BUCKET, prefix="many/")
    assert iter(listed) is listed  # lazy: a generator, not a list
    assert list(listed) == keys
    assert [r.key for r in conn.objects(BUCKET, "many/")] == keys
    # 1,500 keys of which 295 never existed: S3 counts those as deleted too.
    assert conn.delete_many(BUCKET, keys + [f"missing/{n}" for n in range(295)]) == 1500
    assert list(conn.list(BUCKET)) == ["other/1", "other/2"]
    assert conn.delete_prefix(BUCKET, "other/") == 2
    assert list(conn.list(BUCKET)) == []
    assert conn.delete_many(BUCKET, []) == 0


def test_delimiter_merges_keys_and_prefixes_in_utf8_order(conn):
    fill(conn, ["a.txt", "b/1", "b/2", "c", "c/x", "é/1", "z", "~"])
    assert list(conn.list(BUCKET, delimiter="/")) == ["a.txt", "b/", "c", "c/", "z", "~", "é/"]
    assert list(conn.list(BUCKET, prefix="b/", delimiter="/")) == ["b/1", "b/2"]


def test_objects_records(conn):
    conn.upload(BUCKET, "r/one", "1")
    conn.upload(BUCKET, "r/two", "22")
    first, second = conn.objects(BUCKET, prefix="r/")
    assert (first.bucket, first.key, first.size, second.size) == (BUCKET, "r/one", 1, 2)
    assert first.etag == "c4ca4238a0b923820dcc509a6f75849b"
    assert isinstance(first.last_modified, datetime.datetime) and first.last_modified.tzinfo
    assert first.storage_class == "STANDARD"


def test_listing_a_missing_bucket_raises_not_found(conn):
    with pytest.raises(s3po.NotFound):
        list(conn.list("no-such-bucket-s3po"))


def test_delete_is_idempotent(conn):
    conn.upload(BUCKET, "gone", "x")
    conn.delete(BUCKET, "gone")
    conn.delete(BUCKET, "gone")
    assert not conn.exists(BUCKET, "gone")


def test_delete_many_wants_a_list_not_a_str(conn):
    with pytest.raises(TypeError):
        conn.delete_many(BUCKET, "abc")


def test_keys_s3_refuses_are_listed_in_the_exception():
    conn = make_connection("http://127.0.0.1:9")
    with Stubber(conn.conn) as stub:
        stub.add_response("delete_objects", {
            "Deleted": [{"Key": "a"}],
            "Errors": [{"Key": "b", "Code": "AccessDenied", "Message": "no"}],
        })
        with pytest.raises(s3po.DeleteException) as caught:
            conn.delete_many("bucket-x", ["a", "b"])
    assert caught.value.failed == [("b", "AccessDenied", "no")]
    assert caught.value.deleted == 1
    assert "b (AccessDenied)" in str(caught.value)


def test_create_bucket_twice_is_fine(conn):
    conn.create_bucket("another-bucket")
    conn.create_bucket("another-bucket")
    assert "another-bucket" in [b["Name"] for b in conn.conn.list_buckets()["Buckets"]]


def test_create_bucket_outside_us_east_1_sends_the_location_constraint():
    conn = make_connection(region_name="eu-west-1")
    with conn.mock():
        conn.create_bucket("eu-bucket")
        assert conn.conn.get_bucket_location(Bucket="eu-bucket")["LocationConstraint"] == "eu-west-1"


def test_a_page_that_says_more_follow_without_a_token_stops_the_listing_with_an_error():
    # Taking such a listing for complete would make a sync with delete remove every key past it.
    conn = make_connection(request_path="botocore")
    with Stubber(conn.conn) as stub:
        stub.add_response("list_objects_v2", {"IsTruncated": True, "KeyCount": 1,
                                              "Contents": [{"Key": "p/a", "Size": 1, "ETag": '"x"'}]})
        listed = conn.list("bucket-x", "p/")
        assert next(listed) == "p/a"
        with pytest.raises(s3po.DownloadException, match="no continuation token") as caught:
            next(listed)
    assert caught.value.code == "TruncatedListing"
