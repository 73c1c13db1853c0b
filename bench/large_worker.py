"""Run one large-object variant in a process of its own: upload one file, download it.

    python bench/large_worker.py VARIANT --endpoint URL --bucket NAME --key KEY \\
        --file SOURCE --download-to PATH --access-key A --secret-key S

Speaks the same JSON lines as bench/worker.py (whose ``Phases`` it reuses): a start and
an end event around each of the two timed phases, then one result. Besides wall and CPU
seconds (user and system apart), it reports memory: the resident set once imports are
done and the client is built, just before the upload (the baseline), and the peak of each
phase (``VmHWM``, reset at the phase's start through ``/proc/self/clear_refs``); the
process's peak is the larger of the two. (``ru_maxrss`` is reported too but not used: Linux
carries it over fork and exec, so it can hold the orchestrator's peak rather than this
process's; see worker.peak_rss_mib.) The orchestrator checks the downloaded file against
the source and deletes it, outside the timing.

Every variant moves the file with its library's own file-transfer call, with the same
concurrency (--workers) and part size (--part-size) as s3po, except ``s3transfer-default``,
which keeps boto3's defaults (10 in flight, 8 MiB parts, multipart from 8 MiB).
"""

import argparse
import functools
import resource
import sys
import time

import worker
from worker import Unavailable

REGION = "us-east-1"
POOL_CONNECTIONS = 32      # more than any variant keeps in flight (s3transfer's default is 10)


class Phases(worker.Phases):
    """worker.Phases that also records the baseline RSS and each phase's peak RSS."""

    def __init__(self, handshake):
        super().__init__(1, handshake)
        self.baseline_rss_mib = None
        self._reset = False

    def starting(self, name):
        if self.baseline_rss_mib is None:
            self.baseline_rss_mib = worker.status_mib("VmRSS")
        self._reset = worker.reset_peak()

    def ended(self, name, record):
        # Without the reset, VmHWM is the process's peak so far: still an upper bound.
        record["peak_rss_mib"] = worker.status_mib("VmHWM")
        record["peak_rss_scope"] = "phase" if self._reset else "process so far"


# -- the variants ----------------------------------------------------------------------------

def run_s3po(args, phases, patch=False):
    # "s3po" is a program that never patched: s3po moves the parts on native threads.
    # "s3po-patched" patches first, as a gevent program would, before anything imports
    # socket, ssl or threading through boto3.
    if patch:
        from gevent import monkey
        monkey.patch_all()
    try:
        import s3po
    except ImportError as err:
        raise Unavailable(f"s3po not importable ({err})") from err
    conn = s3po.Connection(
        endpoint_url=args.endpoint, region_name=REGION,
        aws_access_key_id=args.access_key, aws_secret_access_key=args.secret_key,
        workers=args.workers, part_size=None, multipart_threshold=args.threshold)
    # botocore computes no checksums of its own for s3po (only when required); s3po sends
    # and checks its own (checksum="auto"), and pools 64 connections, by default.
    conn.client  # built before the clock starts, as every peer's client is
    _record_checks()
    phases.run("upload", lambda: conn.upload_file(args.bucket, args.key, args.file))
    phases.run("download", lambda: conn.download_file(args.bucket, args.key, args.download_to))
    return {"s3po": getattr(s3po, "__version__", "unknown"), **worker.boto3_versions()}


CHECKS = {}  # phase -> what checked the bytes, as s3po logs it ("CRC64NVME", "MD5", ...)


