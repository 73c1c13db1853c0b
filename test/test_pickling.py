"""A Connection travels to other processes as its construction arguments.

Pickling carries the arguments, never the client, its pool, threads or locks: the
receiver builds a client of its own on first use. Credentials given as arguments
travel as given; without them each process resolves boto3's chain itself.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import multiprocessing
import pickle

import boto3
import pytest
from botocore.config import Config
from s3po_fixtures import BUCKET, FAKE_SECRET, FAKE_TOKEN, make_connection

import s3po


def _credentials(conn: s3po.Connection):
    return conn.client._request_signer._credentials.get_frozen_credentials()


def test_a_plain_connection_round_trips_with_its_settings():
    conn = s3po.Connection(region_name="eu-west-1", retries=5, backoff_base_s=0.5, workers=3,
                           max_connections=7, part_size=16 * 1024 * 1024, verify_etag=False,
                           multipart_threshold=32 * 1024 * 1024, checksum="crc32", request_path="botocore")
    conn.client  # built here; the copy must build its own
    copy = pickle.loads(pickle.dumps(conn))
    assert copy is not conn and copy._client is None
    assert copy.retry_policy == conn.retry_policy
    for name in ("workers", "max_connections", "part_size", "verify_etag", "multipart_threshold", "checksum",
                 "request_path"):
        assert getattr(copy, name) == getattr(conn, name), name
    assert copy.client is not conn.client
    assert copy.client.meta.region_name == "eu-west-1"


def test_every_setting_of_a_connection_travels():
    """A setting added to Connection later must not be dropped silently by pickling."""
    carried_otherwise = {"session", "retries", "backoff_base_s", "backoff_cap_s", "backoff_base", "backoff_cap",
                         "client_kwargs"}  # a Session never travels; the backoffs travel as retry_policy
    settings = set(inspect.signature(s3po.Connection.__init__).parameters) - {"self"} - carried_otherwise
    assert settings <= set(s3po.Connection()._arguments)


def test_explicit_credentials_travel_as_given():
    conn = make_connection("http://127.0.0.1:9")
    copy = pickle.loads(pickle.dumps(conn))
    given = _credentials(copy)
    assert (given.access_key, given.secret_key, given.token) == ("AKIDEXAMPLE", FAKE_SECRET, FAKE_TOKEN)


def test_without_credentials_each_process_resolves_its_own_chain(monkeypatch):
    conn = s3po.Connection(region_name="us-east-1")
    data = pickle.dumps(conn)
    assert b"testing" not in data  # the sender's environment credentials stay behind
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "RECEIVER-KEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "RECEIVER-SECRET")
    assert _credentials(pickle.loads(data)).access_key == "RECEIVER-KEY"


def test_a_custom_endpoint_and_config_travel_and_work(server_url):
    conn = make_connection(server_url, config=Config(connect_timeout=7, s3={"addressing_style": "path"}))
    conn.create_bucket(BUCKET)
    copy = pickle.loads(pickle.dumps(conn))
    assert copy.client.meta.endpoint_url == server_url
    assert copy.client.meta.config.connect_timeout == 7
    copy.upload(BUCKET, "k", b"travelled")
    assert conn.download(BUCKET, "k") == b"travelled"


def test_a_connection_made_with_a_session_refuses_clearly():
    conn = s3po.Connection(boto3.session.Session(region_name="us-east-1"))
    with pytest.raises(TypeError, match="boto3 Session cannot be pickled.*aws_access_key_id"):
        pickle.dumps(conn)


def test_a_closed_connection_travels_as_a_new_one(server_url):
    conn = make_connection(server_url)
    conn.create_bucket(BUCKET)
    conn.close()
    copy = pickle.loads(pickle.dumps(conn))
    assert list(copy.list(BUCKET)) == []


def _store(conn: s3po.Connection, key: str) -> str:
    """Runs in a child process: the Connection arrived pickled."""
    return conn.upload(BUCKET, key, key.encode()).etag or ""


def test_process_pool_executor_workers_use_the_connection(server_url):
    conn = make_connection(server_url)
    conn.create_bucket(BUCKET)
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing inherited
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=spawn) as pool:
        etags = list(pool.map(_store, [conn] * 6, [f"ppe/{n}" for n in range(6)]))
    assert len(etags) == 6 and all(etags)
    assert sorted(conn.list(BUCKET, "ppe/")) == [f"ppe/{n}" for n in range(6)]


def test_multiprocessing_pool_workers_use_the_connection(server_url):
    conn = make_connection(server_url)
    conn.create_bucket(BUCKET)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.starmap(_store, [(conn, f"mp/{n}") for n in range(4)])
    assert conn.download(BUCKET, "mp/3") == b"mp/3"
