"""How the boto3 client is configured: retries, checksums, pool size, secrets kept out."""

import hashlib
import logging
import os

import pytest
from botocore.config import Config
from s3po_fixtures import BUCKET, make_connection

import s3po
from s3po._client import client_config

SECRET = "wJalrXUtnFEMI-very-secret"
TOKEN = "FQoGZXIvYXdzE-session-token"


def test_botocore_sends_each_request_once():
    config = client_config(None, 64)
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}


def test_user_retries_setting_cannot_multiply_attempts():
    config = client_config(Config(retries={"max_attempts": 10, "mode": "legacy"}), 8)
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}


def test_checksums_default_to_when_required():
    config = client_config(None, 8)
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"


def test_the_users_checksum_choice_wins():
    config = client_config(Config(request_checksum_calculation="when_supported"), 8)
    assert config.request_checksum_calculation == "when_supported"
    assert config.response_checksum_validation == "when_required"


def test_environment_checksum_choice_wins(monkeypatch):
    monkeypatch.setenv("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_supported")
    config = client_config(None, 8)
    assert config.request_checksum_calculation == "when_required"
    assert "response_checksum_validation" not in config._user_provided_options


def test_pool_covers_max_connections_and_keeps_a_larger_user_pool():
    assert client_config(None, 100).max_pool_connections == 100
    assert client_config(Config(max_pool_connections=200), 100).max_pool_connections == 200
    assert client_config(Config(connect_timeout=3), 10).connect_timeout == 3


def test_connection_passes_its_settings_to_the_client():
    conn = s3po.Connection(region_name="eu-west-1", max_connections=80,
                           endpoint_url="http://127.0.0.1:9")
    assert conn.conn.meta.region_name == "eu-west-1"
    assert conn.conn.meta.endpoint_url == "http://127.0.0.1:9"
    assert conn.conn.meta.config.max_pool_connections == 80


@pytest.mark.parametrize("kwargs, error", [
    ({"retries": -1}, ValueError),
    ({"retries": "3"}, ValueError),
    ({"backoff_base": -1}, ValueError),
    ({"backoff_cap": -1}, ValueError),
    ({"multipart_threshold": 1024}, ValueError),
    ({"part_size": 1024}, ValueError),
    ({"part_size": 6 * 1024 ** 3}, ValueError),
    ({"workers": 0}, ValueError),
    ({"max_connections": 0}, ValueError),
    ({"verify_etag": "yes"}, TypeError),
    ({"config": {"retries": 1}}, TypeError),
    ({"endpoint": "http://x"}, TypeError),
])
def test_bad_connection_settings_are_refused(kwargs, error):
    with pytest.raises(error):
        s3po.Connection(region_name="us-east-1", **kwargs)


def test_secrets_never_appear_in_reprs_or_messages(caplog):
    conn = s3po.Connection(region_name="us-east-1", aws_access_key_id="AKID",
                           aws_secret_access_key=SECRET, aws_session_token=TOKEN,
                           endpoint_url="http://127.0.0.1:9", retries=1, backoff_base=0)
    texts = [repr(conn), str(conn)]
    with caplog.at_level(logging.DEBUG, logger="s3po"):
        with pytest.raises(s3po.DownloadException) as caught:
            conn.download("some-bucket", "key")  # nothing listens on port 9
    texts += [str(caught.value), repr(caught.value), caplog.text]
    for text in texts:
        assert SECRET not in text and TOKEN not in text
    assert "s3://some-bucket/key" in str(caught.value)


def test_upload_bodies_are_signed_by_their_content_md5_only(wire_parts_conn, proxy):
    wire_parts_conn.upload(BUCKET, "small", b"x" * 1000)
    wire_parts_conn.upload(BUCKET, "big", os.urandom(6 * 1024 * 1024))
    puts = [r for r in proxy.requests if r.method == "PUT"]
    assert len(puts) == 3
    assert all(r.headers.get("X-Amz-Content-SHA256") == "UNSIGNED-PAYLOAD" for r in puts)
    assert all(r.headers.get("Content-MD5") for r in puts)
    # Other requests keep botocore's signing, a SHA-256, over HTTPS too: they carry no Content-MD5.
    others = [r for r in proxy.requests if r.method == "POST"]
    assert others and all(r.headers.get("X-Amz-Content-SHA256") != "UNSIGNED-PAYLOAD" for r in others)


def test_a_payload_signing_choice_in_the_callers_config_wins(proxy):
    connection = make_connection(proxy.url, config=Config(s3={"payload_signing_enabled": True}))
    connection.create_bucket(BUCKET)
    proxy.clear()
    connection.upload(BUCKET, "small", b"x" * 1000)
    (put,) = [r for r in proxy.requests if r.method == "PUT"]
    assert put.headers.get("X-Amz-Content-SHA256") == hashlib.sha256(b"x" * 1000).hexdigest()
