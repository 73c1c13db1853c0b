"""The promises of s3po's two concurrency modes, each shown over the wire by a fresh program.

A program that patched with gevent runs s3po's calls as greenlets; one that did not
runs them on its Connection's own native threads, behind handles that are gevent
Greenlets all the same. Whatever the mode (and, for the backoff, whatever the import
order):

- a retry's backoff never freezes the hub, for a request, a part, a range or a resume;
- background calls may come from any greenlet or thread, and ``conn.wait()`` waits for
  all of them from any other and names every failure;
- handles keep the Greenlet contract, cancelled ones included;
- a failure the program never looked at is reported (when its batch is collected, or
  at exit), once; one it looked at never is; a dropped batch is collected;
- threads are reused across batches, ``close()`` finishes background work and gives
  every thread back, and a closed Connection refuses calls without hanging the program.

Each program runs in a fresh interpreter (the test process itself is never patched)
against the moto server behind the fault proxy, over HTTP: test_gevent_modes.py runs
every import order over HTTPS as well. Bounds are generous: each check tells apart
behaviours that differ by an order of magnitude, never by a few milliseconds.
"""

from __future__ import annotations

import random
import re
import textwrap

import pytest
from s3po_fixtures import BUCKET, SMALL_PARTS, MiB, endpoint_options, make_connection
from test_gevent_modes import PATCHED_ORDERS, opening, run_cleanly

pytestmark = pytest.mark.parametrize("scheme", ["http"])

MODES = {"threads": "", "patched": "from gevent import monkey; monkey.patch_all()"}
NO_BUCKET = "no-such-bucket-s3po"
WATCHDOG_S = 15  # each program takes a second or two; one still running after this hangs


def program_in(mode, proxy, body, **options):
    """A program that starts in ``mode`` (patching first, or never), with ``conn`` on ``proxy``."""
    options = dict(endpoint_options(proxy.url), region_name="us-east-1", aws_access_key_id="a",
                   aws_secret_access_key="b", **options)
    return textwrap.dedent("""
        import warnings
        warnings.simplefilter("error")  # a warning (MonkeyPatchWarning included) fails the run
        # ... but for the sockets of a Connection never closed, left to the interpreter's exit.
        warnings.simplefilter("ignore", ResourceWarning)
        {prelude}
        import faulthandler, gc, os, sys, tempfile, threading, time, weakref
        faulthandler.dump_traceback_later({watchdog_s}, exit=True)  # a hang shows where, and ends
        import gevent, s3po
        from gevent import monkey
        PATCHED = monkey.is_module_patched("socket")
        assert PATCHED == {patched!r}
        OPTIONS = {options!r}
        BUCKET, NO_BUCKET = {bucket!r}, {no_bucket!r}
        conn = s3po.Connection(**OPTIONS)

        def start(work, *args):
            '''Run ``work(*args)`` beside the main program: a greenlet if patched, else a thread.'''
            if PATCHED:
                return gevent.spawn(work, *args)
            thread = threading.Thread(target=work, args=args)
            thread.start()
            return thread

        def eventually(condition, seconds=10):
            '''Wait (letting the hub run) until ``condition()`` holds; False if it never did.'''
            deadline = time.monotonic() + seconds
            while not condition() and time.monotonic() < deadline:
                gevent.sleep(0.01)
            return condition()
        """).format(prelude=MODES[mode], patched=mode == "patched", options=options, bucket=BUCKET,
                    no_bucket=NO_BUCKET, watchdog_s=WATCHDOG_S) + textwrap.dedent(body)


def run_in(mode, proxy, body, **options):
    """Run ``body`` in a fresh program in ``mode``; it must exit 0 with no traceback nor warning."""
    return run_cleanly(program_in(mode, proxy, body, **options))


def with_bucket(proxy):
    """Create BUCKET through ``proxy``, then forget that request."""
    make_connection(proxy.url).create_bucket(BUCKET)
    proxy.clear()


modes = pytest.mark.parametrize("mode", sorted(MODES))


# -- a backoff never freezes the hub -----------------------------------------------------------

