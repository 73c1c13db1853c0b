"""Stopping: Ctrl-C, and a batch block that raises, stop large transfers at once and clean up.

Each program runs in a fresh interpreter against the moto server behind the fault
proxy, whose latency makes every request of a large upload take a while: left alone,
the uploads would run for many seconds. After the interruption, nothing may remain
that the program did not finish: no object, no multipart upload, no temporary file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import boto3
import pytest

import s3po
from s3po_fixtures import BUCKET, MiB, endpoint_options, interruptible, make_connection

PRELUDES = {"threads": "", "patched": "from gevent import monkey; monkey.patch_all()"}

UPLOADS = """
{prelude}
import os, sys, tempfile
import s3po
MiB = 1024 * 1024
conn = s3po.Connection(**{endpoint!r}, region_name="us-east-1", aws_access_key_id="a",
                       aws_secret_access_key="b", multipart_threshold=5 * MiB, part_size=5 * MiB, workers=1)
conn.create_bucket("interrupted")
folder = {folder!r}
paths = []
for n in range(4):
    path = os.path.join(folder, f"f{{n}}")
    with open(path, "wb") as out:
        out.write(os.urandom(40 * MiB))
    paths.append(path)
print("ready", flush=True)
with conn.batch(4) as batch:
    for n, path in enumerate(paths):
        batch.upload_file("interrupted", f"big{{n}}", path)
print("finished", flush=True)
"""

DOWNLOADS = """
{prelude}
import os, sys
import s3po
MiB = 1024 * 1024
conn = s3po.Connection(**{endpoint!r}, region_name="us-east-1", aws_access_key_id="a",
                       aws_secret_access_key="b", part_size=5 * MiB, workers=1)
print("ready", flush=True)
with conn.batch(4) as batch:
    for n in range(4):
        batch.download_file("interrupted", f"big{{n}}", os.path.join({folder!r}, "out", f"big{{n}}"))
print("finished", flush=True)
"""


SINGLE_CALL = """
{prelude}
import s3po
conn = s3po.Connection(**{endpoint!r}, region_name="us-east-1", aws_access_key_id="a",
                       aws_secret_access_key="b", retries=3)
