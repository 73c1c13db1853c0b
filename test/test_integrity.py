"""When an ETag can vouch for the bytes, and what a mismatch looks like. No network."""

import hashlib

import pytest

from s3po.errors import ChecksumMismatch
from s3po.integrity import BodyCheck, etag_is_md5, verify_upload_etag

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


def test_body_check_catches_short_long_and_changed_bodies():
    check = BodyCheck(MD5, 4, {})
    check.update(b"da")
    check.update(b"ta")
    check.verify()
    for body in (b"dat", b"datas", b"dbta"):
        check = BodyCheck(MD5, 4, {})
        check.update(body)
        with pytest.raises(ChecksumMismatch):
            check.verify()
    unverifiable = BodyCheck(f"{MD5}-2", None, {})
    unverifiable.update(b"anything")
    unverifiable.verify()