BIG = random.Random(1).randbytes(12 * MiB)  # three 5 MiB ranges: the second one is retried
STREAMED = random.Random(2).randbytes(300_000)  # one GET, cut twice, resumed twice

BACKOFF_PROGRAM = """
import warnings
warnings.simplefilter("error")
{opening}
import random, time
import gevent, s3po
# Two retries, each after exactly 0.3 s: 0.6 s of backoff in every call below.
conn.retry_policy = s3po.RetryPolicy(retries=2, backoff_base_s=0.3, backoff_cap_s=0.3,
                                     random=lambda: 1.0)
ticks = [0]
def tick():
    while True:
        gevent.sleep(0.01)
        ticks[0] += 1
ticker = gevent.spawn(tick)
gevent.sleep(0.05)
def measure(name, call):
    before, started = ticks[0], time.monotonic()
    call()
    print(name, ticks[0] - before, round(time.monotonic() - started, 3))
def download_ranges():
    assert conn.download("backoff", "big") == random.Random(1).randbytes(12 * 1024 * 1024)
def read_stream():
    with conn.open("backoff", "streamed") as stream:
        assert stream.read() == random.Random(2).randbytes(300_000)
measure("upload", lambda: conn.upload("backoff", "retried", b"x" * 1000))
# Three 5 MiB parts; the second one is retried.
measure("part", lambda: conn.upload("backoff", "parted", random.Random(3).randbytes(12 * 1024 * 1024)))
measure("range", download_ranges)
measure("resume", read_stream)
ticker.kill()
"""


@pytest.mark.parametrize("order", PATCHED_ORDERS)
def test_a_backoff_never_freezes_the_hub_in_any_patched_import_order(proxy, order):
    seeding = make_connection(proxy.url, **SMALL_PARTS)
    seeding.create_bucket("backoff")
    seeding.upload("backoff", "big", BIG)
    seeding.upload("backoff", "streamed", STREAMED)
    proxy.clear()
    proxy.add_fault("status", count=2, method="PUT", path_contains="/backoff/retried", status=503)
    proxy.add_fault("status", count=2, method="PUT", path_contains="/backoff/parted",
                    query_contains="partNumber=2", status=503)
    proxy.add_fault("status", count=2, method="GET", path_contains="/backoff/big",
                    header_contains=("Range", f"bytes={5 * MiB}-"), status=503)
    proxy.add_fault("truncate", count=2, method="GET", path_contains="/backoff/streamed", keep=100_000)
    program = BACKOFF_PROGRAM.format(opening=opening(order, proxy.url, multipart_threshold=5 * MiB,
                                                     part_size=5 * MiB, workers=3))
    result = run_cleanly(program)
    assert result.stderr == ""
    measured = {name: (int(ticks), float(seconds))
                for name, ticks, seconds in (line.split() for line in result.stdout.splitlines())}
    assert set(measured) == {"upload", "part", "range", "resume"}, result.stdout
    for name, (ticks, seconds) in measured.items():
        assert seconds >= 0.55, f"{name}: {seconds} s, so the two 0.3 s backoffs never happened"
        # A 10 ms ticker ticks about 60 times in 0.6 s; a blocking sleep leaves it ~0.
        assert ticks >= 30, f"{name}: the ticker ticked {ticks} times in {seconds} s"
    assert proxy.count("PUT", path_contains="/backoff/retried") == 3
    puts = [r for r in proxy.requests if r.method == "PUT"]
    assert sum("partNumber=2" in r.query.split("&") for r in puts) == 3
    ranges = [r.headers.get("Range") for r in proxy.requests if r.method == "GET" and "/big" in r.path]
    assert ranges.count(f"bytes={5 * MiB}-{10 * MiB - 1}") == 3
    assert proxy.count("GET", path_contains="/backoff/streamed") == 3


# -- background calls from many greenlets or threads; wait() from any --------------------------

MANY_SUBMITTERS = """
conn.create_bucket(BUCKET)
handles = []
def submit(n):
    for i in range(4):
        handles.append(conn.upload(BUCKET, f"bg/{n}/{i}", b"x", background=True))
submitters = [start(submit, n) for n in range(5)]
for submitter in submitters:
    submitter.join(30)
assert len(handles) == 20
assert conn.wait() is True
assert all(handle.ready() and handle.successful() for handle in handles)
print(len(list(conn.list(BUCKET, "bg/"))))
"""