print("ready", flush=True)
conn.{call}
print("finished", flush=True)
"""


def _client(url):
    return boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b",
                        **endpoint_options(url))


def _interrupt(program, proxy, wait_for_requests):
    """Start ``program``, send SIGINT once the proxy has seen enough; (seconds to exit, stderr)."""
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(program)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    try:
        assert process.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 60
        while not wait_for_requests() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert wait_for_requests(), "the transfers never started"
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        _, stderr = process.communicate(timeout=60)
        return time.monotonic() - interrupted, process.returncode, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _assert_one_plain_keyboard_interrupt(stderr):
    assert stderr.count("Traceback") == 1, stderr
    assert stderr.rstrip().endswith("KeyboardInterrupt"), stderr
    frames = [line for line in stderr.splitlines() if line.strip().startswith("File ")]
    # gevent's own frames: in its package folder ("src/gevent/hub.py", ".../site-packages/gevent/..."),
    # not any path that merely contains the word (a checkout named after it).
    assert not any(re.search(r"[/\\]gevent[/\\]", frame) for frame in frames), stderr


@pytest.mark.parametrize("mode", sorted(PRELUDES))
def test_ctrl_c_stops_a_batch_of_large_uploads_at_once_and_leaves_nothing(proxy, tmp_path, mode):
    proxy.latency_s = 1.0  # each part takes a second: each upload would take eight
    program = UPLOADS.format(prelude=PRELUDES[mode], endpoint=endpoint_options(proxy.url), folder=str(tmp_path))
    seconds, returncode, stderr = _interrupt(
        program, proxy, lambda: proxy.count("PUT", path_contains="/interrupted/big") >= 4)
    assert returncode != 0
    _assert_one_plain_keyboard_interrupt(stderr)
    # The part in flight ends, then the abort goes out: two round trips, not the six
    # seconds the uploads still had to go.
    assert seconds < 4.5, f"{seconds:.1f} s to stop"
    client = _client(proxy.url)
    assert client.list_multipart_uploads(Bucket="interrupted").get("Uploads", []) == []
    assert client.list_objects_v2(Bucket="interrupted").get("KeyCount") == 0
    assert sorted(os.listdir(tmp_path)) == ["f0", "f1", "f2", "f3"]


@pytest.mark.parametrize("call", ["download('interrupted', 'small')", "upload('interrupted', 'new', b'x' * 1000)"])
@pytest.mark.parametrize("mode", sorted(PRELUDES))
def test_ctrl_c_of_a_single_call_waiting_on_the_network_is_raised_not_retried(proxy, mode, call):
    client = _client(proxy.url)
    client.create_bucket(Bucket="interrupted")
    client.put_object(Bucket="interrupted", Key="small", Body=b"small")
    proxy.clear()
    proxy.latency_s = 3.0  # the answer is held: the call waits on its socket
    program = SINGLE_CALL.format(prelude=PRELUDES[mode], endpoint=endpoint_options(proxy.url), call=call)
    method = "GET" if call.startswith("download") else "PUT"
    seconds, returncode, stderr = _interrupt(program, proxy, lambda: proxy.count(method) >= 1)
    assert returncode != 0
    # The program's own wait was interrupted: its traceback runs through the socket
    # wait (gevent's, once patched), and ends in the KeyboardInterrupt itself.
    assert stderr.count("Traceback") == 1 and stderr.rstrip().endswith("KeyboardInterrupt"), stderr
    assert seconds < 2.5, f"{seconds:.1f} s to stop"
    assert proxy.count(method) == 1 and "attempt 1 of" not in stderr  # raised at once, never retried


@pytest.mark.parametrize("scheme", ["http"])  # the uploads' test covers TLS
@pytest.mark.parametrize("mode", sorted(PRELUDES))
def test_ctrl_c_stops_a_batch_of_large_downloads_and_leaves_no_file(proxy, tmp_path, mode):
    client = _client(proxy.url)
    client.create_bucket(Bucket="interrupted")
    for n in range(4):
        client.put_object(Bucket="interrupted", Key=f"big{n}", Body=os.urandom(40 * MiB))
    proxy.clear()
    proxy.latency_s = 1.0
    program = DOWNLOADS.format(prelude=PRELUDES[mode], endpoint=endpoint_options(proxy.url), folder=str(tmp_path))
    seconds, returncode, stderr = _interrupt(program, proxy, lambda: proxy.count("GET") >= 8)
    assert returncode != 0
    _assert_one_plain_keyboard_interrupt(stderr)
    assert seconds < 4.5, f"{seconds:.1f} s to stop"
    assert not os.path.exists(tmp_path / "out")  # the folder it made is gone too


@pytest.mark.parametrize("scheme", ["http"])
def test_a_batch_block_that_raises_stops_large_uploads_in_flight(proxy, tmp_path):
    conn = make_connection(proxy.url, multipart_threshold=5 * MiB, part_size=5 * MiB, workers=1)
    conn.create_bucket(BUCKET)
    paths = []
    for n in range(3):
        path = tmp_path / f"f{n}"
        path.write_bytes(os.urandom(30 * MiB))
        paths.append(path)
    proxy.clear()
    proxy.latency_s = 1.0
    handles = []
    with pytest.raises(RuntimeError, match="the program's own error"):
        with conn.batch(3) as batch:
            handles = [batch.upload_file(BUCKET, f"big{n}", str(path)) for n, path in enumerate(paths)]
            while proxy.count("PUT", path_contains="/big") < 3:
                time.sleep(0.05)
            stopping = time.monotonic()
            raise RuntimeError("the program's own error")
    assert time.monotonic() - stopping < 4.5
    for handle in handles:
        assert not handle.successful()
        with pytest.raises(s3po.Cancelled):
            handle.get()
    client = _client(proxy.url)
    assert client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0
