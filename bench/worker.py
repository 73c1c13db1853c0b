"""Run one variant in a process of its own: upload N objects, download them, verify them.

    python bench/worker.py VARIANT --endpoint URL --bucket NAME --objects 1000 --size 4096 \\
        --concurrency 64 --access-key A --secret-key S

A process per variant keeps peak RSS and CPU time clean: both come from getrusage on this
process alone. Clients are built before the clock starts, as a long-lived program would.

Speaks JSON lines on stdout, which the orchestrator reads as they come:
``{"event": "start", "phase": "upload"}`` / ``{"event": "end", ...}`` around each timed
phase (so it can sample the server's and the proxy's CPU at the same moments), then one
``{"event": "result", ...}``, or ``{"event": "unavailable", "reason": ...}`` when the
variant's library cannot be imported. Only this module's standard-library imports happen
at the top: each variant imports its own client, and the aioboto3 and obstore variants run
under their own virtualenvs.
"""

import argparse
import functools
import json
import resource
import sys
import time

REGION = "us-east-1"
BARE_SAMPLE = 500       # objects for the back-to-back reference calls


class Unavailable(Exception):
    """The variant's library is missing or lacks the API the benchmark uses."""


def _emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def _cpu():
    """(user, system) CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def status_mib(field):
    """A line of /proc/self/status (``VmRSS``, ``VmHWM``) in MiB, or None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak():
    """Reset this process's VmHWM to its current RSS (Linux 4.0+); False if it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib():
    """This process's peak resident set, in MiB.

    ``VmHWM``, the high-water mark of this process's own memory map. Not ``ru_maxrss``
    where ``VmHWM`` exists: Linux keeps ``ru_maxrss`` across fork and exec, so a worker
    would report its parent's (the orchestrator's) peak whenever that was the larger.
    """
    peak = status_mib("VmHWM")
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux
    return peak


class Phases:
    """Times each phase in wall and CPU seconds, announcing its start and end.

    With ``handshake``, each announcement waits for a line on stdin: the orchestrator
    sends it once it has sampled the server and the proxy, so that the next phase's
    requests cannot leak into this phase's sample. The wait is outside the clock.
    Subclasses may measure more around each phase in ``starting`` and ``ended``.
    """

    def __init__(self, objects, handshake):
        self.objects = objects
        self.results = {}
        self._handshake = handshake

    def _announce(self, event, name):
        _emit(event=event, phase=name)
        if self._handshake:
            sys.stdin.readline()

    def starting(self, name):
        """Called before the phase is announced, outside its clock."""

    def ended(self, name, record):
        """Called after the phase's end is announced, outside its clock; may add to record."""

    def _begin(self, name):
        self.starting(name)
        self._announce("start", name)
        return time.perf_counter(), _cpu()

    def _finish(self, name, begun, objects):
        wall, (user, system) = time.perf_counter() - begun[0], _cpu()
        user, system = user - begun[1][0], system - begun[1][1]
        self._announce("end", name)
        record = {"wall_s": wall, "cpu_s": user + system, "cpu_user_s": user,
                  "cpu_sys_s": system, "objects": objects or self.objects}
        self.ended(name, record)
        self.results[name] = record

    def run(self, name, fn, objects=None):
        begun = self._begin(name)
        value = fn()
        self._finish(name, begun, objects)
        return value

    async def run_async(self, name, make):
        """The same, for ``make()`` returning an awaitable (such as a gather)."""
        begun = self._begin(name)
        value = await make()
        self._finish(name, begun, None)
        return value


def _keys(args):
    return [f"obj-{i:06d}" for i in range(args.objects)]