@modes
def test_background_calls_from_several_greenlets_or_threads_are_all_waited_for(proxy, mode):
    # Held 0.3 s before reaching the server: a wait() that did not wait would list fewer.
    proxy.add_fault("hold", count=100, method="PUT", path_contains="/bg/", seconds=0.3)
    result = run_in(mode, proxy, MANY_SUBMITTERS)
    assert result.stdout.split() == ["20"]
    assert proxy.count("PUT", path_contains="/bg/") == 20


WAIT_ELSEWHERE = """
conn.create_bucket(BUCKET)
handles = [conn.upload(BUCKET, f"bg/{n}", b"x", background=True) for n in range(10)]
seen = []
def waiter():
    seen.append(conn.wait())
    seen.append(len(list(conn.list(BUCKET, "bg/"))))
start(waiter).join(30)
assert all(handle.successful() for handle in handles)
print(*seen)
"""


@modes
def test_wait_from_another_greenlet_or_thread_waits_for_the_background_calls(proxy, mode):
    proxy.add_fault("hold", count=100, method="PUT", path_contains="/bg/", seconds=0.3)
    result = run_in(mode, proxy, WAIT_ELSEWHERE)
    assert result.stdout.split() == ["True", "10"]


FAILING_SUBMITTERS = """
def submit(n):
    for i in range(2):
        conn.download(NO_BUCKET, f"missing/{n}/{i}", background=True)
for submitter in [start(submit, n) for n in range(5)]:
    submitter.join(30)
try:
    conn.wait()
except s3po.BatchError as exc:
    print(*sorted(error.key for error in exc.errors))
assert conn.wait() is True  # each failure is reported once
"""


@modes
def test_failed_background_calls_from_several_submitters_are_all_in_the_batch_error(proxy, mode):
    result = run_in(mode, proxy, FAILING_SUBMITTERS)
    assert result.stdout.split() == sorted(f"missing/{n}/{i}" for n in range(5) for i in range(2))
    assert result.stderr == ""  # the program saw them all: nothing left to report at exit


# -- handles keep the Greenlet contract --------------------------------------------------------

GREENLET_CONTRACT = """
conn.create_bucket(BUCKET)
conn.upload(BUCKET, "there", b"hello")
with conn.batch(4) as batch:
    ok = batch.download(BUCKET, "there")
    missing = batch.download(BUCKET, "missing")
    slow = batch.upload(BUCKET, "slow", b"x")  # held 1 s by the proxy
    assert isinstance(slow, gevent.Greenlet)

    # Still running: no outcome yet, and waits with a timeout time out the gevent way.
    assert not slow.ready() and not slow.successful()
    assert slow.value is None and slow.exception is None and not slow.exc_info
    for wait in (lambda: slow.get(timeout=0.05), lambda: slow.get(block=False)):
        try:
            wait()
        except gevent.Timeout:
            pass
        else:
            raise AssertionError("get() of a running call did not time out")
    assert slow.join(timeout=0.05) is None and not slow.ready()
    assert gevent.joinall([slow], timeout=0.05) == []
    linked_early = []
    slow.link(linked_early.append)

    # joinall(raise_error=True) raises the failed call's own exception.
    try:
        gevent.joinall([ok, missing], raise_error=True, timeout=30)
    except s3po.NotFound as exc:
        assert exc is missing.exception
    else:
        raise AssertionError("joinall(raise_error=True) raised nothing")

assert ok.ready() and ok.successful()
assert ok.get() == b"hello" and ok.get(timeout=1) == b"hello" and ok.value == b"hello"
assert ok.exception is None and not ok.exc_info
assert ok.join() is None and ok.join(timeout=0) is None

assert missing.ready() and not missing.successful()
assert missing.value is None
assert isinstance(missing.exception, s3po.NotFound)
assert missing.exc_info[0] is type(missing.exception) and missing.exc_info[1] is missing.exception
try:
    missing.get()
except s3po.NotFound as exc:
    assert exc is missing.exception
else:
    raise AssertionError("get() of a failed call raised nothing")

assert slow.successful() and slow.get().key == "slow"
assert eventually(lambda: linked_early == [slow]), linked_early

# Links made after the end are called too, each as a Greenlet's would be.
calls = {"link": [], "link_value": [], "link_exception": [], "rawlink": []}
for handle in (ok, missing):
    for name, seen in calls.items():
        getattr(handle, name)(seen.append)
assert eventually(lambda: len(calls["link"]) == 2 and len(calls["rawlink"]) == 2
                  and calls["link_value"] and calls["link_exception"]), calls
gevent.sleep(0.05)  # a link called twice, or a wrong one, would show by now
both = sorted([id(ok), id(missing)])
assert sorted(map(id, calls["link"])) == sorted(map(id, calls["rawlink"])) == both, calls
assert calls["link_value"] == [ok] and calls["link_exception"] == [missing], calls
assert set(gevent.joinall([ok, missing], timeout=5)) == {ok, missing}
print("kept")
"""


