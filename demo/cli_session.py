"""``make demo``, first half: a short session with the ``s3po`` command on an embedded S3 server.

Starts moto's standalone S3 server on 127.0.0.1, generates a folder of small files, and
runs the command line as a user would type it, showing each command and its output:
make a bucket, ``cp -r`` the folder up with progress, ``ls``, ``du``, a ``sync`` that
moves nothing, ``cat`` of a gzip-compressed object, ``rm -r``. No AWS account needed.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from s3po.testing.server import MotoServer

BUCKET = "s3po-cli-demo"
S3PO = str(Path(sys.executable).parent / "s3po")


def make_folder(root: Path, count: int) -> None:
    rng = random.Random(7)
    for n in range(count):
        path = root / f"day{n % 7}" / f"event{n:05d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"n": %d, "pad": "%s"}\n' % (n, "x" * rng.randint(10, 2000)))


def session(endpoint: str, folder: Path, count: int) -> None:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "demo", "AWS_SECRET_ACCESS_KEY": "demo-secret",
           "AWS_DEFAULT_REGION": "us-east-1", "S3PO_PROGRESS_INTERVAL": "1"}
    progress = "bar" if sys.stdout.isatty() else "log"

    def s3po(*words: str, stdin: bytes | None = None, show: str | None = None) -> None:
        shown = show or " ".join(shlex.quote(word) for word in words)
        print(f"\n$ s3po {shown}", flush=True)
        done = subprocess.run([S3PO, "--endpoint-url", endpoint, *words], input=stdin, env=env,
                              stdout=sys.stdout, stderr=sys.stdout)
        if done.returncode != 0:
            raise SystemExit(f"s3po {shown} exited with {done.returncode}")

    s3po("mb", f"s3://{BUCKET}")
    s3po("cp", "-r", str(folder), f"s3://{BUCKET}/events", "--progress", progress,
         show=f"cp -r ./events s3://{BUCKET}/events --progress {progress}")
    s3po("ls", f"s3://{BUCKET}/events/")
    s3po("du", f"s3://{BUCKET}/events")
    s3po("sync", str(folder), f"s3://{BUCKET}/events", show=f"sync ./events s3://{BUCKET}/events")
    log = "".join(f"2026-01-01 request {n} ok\n" for n in range(2000)).encode()
    s3po("cp", "-", f"s3://{BUCKET}/logs/app.log", "--compress", "gzip", stdin=log,
         show=f"cp - s3://{BUCKET}/logs/app.log --compress gzip    # 2,000 log lines on standard input")
    s3po("stat", f"s3://{BUCKET}/logs/app.log")
    print(f"\n$ s3po cat s3://{BUCKET}/logs/app.log | tail -2", flush=True)
    cat = subprocess.run([S3PO, "--endpoint-url", endpoint, "cat", f"s3://{BUCKET}/logs/app.log"], env=env,
                         capture_output=True)
    if cat.returncode != 0 or cat.stdout != log:
        raise SystemExit("cat did not give back the log")
    sys.stdout.write("".join(cat.stdout.decode().splitlines(keepends=True)[-2:]))
    s3po("rm", "-r", f"s3://{BUCKET}/", "--force")
    s3po("ls", f"s3://{BUCKET}/")
    print(f"\ncli session done: {count} files up, a sync that moved nothing, a gzip object read back", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    args = parser.parse_args()
    with MotoServer() as server, tempfile.TemporaryDirectory() as folder:
        make_folder(Path(folder), args.files)
        session(server.url, Path(folder), args.files)


if __name__ == "__main__":
    main()
