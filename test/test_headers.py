"""HTTP header names to boto3 parameters, and Content-Type guessing."""

import datetime

import pytest

from s3po.headers import guess_content_type, to_put_params
from s3po_fixtures import BUCKET


def test_known_headers_map_case_insensitively():
    expires = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    params = to_put_params({
        "Content-Type": "text/csv",
        "content-encoding": "gzip",
        "CONTENT-DISPOSITION": "attachment",
        "Content-Language": "fr",
        "Cache-Control": "max-age=60",
        "Expires": expires,
        "x-amz-storage-class": "STANDARD_IA",
        "x-amz-acl": "private",
        "x-amz-server-side-encryption": "AES256",
        "x-amz-tagging": "a=b",
        "X-Amz-Meta-Owner": "me",
        "x-amz-meta-count": 3,
    })
    assert params == {
        "ContentType": "text/csv",
        "ContentEncoding": "gzip",
        "ContentDisposition": "attachment",
        "ContentLanguage": "fr",
        "CacheControl": "max-age=60",
        "Expires": expires,
        "StorageClass": "STANDARD_IA",
        "ACL": "private",
        "ServerSideEncryption": "AES256",
        "Tagging": "a=b",
        "Metadata": {"owner": "me", "count": "3"},
    }


def test_unknown_header_is_named_in_the_error():
    with pytest.raises(ValueError, match="'X-Frobnicate'"):
        to_put_params({"Content-Type": "a/b", "X-Frobnicate": "1"})


@pytest.mark.parametrize("headers", [[("Content-Type", "a")], "Content-Type: a"])
def test_headers_must_be_a_mapping(headers):
    with pytest.raises(TypeError):
        to_put_params(headers)


def test_header_values_must_be_text():
    with pytest.raises(TypeError, match="Content-Type"):
        to_put_params({"Content-Type": b"text/plain"})


@pytest.mark.parametrize("key, expected", [
    ("a/b/page.html", "text/html"),
    ("data.json", "application/json"),
    ("photo.JPG", "image/jpeg"),
    ("archive.tar.gz", "application/gzip"),
    ("log.gz", "application/gzip"),
    ("noextension", None),
])
def test_content_type_is_guessed_from_the_extension_only(key, expected):
    assert guess_content_type(key) == expected


@pytest.mark.parametrize("headers", [{"x-amz-meta-a": "v\r\nX-Injected: yes"}, {"Content-Type": "text/plain\n"},
                                     {"x-amz-meta-a": "nul\x00"}, {"x-amz-meta-a b": "v"}, {"x-amz-meta-a:b": "v"}])
def test_a_header_that_would_break_the_request_is_refused_before_any_request(wire_conn, proxy, headers):
    with pytest.raises(ValueError, match="header"):
        to_put_params(headers)
    proxy.clear()
    with pytest.raises(ValueError, match="header"):
        wire_conn.upload(BUCKET, "k", b"x", headers=headers)
    assert proxy.requests == []
    assert to_put_params({"x-amz-meta-a": "tab\tinside"}) == {"Metadata": {"a": "tab\tinside"}}