@modes
def test_handles_keep_the_greenlet_contract(proxy, mode):
    with_bucket(proxy)
    proxy.add_fault("hold", count=1, method="PUT", path_contains="/slow", seconds=1.0)
    result = run_in(mode, proxy, GREENLET_CONTRACT)
    assert result.stdout.split() == ["kept"]
    assert result.stderr == ""  # the failure was looked at: nothing to report


CANCELLED_HANDLES = """
conn.create_bucket(BUCKET)
handles = []
try:
    with conn.batch(6) as batch:
        handles = [batch.upload(BUCKET, f"cancel/{n}", b"x") for n in range(6)]
        gevent.sleep(0.2)  # two calls reach the wire, four wait for a connection
        raise KeyError("the block's own error")
except KeyError:
    pass
else:
    raise AssertionError("the block's exception did not propagate")
assert all(handle.ready() for handle in handles)
cancelled = [handle for handle in handles if not handle.successful()]
for handle in cancelled:
    assert handle.value is None
    assert isinstance(handle.exception, s3po.Cancelled), repr(handle.exception)
    try:
        handle.get()
    except s3po.Cancelled:
        pass
    else:
        raise AssertionError("get() of a cancelled call raised nothing")
    try:
        gevent.joinall([handle], raise_error=True, timeout=5)
    except s3po.Cancelled:
        pass
    else:
        raise AssertionError("joinall(raise_error=True) of a cancelled call raised nothing")
print(len(cancelled), sum(handle.successful() for handle in handles))
"""


@modes
def test_calls_cancelled_by_a_raising_block_are_ready_unsuccessful_and_raise_cancelled(proxy, mode):
    with_bucket(proxy)
    proxy.add_fault("hold", count=100, method="PUT", path_contains="/cancel/", seconds=0.5)
    result = run_in(mode, proxy, CANCELLED_HANDLES, max_connections=2)
    cancelled, succeeded = map(int, result.stdout.split())
    # At most two calls were on the wire; the others never started.
    assert cancelled >= 4 and cancelled + succeeded == 6
    assert proxy.count("PUT", path_contains="/cancel/") <= 2
    assert result.stderr == ""  # a cancellation is not a failure to report


# -- failures are never silent, and never said twice -------------------------------------------

NEVER_LOOKS = """
conn.create_bucket(BUCKET)
missing_file = os.path.join(tempfile.mkdtemp(), "never-written.txt")
with conn.batch(4) as batch:  # every call fails
    batch.download(NO_BUCKET, "batch/download")
    batch.upload(NO_BUCKET, "batch/upload", b"x")
    batch.upload_file(BUCKET, "batch/upload-file", missing_file)
with conn.batch(2) as half:
    looked = half.download(NO_BUCKET, "half/looked")
    half.head(NO_BUCKET, "half/unlooked")
assert isinstance(looked.exception, s3po.NotFound)
conn.download(NO_BUCKET, "background/download", background=True)
conn.upload_file(BUCKET, "background/upload-file", missing_file, background=True)
# and no conn.wait(): the program just ends
"""