def _record_checks():
    """Keep what s3po says (at DEBUG) checked each transfer; nothing else of its log."""
    import logging

    class Checks(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if "checked by " in message:
                CHECKS[message.split(" ", 1)[0]] = message.rpartition("checked by ")[2]

    for name in ("s3po.uploads", "s3po.downloads"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(Checks())


def run_s3transfer(args, phases, same=True):
    import boto3
    import s3transfer
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config
    client = boto3.session.Session().client(
        "s3", endpoint_url=args.endpoint, region_name=REGION,
        aws_access_key_id=args.access_key, aws_secret_access_key=args.secret_key,
        config=worker.botocore_config(Config, POOL_CONNECTIONS))
    # None: boto3's default TransferConfig, as a plain client.upload_file(...) gets.
    config = TransferConfig(max_concurrency=args.workers, multipart_chunksize=args.part_size,
                            multipart_threshold=args.threshold) if same else None
    phases.run("upload", lambda: client.upload_file(args.file, args.bucket, args.key,
                                                    Config=config))
    phases.run("download", lambda: client.download_file(args.bucket, args.key,
                                                        args.download_to, Config=config))
    return {"s3transfer": s3transfer.__version__, **worker.boto3_versions()}


def run_aioboto3(args, phases):
    import asyncio
    try:
        import aioboto3
        import aiobotocore
        from aiobotocore.config import AioConfig
        from boto3.s3.transfer import TransferConfig
    except ImportError as err:
        raise Unavailable(f"aioboto3 not installed ({err})") from err
    # aioboto3 reads max_request_concurrency (set by max_concurrency), multipart_chunksize
    # and multipart_threshold from boto3's TransferConfig; the rest stays at its defaults.
    config = TransferConfig(max_concurrency=args.workers, multipart_chunksize=args.part_size,
                            multipart_threshold=args.threshold)

    async def main():
        session = aioboto3.Session()
        async with session.client(
                "s3", endpoint_url=args.endpoint, region_name=REGION,
                aws_access_key_id=args.access_key, aws_secret_access_key=args.secret_key,
                config=worker.botocore_config(AioConfig, POOL_CONNECTIONS)) as client:

            async def upload():
                # Plain files: aioboto3 takes them (and reads page-cached data at once);
                # aiofiles, which its upload_file uses, would add a thread hop per read.
                with open(args.file, "rb") as source:  # noqa: ASYNC230 (see above)
                    await client.upload_fileobj(source, args.bucket, args.key, Config=config)

            async def download():
                with open(args.download_to, "wb") as target:  # noqa: ASYNC230
                    await client.download_fileobj(args.bucket, args.key, target, Config=config)

            await phases.run_async("upload", upload)
            await phases.run_async("download", download)

    asyncio.run(main())
    return {"aioboto3": aioboto3.__version__, "aiobotocore": aiobotocore.__version__,
            **worker.boto3_versions()}


def run_obstore(args, phases):
    import asyncio
    from pathlib import Path
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError as err:
        raise Unavailable(f"obstore not installed ({err})") from err
    store = S3Store(
        args.bucket, endpoint=args.endpoint, region=REGION,
        access_key_id=args.access_key, secret_access_key=args.secret_key,
        virtual_hosted_style_request=False, client_options={"allow_http": True})

    async def upload():
        # Multipart (the file is larger than chunk_size), read from the path in Rust.
        await obstore.put_async(store, args.key, Path(args.file), chunk_size=args.part_size,
                                max_concurrency=args.workers)

    async def download():
        # obstore has no parallel ranged download into a file: one streaming GET.
        result = await obstore.get_async(store, args.key)
        with open(args.download_to, "wb") as target:  # noqa: ASYNC230 (page cache: no wait)
            async for chunk in result.stream(min_chunk_size=args.part_size):
                target.write(chunk)

    async def main():
        await phases.run_async("upload", upload)
        await phases.run_async("download", download)

    asyncio.run(main())
    return {"obstore": obstore.__version__}


VARIANTS = {
    "s3po": run_s3po,
    "s3po-patched": functools.partial(run_s3po, patch=True),
    "s3transfer-default": functools.partial(run_s3transfer, same=False),
    "s3transfer-same": run_s3transfer,
    "aioboto3": run_aioboto3,
    "obstore": run_obstore,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", default="large.bin")
    parser.add_argument("--file", required=True, help="the file to upload")
    parser.add_argument("--download-to", required=True, help="where to download it")
    parser.add_argument("--workers", type=int, default=8, help="parts in flight")
    parser.add_argument("--part-size", type=int, default=8 * 1024 * 1024)
    parser.add_argument("--threshold", type=int, default=10 * 1024 * 1024,
                        help="multipart from this size")
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--handshake", action="store_true",
                        help="after each phase announcement, wait for a line on stdin")
    args = parser.parse_args(argv)

    phases = Phases(args.handshake)
    started = time.perf_counter()
    try:
        versions = VARIANTS[args.variant](args, phases)
    except Unavailable as err:
        worker._emit(event="unavailable", reason=str(err))
        return 0
    # Each phase's VmHWM was reset at its start, so the process's peak since the baseline
    # is the larger phase peak (or, off Linux, ru_maxrss). ru_maxrss is in KiB on Linux.
    ru_maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peaks = [record["peak_rss_mib"] for record in phases.results.values()
             if record["peak_rss_mib"] is not None]
    worker._emit(event="result", variant=args.variant, phases=phases.results, versions=versions, checks=CHECKS,
                 baseline_rss_mib=phases.baseline_rss_mib, ru_maxrss_mib=ru_maxrss_mib,
                 peak_rss_mib=max(peaks) if peaks else ru_maxrss_mib,
                 total_wall_s=time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
