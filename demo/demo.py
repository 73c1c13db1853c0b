"""``make demo``: s3po's main job against an embedded S3 server, no AWS account needed.

Starts moto's standalone S3 server on a free port of 127.0.0.1, creates a bucket,
uploads a string, a file and a gzip-compressed object, lists them, downloads and
verifies each one; then does a bulk job (hundreds of objects up and down in a batch)
and stops the server. This is an application, so it prints.
"""

from __future__ import annotations

import os
import tempfile
import time

import s3po
from s3po.testing.server import MotoServer

BUCKET = "s3po-demo"


def run(endpoint_url: str) -> None:
    conn = s3po.Connection(
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="demo",
        aws_secret_access_key="demo-secret",
    )
    conn.create_bucket(BUCKET)
    print(f"created bucket {BUCKET} on {endpoint_url}")

    text = "Hello from s3po!\n" * 3
    stored = conn.upload(BUCKET, "hello.txt", text)
    print(f"uploaded a string     -> {stored.url} ({stored.size} bytes, etag {stored.etag})")

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "numbers.csv")
        with open(path, "w") as out:
            out.writelines(f"{n},{n * n}\n" for n in range(10_000))
        stored = conn.upload_file(BUCKET, "data/numbers.csv", path)
        print(f"uploaded a file       -> {stored.url} ({stored.size} bytes)")

        log_lines = "".join(f"2026-01-01 request {n} ok\n" for n in range(20_000)).encode()
        stored = conn.upload(BUCKET, "logs/app.log", log_lines, compress="gzip")
        print(f"uploaded gzip         -> {stored.url} ({len(log_lines)} bytes stored as {stored.size})")

        print("listing:")
        for record in conn.objects(BUCKET):
            print(f"  {record.key:<20} {record.size:>8} bytes  {record.last_modified:%Y-%m-%d %H:%M:%S %Z}")
        print(f"top level with '/':   {list(conn.list(BUCKET, delimiter='/'))}")

        assert conn.download(BUCKET, "hello.txt") == text.encode()
        copy = os.path.join(folder, "copy", "numbers.csv")
        conn.download_file(BUCKET, "data/numbers.csv", copy)
        with open(path, "rb") as a, open(copy, "rb") as b:
            assert a.read() == b.read()
        assert conn.download(BUCKET, "logs/app.log") == log_lines
        assert conn.head(BUCKET, "logs/app.log").content_encoding == "gzip"
        with conn.open(BUCKET, "logs/app.log") as stream:
            first = stream.readline()
        print(f"downloaded and verified all three; first streamed line: {first.decode().strip()!r}")

    bulk_job(conn)
    removed = conn.delete_prefix(BUCKET, "", whole_bucket=True)
    print(f"deleted {removed} objects; done")


def bulk_job(conn: s3po.Connection, count: int = 500) -> None:
    """Many small objects up and down through conn.batch: s3po's main job."""
    payloads = {f"bulk/{n:04d}.json": f'{{"n": {n}}}'.encode() for n in range(count)}
    started = time.monotonic()
    with conn.batch(50, raise_errors=True) as batch:
        for key, body in payloads.items():
            batch.upload(BUCKET, key, body)
    uploaded = time.monotonic() - started
    started = time.monotonic()
    with conn.batch(50, raise_errors=True) as batch:
        handles = {key: batch.download(BUCKET, key) for key in payloads}
    downloaded = time.monotonic() - started
    assert all(handle.get() == payloads[key] for key, handle in handles.items())
    print(f"bulk: {count} objects uploaded in {uploaded:.2f} s and downloaded and verified "
          f"in {downloaded:.2f} s with conn.batch(50)")


def main() -> None:
    with MotoServer() as server:
        run(server.url)


if __name__ == "__main__":
    main()