@modes
def test_failures_the_program_never_looked_at_are_reported_on_stderr_at_exit(proxy, mode):
    result = run_in(mode, proxy, NEVER_LOOKS)  # exits 0: a failed call never makes a batch raise
    for url in (f"s3://{NO_BUCKET}/batch/download", f"s3://{NO_BUCKET}/batch/upload",
                f"s3://{BUCKET}/batch/upload-file", f"s3://{NO_BUCKET}/half/unlooked",
                f"s3://{NO_BUCKET}/background/download", f"s3://{BUCKET}/background/upload-file"):
        assert url in result.stderr, result.stderr
    assert "half/looked" not in result.stderr  # the one the program looked at


FORGOTTEN_IN_A_FUNCTION = """
conn.create_bucket(BUCKET)
def forgotten():
    with conn.batch(4) as batch:
        batch.download(NO_BUCKET, "forgotten/download")
        batch.upload(NO_BUCKET, "forgotten/upload", b"x")
forgotten()
gevent.sleep(0.05)  # the hub delivers the handles' links
gc.collect()
print("COLLECTED", file=sys.stderr, flush=True)
"""


@modes
def test_a_batch_never_looked_at_is_reported_as_soon_as_it_is_collected(proxy, mode):
    result = run_in(mode, proxy, FORGOTTEN_IN_A_FUNCTION)
    collected, marker, _ = result.stderr.partition("COLLECTED\n")
    assert marker, result.stderr
    for key in ("forgotten/download", "forgotten/upload"):
        assert f"s3://{NO_BUCKET}/{key}" in collected, result.stderr


DROPPED_BATCHES = """
conn.create_bucket(BUCKET)
def dropped(fail, look):
    with conn.batch(4) as batch:
        batch.upload(BUCKET, "fine", b"x")
        if fail:
            batch.download(BUCKET, "missing")
    if look:
        assert len(batch.errors()) == 1
    return weakref.ref(batch)
for fail, look in ((False, False), (True, True), (True, False)):
    batch = dropped(fail, look)
    gevent.sleep(0.05)  # the hub delivers the handles' links
    gc.collect()
    print("failed" if fail else "succeeded", "looked" if look else "unlooked",
          "collected" if batch() is None else "kept")
"""


@modes
def test_a_batch_the_program_dropped_is_garbage_collected_even_when_calls_failed(proxy, mode):
    # Else a long-running program keeps every batch that ever failed, with its handles
    # and their results, and reports unlooked-at failures only when it ends.
    result = run_in(mode, proxy, DROPPED_BATCHES)
    assert result.stdout.splitlines() == ["succeeded unlooked collected", "failed looked collected",
                                          "failed unlooked collected"]


LOOKS = """
conn.create_bucket(BUCKET)
with conn.batch(2) as batch:
    batch.download(NO_BUCKET, "by-errors")
assert len(batch.errors()) == 1
with conn.batch(2) as batch:
    batch.download(NO_BUCKET, "by-success")
assert not batch.success()
with conn.batch(2) as batch:
    batch.download(NO_BUCKET, "by-take-errors")
assert len(batch.take_errors()) == 1
with conn.batch(2) as batch:
    handle = batch.download(NO_BUCKET, "by-get")
try:
    handle.get()
except s3po.NotFound:
    pass
with conn.batch(2) as batch:
    handle = batch.download(NO_BUCKET, "by-exception")
assert handle.exception is not None
with conn.batch(2) as batch:
    handle = batch.download(NO_BUCKET, "by-successful")
assert not handle.successful()
try:
    with conn.batch(2, raise_errors=True) as batch:
        batch.download(NO_BUCKET, "by-raise-errors")
except s3po.BatchError:
    pass
conn.download(NO_BUCKET, "by-wait", background=True)
try:
    conn.wait()
except s3po.BatchError:
    pass
del batch, handle
gc.collect()
"""


@modes
def test_failures_the_program_looked_at_are_not_reported_again(proxy, mode):
    result = run_in(mode, proxy, LOOKS)
    assert result.stderr == ""


