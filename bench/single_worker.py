"""One variant of the single-call suite: PUTs, then GETs, of small objects, one after another.

Run as ``python single_worker.py VARIANT --endpoint URL ...`` (by bench/single.py, each in a
process of its own, with the variant's own Python). Prints one JSON line: the CPU
seconds this process spent on the PUTs and on the GETs (after a warm-up), and versions.
"""

import argparse
import json
import os
import sys
import time

REGION = "us-east-1"


def cpu():
    times = os.times()
    return times.user + times.system


def measure(put, get, keys):
    for key in keys[:20]:  # warm-up: connections, caches, imports
        put("warm-" + key)
        get("warm-" + key)
    started = cpu()
    for key in keys:
        put(key)
    between = cpu()
    for key in keys:
        get(key)
    return {"put_cpu_s": between - started, "get_cpu_s": cpu() - between}


def s3po_variant(args, request_path):
    import s3po

    conn = s3po.Connection(endpoint_url=args.endpoint, region_name=REGION, aws_access_key_id=args.access_key,
                           aws_secret_access_key=args.secret_key, request_path=request_path)
    data = os.urandom(args.size)
    numbers = measure(lambda key: conn.upload(args.bucket, key, data), lambda key: conn.download(args.bucket, key),
                      _keys(args))
    return numbers, {"s3po": s3po.__version__}


def boto3_variant(args):
    import boto3
    import botocore
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=args.endpoint, region_name=REGION, aws_access_key_id=args.access_key,
                          aws_secret_access_key=args.secret_key,
                          config=Config(request_checksum_calculation="when_required",
                                        response_checksum_validation="when_required"))
    data = os.urandom(args.size)
    numbers = measure(lambda key: client.put_object(Bucket=args.bucket, Key=key, Body=data),
                      lambda key: client.get_object(Bucket=args.bucket, Key=key)["Body"].read(), _keys(args))
    return numbers, {"boto3": boto3.__version__, "botocore": botocore.__version__}


def minio_variant(args):
    import io
    import urllib.parse

    import minio

    parts = urllib.parse.urlsplit(args.endpoint)
    client = minio.Minio(parts.netloc, access_key=args.access_key, secret_key=args.secret_key,
                         secure=parts.scheme == "https", region=REGION)
    data = os.urandom(args.size)

    def get(key):
        response = client.get_object(args.bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    numbers = measure(lambda key: client.put_object(args.bucket, key, io.BytesIO(data), len(data)), get, _keys(args))
    return numbers, {"minio": minio.__version__}


def obstore_variant(args):
    import obstore
    from obstore.store import S3Store

    store = S3Store(args.bucket, endpoint=args.endpoint, region=REGION, access_key_id=args.access_key,
                    secret_access_key=args.secret_key, virtual_hosted_style_request=False,
                    client_options={"allow_http": True})
    data = os.urandom(args.size)
    numbers = measure(lambda key: obstore.put(store, key, data), lambda key: obstore.get(store, key).bytes(),
                      _keys(args))
    return numbers, {"obstore": obstore.__version__}


def _keys(args):
    return [f"single/{args.variant}/{n:05d}" for n in range(args.calls)]


VARIANTS = {
    "s3po-lean": lambda args: s3po_variant(args, "lean"),
    "s3po-botocore": lambda args: s3po_variant(args, "botocore"),
    "boto3": boto3_variant,
    "minio-py": minio_variant,
    "obstore": obstore_variant,
}


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--access-key", required=True)
    parser.add_argument("--secret-key", required=True)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    numbers, versions = VARIANTS[args.variant](args)
    print(json.dumps({"variant": args.variant, "calls": args.calls, "versions": versions,
                      "wall_s": time.perf_counter() - started, **numbers}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