def _payload(args):
    # Distinct bytes per run would not change the cost; one buffer keeps memory flat.
    return bytes(range(256)) * (args.size // 256) + bytes(args.size % 256)


def _verify(args, blobs):
    data = _payload(args)
    bad = sum(1 for blob in blobs if bytes(blob) != data)
    if bad or len(blobs) != args.objects:
        raise AssertionError(f"{bad} of {len(blobs)} downloads differ from what was uploaded")


def botocore_config(config_class, pool_connections):
    # Checksums only where S3 requires them: the local servers do not all speak the
    # newer flexible checksums, and the peers should do the same work per request.
    # Used by both suites, with a pool no variant can exhaust.
    return config_class(
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3={"addressing_style": "path"},
        max_pool_connections=pool_connections,
    )


def _boto3_session():
    import boto3
    return boto3.session.Session()


def _boto3_client(args, session=None, endpoint=None):
    from botocore.config import Config
    return (session or _boto3_session()).client(
        "s3", endpoint_url=endpoint or args.endpoint, region_name=REGION,
        aws_access_key_id=args.access_key, aws_secret_access_key=args.secret_key,
        config=botocore_config(Config, args.concurrency))


def boto3_versions():
    import boto3
    import botocore
    return {"boto3": boto3.__version__, "botocore": botocore.__version__}


# -- the variants ----------------------------------------------------------------------------

def run_s3po(args, phases, patch=True):
    # s3po is a gevent library: it runs, as its users' programs do, in a patched process.
    # The patch must come before anything imports socket, ssl or threading through boto3.
    # Unpatched (s3po-unpatched), s3po's batch runs its calls on native threads instead.
    if patch:
        from gevent import monkey
        monkey.patch_all()
    try:
        import s3po
    except ImportError as err:
        raise Unavailable(f"s3po not importable ({err})") from err
    if not hasattr(getattr(s3po, "Connection", None), "batch"):
        raise Unavailable("s3po has no Connection.batch yet")
    conn = s3po.Connection(
        endpoint_url=args.endpoint, region_name=REGION,
        aws_access_key_id=args.access_key, aws_secret_access_key=args.secret_key,
        max_connections=args.concurrency, retries=3)
    conn.client  # built before the clock starts, as every peer's client is
    keys, data = _keys(args), _payload(args)

    def upload():
        with conn.batch(args.concurrency) as batch:
            handles = [batch.upload(args.bucket, key, data) for key in keys]
        for handle in handles:
            handle.get()         # re-raises a failed upload

    def download():
        with conn.batch(args.concurrency) as batch:
            handles = [batch.download(args.bucket, key) for key in keys]
        return [handle.get() for handle in handles]

    phases.run("upload", upload)
    _verify(args, phases.run("download", download))
    return {"s3po": getattr(s3po, "__version__", "unknown"), **boto3_versions()}


def run_boto3_sequential(args, phases):
    session = _boto3_session()
    client = _boto3_client(args, session, args.endpoint)
    keys, data = _keys(args), _payload(args)

    def upload(client, keys):
        for key in keys:
            client.put_object(Bucket=args.bucket, Key=key, Body=data)

    def download(client, keys):
        return [client.get_object(Bucket=args.bucket, Key=key)["Body"].read() for key in keys]

    phases.run("upload", lambda: upload(client, keys))
    _verify(args, phases.run("download", lambda: download(client, keys)))
    if args.direct_endpoint:
        # The same calls back to back, straight to the server: a warm client that never
        # waits, so its CPU per call has no wake-up after an idle 20 ms in it. A reference
        # beside the one above, not part of the comparison.
        direct = _boto3_client(args, session, args.direct_endpoint)
        sample = keys[:BARE_SAMPLE]
        upload(direct, sample[:1])
        download(direct, sample[:1])
        phases.run("bare-upload", lambda: upload(direct, sample), len(sample))
        phases.run("bare-download", lambda: download(direct, sample), len(sample))
    return boto3_versions()


def run_boto3_threads(args, phases):
    from concurrent.futures import ThreadPoolExecutor
    client = _boto3_client(args)     # botocore clients are thread-safe; one pool of 64
    keys, data = _keys(args), _payload(args)

    def put(key):
        client.put_object(Bucket=args.bucket, Key=key, Body=data)

    def get(key):
        return client.get_object(Bucket=args.bucket, Key=key)["Body"].read()

    def upload():
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(put, keys))

    def download():
        with ThreadPoolExecutor(args.concurrency) as pool:
            return list(pool.map(get, keys))

    phases.run("upload", upload)
    _verify(args, phases.run("download", download))
    return boto3_versions()