LOGGING_CONFIGURED = """
import logging
logging.basicConfig(format="RECORD %(levelname)s %(name)s %(message)s")
conn.create_bucket(BUCKET)
def forgotten_batch():
    with conn.batch(4) as batch:
        batch.download(NO_BUCKET, "in-a-batch/0")
        batch.download(NO_BUCKET, "in-a-batch/1")
forgotten_batch()
gc.collect()
conn.download(NO_BUCKET, "in-the-background/0", background=True)
conn.download(NO_BUCKET, "in-the-background/1", background=True)
"""


@modes
def test_with_logging_configured_each_failure_is_one_error_record(proxy, mode):
    result = run_in(mode, proxy, LOGGING_CONFIGURED)
    for key in ("in-a-batch/0", "in-a-batch/1", "in-the-background/0", "in-the-background/1"):
        lines = [line for line in result.stderr.splitlines() if key in line]
        assert len(lines) == 1, result.stderr
        assert re.match(r"RECORD ERROR s3po\b", lines[0]), result.stderr
    assert "never looked at" not in result.stderr  # the handler had them: no second report


# -- threads are reused, and released by close() -----------------------------------------------

MANY_BATCHES = """
def threads():
    # The kernel's count: it sees threads that threading does not (a gevent ThreadPool's).
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # not Linux
        return threading.active_count()

conn.create_bucket(BUCKET)
baseline = most = threads()
for n in range(50):
    if n % 2:
        with conn.batch(8) as batch:
            for i in range(8):
                batch.upload(BUCKET, f"b{n}/{i}", b"x")
            most = max(most, threads())
    else:  # a batch only waited for, never closed
        batch = conn.batch(8)
        for i in range(8):
            batch.upload(BUCKET, f"b{n}/{i}", b"x")
        batch.wait()
    most = max(most, threads())
conn.upload(BUCKET, "bg", b"x", background=True)
conn.wait()
most = max(most, threads())
print("during", baseline, most, flush=True)
conn.close()
eventually(lambda: threads() <= baseline, seconds=5)
print("closed", baseline, threads())

with s3po.Connection(**OPTIONS) as scoped:
    with scoped.batch(8) as batch:
        for i in range(8):
            batch.upload(BUCKET, f"scoped/{i}", b"x")
    scoped.upload(BUCKET, "scoped/bg", b"x", background=True)
    inside = threads()
eventually(lambda: threads() <= baseline, seconds=5)
print("left", baseline, inside, threads())
"""


def test_many_batches_reuse_at_most_max_connections_threads_and_close_ends_them(proxy):
    result = run_in("threads", proxy, MANY_BATCHES, max_connections=4)
    lines = {line.split()[0]: list(map(int, line.split()[1:])) for line in result.stdout.splitlines()}
    baseline, most = lines["during"]
    assert most <= baseline + 4 + 2, f"{most - baseline} threads for max_connections=4"
    assert most > baseline  # calls did run on threads of their own
    assert lines["closed"] == [baseline, baseline]  # close() ended them
    baseline, inside, after = lines["left"]
    assert inside > baseline and after == baseline  # and so did leaving a with block
    assert proxy.count("PUT") == 1 + 50 * 8 + 1 + 8 + 1  # the bucket, the batches, the background


CLOSE_WAITS = """
conn.create_bucket(BUCKET)
for n in range(5):
    conn.upload(BUCKET, f"pending/{n}", b"x", background=True)
started = time.monotonic()
conn.close()
waited = time.monotonic() - started
print(round(waited, 2), len(list(s3po.Connection(**OPTIONS).list(BUCKET, "pending/"))))
conn.close()  # a second close() is harmless
"""


@modes
def test_close_first_finishes_the_pending_background_calls(proxy, mode):
    proxy.add_fault("hold", count=100, method="PUT", path_contains="/pending/", seconds=0.5)
    result = run_in(mode, proxy, CLOSE_WAITS)
    waited, stored = result.stdout.split()
    assert float(waited) >= 0.4 and int(stored) == 5


CLOSED_REFUSES = """
conn.create_bucket(BUCKET)
conn.upload(BUCKET, "before", b"x", background=True)  # the background calls exist already
conn.close()
attempts = {
    "upload": lambda: conn.upload(BUCKET, "late/upload", b"x"),
    "download": lambda: conn.download(BUCKET, "before"),
    "background": lambda: conn.upload(BUCKET, "late/background", b"x", background=True),
    "batch": lambda: conn.batch(2),
}
for name, attempt in attempts.items():
    try:
        attempt()
    except RuntimeError:
        print(name, "refused")
    else:
        print(name, "accepted")
"""


