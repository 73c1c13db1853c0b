"""Real concurrency in every import order a program might use, each in a fresh process.

s3po never monkey-patches. A program that patched gets greenlets on gevent's
sockets; one that did not gets native threads behind greenlet handles. Either way 100
uploads in batch(50) against a server answering after 50 ms must have many requests
on the wire at once and take a fraction of the 5 s they would take one at a time,
with no warning, no traceback and no hang. Each runs over HTTP and HTTPS: gevent
patches ssl as well as socket, and a program may have imported ssl before patching,
or made its Connection before patching (whose client must then not exist yet).
"""

import subprocess
import sys
import textwrap

import pytest
from s3po_fixtures import endpoint_options

PROGRAM = """
import time, warnings, logging
warnings.simplefilter("error")  # any warning (MonkeyPatchWarning included) fails the run
{opening}
from gevent import monkey
conn.create_bucket("order-test")
started = time.monotonic()
with conn.batch(50, raise_errors=True) as batch:
    for n in range(100):
        batch.upload("order-test", f"{{n}}", b"x" * 1024)
elapsed = time.monotonic() - started
# A failing call must not make gevent's hub print a traceback.
with conn.batch(5) as batch:
    batch.download("order-test", "missing")
assert len(batch.errors()) == 1
print("patched" if monkey.is_module_patched("socket") else "threads", round(elapsed, 3))
"""

def run_cleanly(program, allow_warnings=False):
    """Run ``program`` in a fresh interpreter; it must exit 0 with no traceback (nor warning)."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(program)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert allow_warnings or "Warning" not in result.stderr, result.stderr
    return result


# The steps a program's first lines may take, in the order each ORDERS entry gives.
STEPS = {
    "patch": "from gevent import monkey; monkey.patch_all()",
    "others": "import ssl, urllib3, requests, boto3, botocore",
    "s3po": "import s3po",
    "connect": "conn = s3po.Connection(**{options!r})",
}

# Each order: its steps, and the mode s3po must then run in.
ORDERS = {
    "patch-first": (("patch", "s3po", "connect"), "patched"),
    "s3po-alone": (("s3po", "connect"), "threads"),
    "others-first": (("others", "s3po", "connect"), "threads"),
    "s3po-then-patch": (("s3po", "patch", "connect"), "patched"),
    # A Connection made at module level before the program patches: its client (and
    # ssl with it) must not have been built yet.
    "connection-then-patch": (("s3po", "connect", "patch"), "patched"),
}
PATCHED_ORDERS = sorted(order for order, (_, mode) in ORDERS.items() if mode == "patched")


def opening(order, endpoint_url, **options):
    """A program's first lines: the steps of ``order``; ``conn`` reaches ``endpoint_url``."""
    options = dict(endpoint_options(endpoint_url), region_name="us-east-1", aws_access_key_id="a",
                   aws_secret_access_key="b", **options)
    steps, _ = ORDERS[order]
    return "\n".join(STEPS[step].format(options=options) for step in steps)


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_concurrency_is_real_in_every_import_order(proxy, order):
    _, mode = ORDERS[order]
    proxy.latency_s = 0.05
    program = PROGRAM.format(opening=opening(order, proxy.url))
    result = run_cleanly(program)
    reported_mode, elapsed = result.stdout.split()
    assert reported_mode == mode
    assert proxy.max_in_flight >= 25, proxy.max_in_flight  # requests really were on the wire together
    # One at a time: 100 x 50 ms = 5 s. moto's server spends several ms of CPU on each
    # request, so the bound is a third of that rather than anything tight.
    assert float(elapsed) < 100 * 0.05 / 3, result.stdout
    assert proxy.count("PUT", path_contains="/order-test/") == 100


EXIT_PROGRAM = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
{prelude}
import s3po
conn = s3po.Connection(**{endpoint!r}, region_name="us-east-1",
                       aws_access_key_id="a", aws_secret_access_key="b")
conn.create_bucket("exit-test")
for n in range(10):
    conn.upload("exit-test", f"k{{n}}", "data", background=True)
# no conn.wait(): the program just ends
"""


@pytest.mark.parametrize("prelude", ["", "from gevent import monkey; monkey.patch_all()"],
                         ids=["threads", "patched"])
def test_background_work_is_finished_at_exit_with_one_log_line(proxy, prelude):
    proxy.latency_s = 0.2
    program = EXIT_PROGRAM.format(prelude=prelude, endpoint=endpoint_options(proxy.url))
    # Logging goes to stderr here, so "Warning" may appear in it: only tracebacks fail.
    result = run_cleanly(program, allow_warnings=True)
    assert proxy.count("PUT", path_contains="/exit-test/k") == 10
    assert result.stderr.count("before exit") == 1, result.stderr


LARGE_PROGRAM = """
import hashlib, os, sys, tempfile, time, warnings
warnings.simplefilter("error")
{prelude}
import s3po
from gevent import monkey
MiB = 1024 * 1024
conn = s3po.Connection(**{endpoint!r}, region_name="us-east-1", aws_access_key_id="a",
                       aws_secret_access_key="b", multipart_threshold=5 * MiB, part_size=5 * MiB,
                       workers=4, max_connections=6)
conn.create_bucket("large-test")
blobs = [os.urandom(15 * MiB + n) for n in range(3)]
with conn.batch(3, raise_errors=True) as batch:
    for n, blob in enumerate(blobs):
        batch.upload("large-test", f"big{{n}}", blob)
uploaded = batch.progress
folder = tempfile.mkdtemp()
with conn.batch(3, raise_errors=True) as batch:
    for n in range(3):
        batch.download_file("large-test", f"big{{n}}", os.path.join(folder, f"big{{n}}"))
for n, blob in enumerate(blobs):
    with open(os.path.join(folder, f"big{{n}}"), "rb") as fobj:
        assert fobj.read() == blob
with conn.open("large-test", "big1") as stream:  # read ahead in ranges
    assert stream.read() == blobs[1]
print("patched" if monkey.is_module_patched("socket") else "threads", uploaded.bytes_done,
      uploaded.bytes_total, uploaded.objects_done, batch.progress.bytes_done)
"""


@pytest.mark.parametrize("prelude", ["", "from gevent import monkey; monkey.patch_all()"],
                         ids=["threads", "patched"])
def test_large_transfers_in_a_batch_stay_within_max_connections(proxy, prelude):
    # 3 calls x 4 workers would put 12 requests on the wire; max_connections=6 caps it,
    # and no call waits for a slot it holds itself (the batch call's own slot serves
    # its first worker), so nothing deadlocks even with every slot taken.
    proxy.latency_s = 0.1
    program = LARGE_PROGRAM.format(prelude=prelude, endpoint=endpoint_options(proxy.url))
    result = run_cleanly(program)
    mode, done, total, objects, downloaded = result.stdout.split()
    assert mode == ("patched" if prelude else "threads")
    size = 3 * 15 * 1024 * 1024 + 3
    assert (int(done), int(total), int(objects)) == (size, size, 3)
    assert int(downloaded) == size
    assert 4 <= proxy.max_in_flight <= 6
