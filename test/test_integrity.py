"""When an ETag can vouch for the bytes, and what a mismatch looks like. No network."""

import hashlib

import pytest

from s3po.errors import ChecksumMismatch
from s3po.integrity import BodyCheck, etag_is_md5, layout_from_etag, verify_upload_etag
from s3po.parts import multipart_etag

MD5 = hashlib.md5(b"data").hexdigest()


@pytest.mark.parametrize("etag, response, plain", [
    (MD5, {}, True),
    (MD5.upper(), {}, True),
    (MD5, {"ServerSideEncryption": "AES256"}, True),
    (f"{MD5}-3", {}, False),                                   # multipart
    (MD5, {"ServerSideEncryption": "aws:kms"}, False),
    (MD5, {"ServerSideEncryption": "aws:kms:dsse"}, False),
    (MD5, {"SSECustomerAlgorithm": "AES256"}, False),
    ("not-an-md5", {}, False),
    (None, {}, False),
])
def test_which_etags_are_plain_md5s(etag, response, plain):
    assert etag_is_md5(etag, response) is plain


def test_upload_etag_mismatch_raises_only_when_the_etag_is_an_md5():
    verify_upload_etag(MD5, MD5, {})
    with pytest.raises(ChecksumMismatch):
        verify_upload_etag(MD5, hashlib.md5(b"other").hexdigest(), {})
    verify_upload_etag(MD5, "0" * 32 + "-2", {})  # multipart: nothing to compare


def _check(etag, size, response=None, part_size=None, verify=True):
    layout = layout_from_etag(etag, response or {}, verify)
    if layout.kind == "parts":
        layout = layout.with_part_size(part_size, "unknown", "unknown")
    return BodyCheck(size, layout)


def test_body_check_catches_short_long_and_changed_bodies():
    check = _check(MD5, 4)
    check.update(b"da")
    check.update(b"ta")
    check.verify()
    for body in (b"dat", b"datas", b"dbta"):
        check = _check(MD5, 4)
        check.update(body)
        with pytest.raises(ChecksumMismatch):
            check.verify()
    # Nothing to compare the content with: only the size counts.
    for unverifiable in (_check(f"{MD5}-2", None), _check(MD5, 8, {"ServerSideEncryption": "aws:kms"}),
                         _check(MD5, 8, verify=False)):
        unverifiable.update(b"anything")
        unverifiable.verify()


@pytest.mark.parametrize("part_size, cut", [(3, 1), (3, 3), (3, 5), (4, 2), (5, 7)])
def test_body_check_recomputes_a_multipart_etag_however_the_body_arrives(part_size, cut):
    body = b"0123456789"
    parts = [body[i:i + part_size] for i in range(0, len(body), part_size)]
    etag = multipart_etag(hashlib.md5(part).digest() for part in parts)
    check = _check(etag, len(body), part_size=part_size)
    check.update(body[:cut])
    check.update(body[cut:])
    check.verify()
    damaged = _check(etag, len(body), part_size=part_size)
    damaged.update(body[:cut] + b"X" + body[cut + 1:])
    with pytest.raises(ChecksumMismatch):
        damaged.verify()


def test_a_single_part_etag_is_the_md5_of_the_md5():
    etag = multipart_etag([hashlib.md5(b"data").digest()])
    assert etag.endswith("-1")
    check = _check(etag, 4)
    check.update(b"data")
    check.verify()
    wrong = _check(etag, 4)
    wrong.update(b"dbta")
    with pytest.raises(ChecksumMismatch):
        wrong.verify()