@modes
def test_a_closed_connection_refuses_every_call_and_the_program_still_ends(proxy, mode):
    result = run_in(mode, proxy, CLOSED_REFUSES)
    assert result.stdout.splitlines() == ["upload refused", "download refused", "background refused",
                                          "batch refused"]
    assert result.stderr == ""
    assert proxy.count(path_contains="/late") == 0


BATCH_OUTLIVES_CLOSE = """
conn.create_bucket(BUCKET)
batch = conn.batch(2)  # made while the Connection was open
conn.close()
try:
    with batch:
        handle = batch.upload(BUCKET, "late/in-a-batch", b"x")
except RuntimeError:
    print("refused")
else:
    print("accepted", repr(handle.exception))
"""


@modes
def test_a_batch_made_before_close_refuses_calls_after_it_and_the_program_still_ends(proxy, mode):
    result = run_in(mode, proxy, BATCH_OUTLIVES_CLOSE)
    assert result.stdout.splitlines() == ["refused"]
    assert proxy.count(path_contains="/late") == 0


# -- every connection slot taken by calls of a batch ------------------------------------------

EVERY_SLOT_TAKEN = """
conn.create_bucket(BUCKET)
data = os.urandom(12 * 1024 * 1024)  # three parts, three ranges: more than one worker's work
with conn.batch(4) as batch:  # four calls hold the Connection's four slots
    for n in range(4):
        batch.upload(BUCKET, f"big{n}", data)
assert batch.success(), batch.errors()
with conn.batch(4) as batch:
    handles = [batch.download(BUCKET, f"big{n}") for n in range(4)]
assert all(handle.get() == data for handle in handles)
print("OK")
"""


@modes
def test_large_transfers_of_a_batch_holding_every_slot_run_on_the_slots_they_hold(proxy, mode):
    result = run_in(mode, proxy, EVERY_SLOT_TAKEN, max_connections=4, workers=4, **SMALL_PARTS_NO_WORKERS)
    assert result.stdout.strip() == "OK"
    assert proxy.max_in_flight <= 4


SMALL_PARTS_NO_WORKERS = {k: v for k, v in SMALL_PARTS.items() if k != "workers"}


# -- one call's failure is its own ------------------------------------------------------------

ONE_FAILURE_ALONE = """
conn.create_bucket(BUCKET)
data = os.urandom(12 * 1024 * 1024)
for n in range(4):
    conn.upload(BUCKET, f"big{n}", data)
def broken(done, total):
    raise RuntimeError("a progress bar that breaks")
with conn.batch(4) as batch:
    failing = batch.download(BUCKET, "big0", progress=broken)
    others = [batch.download(BUCKET, f"big{n}") for n in (1, 2, 3)]
assert "a progress bar that breaks" in str(failing.exception), failing.exception
assert all(handle.get() == data for handle in others)
# A failed background call leaves the later ones alone.
conn.download(BUCKET, "missing", background=True)
try:
    conn.wait()
except s3po.BatchError:
    pass
conn.upload(BUCKET, "later", b"stored", background=True)
assert conn.wait()
assert conn.download(BUCKET, "later") == b"stored"
print("OK")
"""


@modes
def test_one_calls_failure_never_cancels_the_other_calls(proxy, mode):
    assert run_in(mode, proxy, ONE_FAILURE_ALONE, **SMALL_PARTS).stdout.strip() == "OK"


# -- callbacks that add calls ------------------------------------------------------------------

CALLBACKS_ADD_CALLS = """
conn.create_bucket(BUCKET)
for n in range(6):
    conn.upload(BUCKET, f"src{n}", f"source {n}".encode())
def processed(name):
    return lambda data: conn.upload(BUCKET, name, data.upper(), background=True)
for n in range(6):  # more than the Connection's two connections: the pool is full
    conn.download(BUCKET, f"src{n}", background=True, callback=processed(f"dst{n}"))
assert conn.wait()
assert eventually(lambda: len(list(conn.list(BUCKET, "dst"))) == 6)
assert conn.download(BUCKET, "dst5") == b"SOURCE 5"
print("OK")
"""