def run_s3transfer(args, phases):
    import io
    import s3transfer
    from s3transfer.manager import TransferConfig, TransferManager
    client = _boto3_client(args)
    keys, data = _keys(args), _payload(args)
    config = TransferConfig(max_request_concurrency=args.concurrency)

    def upload():
        with TransferManager(client, config) as manager:
            futures = [manager.upload(io.BytesIO(data), args.bucket, key) for key in keys]
            for future in futures:
                future.result()

    def download():
        # As boto3's download_fileobj does. Without a known size, s3transfer 0.19 learns it
        # from a ranged GET of the first part, so this is still one request per object.
        buffers = [io.BytesIO() for _ in keys]
        with TransferManager(client, config) as manager:
            futures = [manager.download(args.bucket, key, buffer)
                       for key, buffer in zip(keys, buffers)]
            for future in futures:
                future.result()
        return [buffer.getvalue() for buffer in buffers]

    phases.run("upload", upload)
    _verify(args, phases.run("download", download))
    return {"s3transfer": s3transfer.__version__, **boto3_versions()}


def run_aioboto3(args, phases):
    import asyncio
    try:
        import aioboto3
        import aiobotocore
        from aiobotocore.config import AioConfig
    except ImportError as err:
        raise Unavailable(f"aioboto3 not installed ({err})") from err
    keys, data = _keys(args), _payload(args)

    async def main():
        session = aioboto3.Session()
        async with session.client(
                "s3", endpoint_url=args.endpoint, region_name=REGION,
                aws_access_key_id=args.access_key, aws_secret_access_key=args.secret_key,
                config=botocore_config(AioConfig, args.concurrency)) as client:
            limit = asyncio.Semaphore(args.concurrency)

            async def put(key):
                async with limit:
                    await client.put_object(Bucket=args.bucket, Key=key, Body=data)

            async def get(key):
                async with limit:
                    response = await client.get_object(Bucket=args.bucket, Key=key)
                    async with response["Body"] as body:
                        return await body.read()

            await phases.run_async("upload", lambda: asyncio.gather(*map(put, keys)))
            return await phases.run_async("download", lambda: asyncio.gather(*map(get, keys)))

    _verify(args, asyncio.run(main()))
    return {"aioboto3": aioboto3.__version__, "aiobotocore": aiobotocore.__version__,
            **boto3_versions()}


def run_obstore(args, phases):
    import asyncio
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError as err:
        raise Unavailable(f"obstore not installed ({err})") from err
    store = S3Store(
        args.bucket, endpoint=args.endpoint, region=REGION,
        access_key_id=args.access_key, secret_access_key=args.secret_key,
        virtual_hosted_style_request=False, client_options={"allow_http": True})
    keys, data = _keys(args), _payload(args)

    async def main():
        limit = asyncio.Semaphore(args.concurrency)

        async def put(key):
            async with limit:
                await obstore.put_async(store, key, data)

        async def get(key):
            async with limit:
                result = await obstore.get_async(store, key)
                return await result.bytes_async()

        await phases.run_async("upload", lambda: asyncio.gather(*map(put, keys)))
        return await phases.run_async("download", lambda: asyncio.gather(*map(get, keys)))

    _verify(args, asyncio.run(main()))
    return {"obstore": obstore.__version__}


VARIANTS = {
    "s3po": run_s3po,
    "s3po-unpatched": functools.partial(run_s3po, patch=False),
    "boto3-sequential": run_boto3_sequential,
    "boto3-threads": run_boto3_threads,
    "s3transfer": run_s3transfer,
    "aioboto3": run_aioboto3,
    "obstore": run_obstore,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--direct-endpoint",
                        help="boto3-sequential only: also time back-to-back calls to this URL")
    parser.add_argument("--handshake", action="store_true",
                        help="after each phase announcement, wait for a line on stdin")
    args = parser.parse_args(argv)

    phases = Phases(args.objects, args.handshake)
    started = time.perf_counter()
    try:
        versions = VARIANTS[args.variant](args, phases)
    except Unavailable as err:
        _emit(event="unavailable", reason=str(err))
        return 0
    _emit(event="result", variant=args.variant, phases=phases.results, versions=versions,
          peak_rss_mib=peak_rss_mib(),
          total_wall_s=time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