@modes
def test_a_callback_may_add_background_calls_to_a_full_pool(proxy, mode):
    assert run_in(mode, proxy, CALLBACKS_ADD_CALLS, max_connections=2).stdout.strip() == "OK"


CALLBACKS_FAN_OUT_IN_A_FULL_BATCH = """
conn.create_bucket(BUCKET)
for n in range(4):
    conn.upload(BUCKET, f"src{n}", f"source {n}".encode())
with conn.batch(4) as batch:
    def fan_out(n):
        # Three calls from each callback, into a batch its own queued calls keep full.
        return lambda data: [batch.upload(BUCKET, f"dst{n}-{m}", data.upper()) for m in range(3)]
    for n in range(4):
        batch.download(BUCKET, f"src{n}", callback=fan_out(n))
assert not batch.errors(), batch.errors()
assert len(list(conn.list(BUCKET, "dst"))) == 12
print("OK")
"""


@modes
def test_callbacks_may_add_several_calls_to_a_full_batch_without_a_deadlock(proxy, mode):
    result = run_in(mode, proxy, CALLBACKS_FAN_OUT_IN_A_FULL_BATCH, max_connections=2)
    assert result.stdout.strip() == "OK"


# -- reports of failures nobody looked at -----------------------------------------------------

WAITED_NOT_CLOSED = """
import logging
logging.basicConfig(level=logging.ERROR, stream=sys.stderr, format="RECORD %(message)s")
conn.create_bucket(BUCKET)
def forgotten():
    batch = conn.batch(4)  # no with: waited for, never closed
    batch.download(NO_BUCKET, "waited/download")
    batch.wait()
forgotten()
gevent.sleep(0.05)  # the hub delivers the handles' links
gc.collect()
print("COLLECTED", file=sys.stderr, flush=True)
"""


@modes
def test_a_batch_only_waited_for_still_logs_its_failures_when_collected(proxy, mode):
    result = run_in(mode, proxy, WAITED_NOT_CLOSED)
    collected = result.stderr.partition("COLLECTED\n")[0]
    assert collected.count(f"RECORD batch call failed: download s3://{NO_BUCKET}/waited/download") == 1, \
        result.stderr


DROPPED_CONNECTION = """
def job():
    local = s3po.Connection(**OPTIONS)
    local.download(NO_BUCKET, "dropped-connection/download", background=True)
    time.sleep(1)  # long enough for the call to fail; the Connection is then dropped
job()
gc.collect()
print("COLLECTED", file=sys.stderr, flush=True)
"""


@modes
def test_failed_background_calls_of_a_dropped_connection_are_reported(proxy, mode):
    result = run_in(mode, proxy, DROPPED_CONNECTION)
    assert f"s3://{NO_BUCKET}/dropped-connection/download" in result.stderr, result.stderr


# -- a batch cancelled while single PUTs are on the wire --------------------------------------

PUTS_ON_THE_WIRE = """
conn.create_bucket(BUCKET)
handles = []
try:
    with conn.batch(4) as batch:
        handles = [batch.upload(BUCKET, f"k{n}", b"data") for n in range(4)]
        gevent.sleep(0.5)  # the proxy answers after a second: the PUTs are on the wire
        raise RuntimeError("the program's own error")
except RuntimeError:
    pass
stored = {record.key for record in conn.objects(BUCKET)}
for n, handle in enumerate(handles):
    # A PUT that went out is let finish: the handle says what the store has.
    assert handle.successful() == (f"k{n}" in stored), (n, handle, stored)
print("OK", len(stored))
"""


@modes
def test_a_cancelled_batch_reports_the_puts_that_went_out_as_they_ended(proxy, mode):
    with_bucket(proxy)
    proxy.latency_s = 1.0
    result = run_in(mode, proxy, PUTS_ON_THE_WIRE)
    assert result.stdout.startswith("OK")
    assert proxy.count("PUT", path_contains="/k") == 4
