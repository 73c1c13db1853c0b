"""The ``s3po`` command: the real console script, run in subprocesses against the loopback server.

Each test checks what a user sees: standard output (text or JSON lines), the one-line
errors on standard error (never a traceback for an expected failure, never a secret),
and the exit status (0 success, 1 some operation failed, 2 usage, 130 interrupted).
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time

import boto3
import pytest

from s3po_fixtures import FAKE_SECRET, MiB, endpoint_options, interruptible

S3PO = os.path.join(os.path.dirname(sys.executable), "s3po")
BUCKET = "cli-test"


def s3po(*args, url=None, stdin=None, env=None, timeout=120):
    """Run the console script; returns the CompletedProcess (text mode unless stdin is bytes)."""
    command = [S3PO, *(["--endpoint-url", url] if url else []), *map(str, args)]
    binary = isinstance(stdin, bytes)
    return subprocess.run(command, input=stdin, capture_output=True, text=not binary, timeout=timeout,
                          env={**os.environ, **(env or {})})


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_one_line_error(stderr, *words):
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("s3po:")]
    assert errors, stderr
    for word in words:
        assert any(word in line for line in errors), stderr


@pytest.fixture
def client(server_url):
    return boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b",
                        endpoint_url=server_url)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "src"
    for n in range(30):
        path = root / ("sub" if n % 3 == 0 else "") / f"file{n:02d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(100 + n * 37))
    return root


def test_a_session_up_list_sync_down_and_away(server_url, client, folder, tmp_path):
    assert s3po("mb", f"s3://{BUCKET}", url=server_url).returncode == 0
    up = s3po("cp", "-r", folder, f"s3://{BUCKET}/tree", "--json", url=server_url)
    assert up.returncode == 0, up.stderr
    records = json_lines(up.stdout)
    assert len(records) == 31 and records[-1]["summary"]["transferred"] == 30
    assert {record["operation"] for record in records[:-1]} == {"upload"}
    assert all(record["ok"] for record in records[:-1])
    listed = s3po("ls", f"s3://{BUCKET}/tree/", url=server_url)
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[-1].split() == ["PRE", "tree/sub/"] or any("PRE" in line and "tree/sub/" in line for line in lines)
    assert sum(1 for line in lines if line.rstrip().endswith(".txt")) == 20
    recursive = s3po("ls", "-r", f"s3://{BUCKET}/tree", "--json", url=server_url)
    assert len(json_lines(recursive.stdout)) == 30
    du = s3po("du", f"s3://{BUCKET}/tree", "--json", url=server_url)
    total = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert json_lines(du.stdout) == [{"url": f"s3://{BUCKET}/tree", "objects": 30, "bytes": total}]
    again = s3po("sync", folder, f"s3://{BUCKET}/tree", "--json", url=server_url)
    assert again.returncode == 0
    assert json_lines(again.stdout)[-1]["summary"]["transferred"] == 0
    out = tmp_path / "out"
    down = s3po("cp", "-r", f"s3://{BUCKET}/tree", out, url=server_url)
    assert down.returncode == 0, down.stderr
    assert sorted(p.relative_to(out) for p in out.rglob("*.txt")) == \
        sorted(p.relative_to(folder) for p in folder.rglob("*.txt"))
    assert (out / "sub" / "file00.txt").read_bytes() == (folder / "sub" / "file00.txt").read_bytes()
    resync = s3po("sync", f"s3://{BUCKET}/tree", out, "--json", url=server_url)
    assert json_lines(resync.stdout)[-1]["summary"] == {**json_lines(resync.stdout)[-1]["summary"],
                                                       "transferred": 0, "skipped": 30, "failed": 0}
    gone = s3po("rm", "-r", f"s3://{BUCKET}/tree", url=server_url)
    assert gone.returncode == 0
    assert client.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_pipes_cat_and_stat(server_url, client):
    client.create_bucket(Bucket=BUCKET)
    body = b"line\n" * 10_000
    up = s3po("cp", "-", f"s3://{BUCKET}/piped.log", "--compress", "gzip", stdin=body, url=server_url)
    assert up.returncode == 0, up.stderr
    stored = client.get_object(Bucket=BUCKET, Key="piped.log")
    assert stored["ContentEncoding"] == "gzip" and gzip.decompress(stored["Body"].read()) == body
    cat = s3po("cat", f"s3://{BUCKET}/piped.log", stdin=b"", url=server_url)
    assert cat.returncode == 0 and cat.stdout == body
    down = s3po("cp", f"s3://{BUCKET}/piped.log", "-", stdin=b"", url=server_url)
    assert down.stdout == body
    stat = s3po("stat", f"s3://{BUCKET}/piped.log", "--json", url=server_url)
    fields = json_lines(stat.stdout)[0]
    assert fields["content_encoding"] == "gzip" and fields["size"] == stored["ContentLength"]


def test_single_files_and_keys_cp_and_mv(server_url, client, tmp_path):
    client.create_bucket(Bucket=BUCKET)
    (tmp_path / "one.txt").write_bytes(b"one")
    one = s3po("cp", tmp_path / "one.txt", f"s3://{BUCKET}/in/", "--content-type", "text/x-one", "-v",
               "--retries", "1", "--part-workers", "2", url=server_url)
    assert one.returncode == 0, one.stderr
    assert one.stdout.strip() == f"upload: {tmp_path / 'one.txt'} -> s3://{BUCKET}/in/one.txt"
    stored = client.get_object(Bucket=BUCKET, Key="in/one.txt")
    assert stored["Body"].read() == b"one" and stored["ContentType"] == "text/x-one"
    profile = s3po("ls", "--profile", "no-such-profile", url=server_url)
    assert profile.returncode == 1
    assert_one_line_error(profile.stderr, "no-such-profile")
    assert s3po("cp", f"s3://{BUCKET}/in/one.txt", f"s3://{BUCKET}/copy.txt", url=server_url).returncode == 0
    assert s3po("mv", f"s3://{BUCKET}/copy.txt", tmp_path / "back.txt", url=server_url).returncode == 0
    assert (tmp_path / "back.txt").read_bytes() == b"one"
    assert "copy.txt" not in [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert s3po("mv", tmp_path / "back.txt", f"s3://{BUCKET}/moved.txt", url=server_url).returncode == 0
    assert not (tmp_path / "back.txt").exists()
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "x").write_bytes(b"x")
    (tree / "y").write_bytes(b"y")
    assert s3po("mv", "-r", tree, f"s3://{BUCKET}/moved", url=server_url).returncode == 0
    assert sorted(p.name for p in tree.rglob("*") if p.is_file()) == []
    assert s3po("mv", "-r", f"s3://{BUCKET}/moved", f"s3://{BUCKET}/again", url=server_url).returncode == 0
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == ["again/a/x", "again/y", "in/one.txt", "moved.txt"]


@pytest.mark.parametrize("scheme", ["http"])
def test_a_wildcard_lists_only_from_its_literal_prefix(proxy, tmp_path):
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b",
                          **endpoint_options(proxy.url))
    client.create_bucket(Bucket=BUCKET)
    for key in ("logs/2026-01.gz", "logs/2026-02.gz", "logs/2026-02.txt", "logs/2025-12.gz", "other"):
        client.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    proxy.clear()
    done = s3po("cp", f"s3://{BUCKET}/logs/2026-*.gz", tmp_path / "out", url=proxy.url)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["2026-01.gz", "2026-02.gz"]
    lists = [r for r in proxy.requests if r.method == "GET" and "list-type=2" in r.query]
    assert lists and all("prefix=logs%2F2026-" in r.query for r in lists), [r.query for r in lists]
    listed = s3po("ls", f"s3://{BUCKET}/logs/*.txt", url=proxy.url)
    assert [line.split()[-1] for line in listed.stdout.splitlines()] == ["logs/2026-02.txt"]
    removed = s3po("rm", f"s3://{BUCKET}/logs/2026-0?.gz", url=proxy.url)
    assert removed.returncode == 0
    assert sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]) == [
        "logs/2025-12.gz", "logs/2026-02.txt", "other"]


BAD = [
    (["ls", "s3:/b"], "s3:/b"),
    (["ls", "s3://"], "s3://"),
    (["ls", "s3://B_ad/k"], "B_ad"),
    (["cp", "s3://b_/k", "x"], "b_"),
    (["ls", "--no-such-option"], "--no-such-option"),
    (["frobnicate"], "frobnicate"),
    (["cp", "a", "b"], "s3://"),
]


def test_usage_errors_exit_2_with_one_line_naming_the_problem(server_url):
    for args, named in BAD:
        done = s3po(*args, url=server_url)
        assert done.returncode == 2, (args, done.stderr)
        assert_one_line_error(done.stderr, named)


def test_failures_exit_1_with_one_line_naming_the_url_and_the_cause(server_url, client, tmp_path):
    client.create_bucket(Bucket=BUCKET)
    missing = s3po("cat", f"s3://{BUCKET}/no/such/key", url=server_url)
    assert missing.returncode == 1
    assert_one_line_error(missing.stderr, f"s3://{BUCKET}/no/such/key", "no such key")
    (tmp_path / "f").write_bytes(b"x")
    nobucket = s3po("cp", "-r", tmp_path, "s3://no-such-bucket-x/p", "--json", url=server_url)
    assert nobucket.returncode == 1
    assert_one_line_error(nobucket.stderr, "s3://no-such-bucket-x/p/f", "no such bucket")
    records = json_lines(nobucket.stdout)
    assert records[0]["ok"] is False and records[0]["code"] == "NoSuchBucket"
    assert records[-1]["summary"]["failed"] == 1
    stat = s3po("stat", f"s3://{BUCKET}/nope", url=server_url)
    assert stat.returncode == 1 and f"s3://{BUCKET}/nope" in stat.stderr


def test_no_credentials_is_one_line_and_no_secret_is_ever_printed(server_url, client):
    client.create_bucket(Bucket=BUCKET)
    env = {name: "" for name in os.environ if name.startswith("AWS_") and "FILE" not in name}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="")
    none = subprocess.run([S3PO, "--endpoint-url", server_url, "--region", "us-east-1", "ls", f"s3://{BUCKET}"],
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in {**os.environ, **env}.items() if v != ""})
    assert none.returncode == 1
    assert_one_line_error(none.stderr, "credentials")
    secret_env = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": FAKE_SECRET}
    for args in (["cat", f"s3://{BUCKET}/missing"], ["ls", "s3://no-such-bucket-x/"], ["-v", "--json", "ls"]):
        done = s3po(*args, url=server_url, env=secret_env)
        assert FAKE_SECRET not in done.stdout + done.stderr


def test_rm_of_a_whole_bucket_needs_force(server_url, client):
    client.create_bucket(Bucket=BUCKET)
    for n in range(3):
        client.put_object(Bucket=BUCKET, Key=f"k{n}", Body=b"x")
    refused = s3po("rm", "-r", f"s3://{BUCKET}", url=server_url)
    assert refused.returncode == 2
    assert_one_line_error(refused.stderr, "--force")
    assert client.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 3
    assert s3po("rm", "-r", f"s3://{BUCKET}/", "--force", url=server_url).returncode == 0
    assert client.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_a_symlink_to_a_folder_is_a_notice_not_a_failure(server_url, client, folder, tmp_path):
    client.create_bucket(Bucket=BUCKET)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "e.txt").write_bytes(b"e")
    (folder / "lib64").symlink_to(elsewhere, target_is_directory=True)
    client.put_object(Bucket=BUCKET, Key="up/lib64/e.txt", Body=b"e")
    done = s3po("sync", "--delete", folder, f"s3://{BUCKET}/up/", url=server_url)
    assert done.returncode == 0, done.stderr
    assert "not followed" in done.stderr and str(folder / "lib64") in done.stderr
    as_json = s3po("sync", "--delete", "--json", folder, f"s3://{BUCKET}/up/", url=server_url)
    assert as_json.returncode == 0, as_json.stderr
    records = json_lines(as_json.stdout)
    assert {"notice": "not followed", "path": str(folder / "lib64"), "message": "a symlink to a folder"} in records
    assert records[-1]["summary"]["not_followed"] == 1 and records[-1]["summary"]["failed"] == 0
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET, Prefix="up/")["Contents"]]
    assert "up/lib64/e.txt" in keys and len(keys) == 31


def test_sync_delete_beyond_max_delete_needs_force_and_dry_run_changes_nothing(server_url, client, tmp_path):
    client.create_bucket(Bucket=BUCKET)
    (tmp_path / "keep").write_bytes(b"keep")
    for n in range(4):
        client.put_object(Bucket=BUCKET, Key=f"p/stale{n}", Body=b"x")
    dry = s3po("sync", tmp_path, f"s3://{BUCKET}/p", "--delete", "--dry-run", url=server_url)
    assert dry.returncode == 0
    assert dry.stdout.count("(dry run) delete") == 4 and dry.stdout.count("(dry run) upload") == 1
    assert client.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 4
    refused = s3po("sync", tmp_path, f"s3://{BUCKET}/p", "--delete", "--max-delete", "3", url=server_url)
    assert refused.returncode == 1
    assert_one_line_error(refused.stderr, "refused to delete 4", "--force")
    assert client.list_objects_v2(Bucket=BUCKET)["KeyCount"] == 5  # keep arrived, nothing deleted
    forced = s3po("sync", tmp_path, f"s3://{BUCKET}/p", "--delete", "--max-delete", "3", "--force",
                  "--json", url=server_url)
    assert forced.returncode == 0
    assert json_lines(forced.stdout)[-1]["summary"]["deleted"] == 4
    assert [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET)["Contents"]] == ["p/keep"]


def test_include_exclude_and_compare_options(server_url, client, folder):
    client.create_bucket(Bucket=BUCKET)
    done = s3po("cp", "-r", folder, f"s3://{BUCKET}/t", "--include", "*.txt", "--exclude", "sub/*",
                "--json", url=server_url)
    assert json_lines(done.stdout)[-1]["summary"]["transferred"] == 20
    same = s3po("sync", folder, f"s3://{BUCKET}/t", "--exclude", "sub/*", "--compare", "checksum", "--json",
                url=server_url)
    assert json_lines(same.stdout)[-1]["summary"]["skipped"] == 20


def test_run_executes_a_file_of_commands_together(server_url, client, tmp_path):
    client.create_bucket(Bucket=BUCKET)
    for n in range(5):
        (tmp_path / f"f{n}").write_bytes(b"x" * n)
    script = tmp_path / "commands"
    script.write_text("# a comment\n" + "".join(f"cp {tmp_path / f'f{n}'} s3://{BUCKET}/run/\n" for n in range(5))
                      + f"mb s3://{BUCKET}-two\n")
    done = s3po("run", script, "--json", url=server_url)
    assert done.returncode == 0, done.stderr
    assert len(client.list_objects_v2(Bucket=BUCKET, Prefix="run/")["Contents"]) == 5
    assert json_lines(done.stdout)[-1]["summary"]["transferred"] == 5
    piped = s3po("run", "-", stdin=f"cat s3://{BUCKET}/missing\nrm s3://{BUCKET}/run/f0\n", url=server_url)
    assert piped.returncode == 1
    assert_one_line_error(piped.stderr, f"s3://{BUCKET}/missing")
    bad = s3po("run", "-", stdin=f"rm s3://{BUCKET}/run/f1\nls s3:/oops\n", url=server_url)
    assert bad.returncode == 2 and "line 2" in bad.stderr
    assert len(client.list_objects_v2(Bucket=BUCKET, Prefix="run/")["Contents"]) == 4  # line 1 never ran


def test_progress_as_a_bar_or_as_periodic_lines(server_url, client, folder):
    client.create_bucket(Bucket=BUCKET)
    log = s3po("cp", "-r", folder, f"s3://{BUCKET}/a", "--progress", "log", url=server_url,
               env={"S3PO_PROGRESS_INTERVAL": "0"})
    assert "progress: " in log.stderr and "objects" in log.stderr and "\r" not in log.stderr
    assert "done in" in log.stderr
    bar = s3po("cp", "-r", folder, f"s3://{BUCKET}/b", "--progress", "bar", url=server_url, stdin=b"")
    assert b"\r[" in bar.stderr and b"30/30 objects" in bar.stderr and b"ETA" in bar.stderr
    quiet = s3po("cp", "-r", folder, f"s3://{BUCKET}/c", "-q", url=server_url)
    assert quiet.stderr == "" and quiet.returncode == 0


def test_python_dash_m_runs_the_same_command(server_url, client):
    client.create_bucket(Bucket=BUCKET)
    done = subprocess.run([sys.executable, "-m", "s3po", "--endpoint-url", server_url, "ls"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and f"s3://{BUCKET}" in done.stdout


@pytest.mark.parametrize("scheme", ["http"])
@pytest.mark.parametrize("how", ["cp -r", "run"])
@pytest.mark.parametrize("direction", ["up", "down"])
def test_ctrl_c_aborts_uploads_removes_temporary_files_prints_a_summary_exits_130(proxy, tmp_path, direction, how):
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b",
                          **endpoint_options(proxy.url))
    client.create_bucket(Bucket=BUCKET)
    source = tmp_path / "src"
    source.mkdir()
    for n in range(3):
        body = os.urandom(12 * MiB)
        (source / f"big{n}").write_bytes(body)
        if direction == "down":
            client.put_object(Bucket=BUCKET, Key=f"t/big{n}", Body=body)
    (source / "small").write_bytes(b"small")
    proxy.clear()
    proxy.latency_s = 1.0
    args = ["cp", "-r", source, f"s3://{BUCKET}/t"] if direction == "up" else \
        ["cp", "-r", f"s3://{BUCKET}/t", tmp_path / "out"]
    if how == "run":  # each object a line of its own, the lines run together
        lines = [f"cp {source}/big{n} s3://{BUCKET}/t/big{n}" if direction == "up" else
                 f"cp s3://{BUCKET}/t/big{n} {tmp_path}/out/big{n}" for n in range(3)]
        (tmp_path / "commands").write_text("\n".join(lines) + "\n")
        args = ["run", tmp_path / "commands"]
    process = subprocess.Popen([S3PO, "--endpoint-url", proxy.url, "--part-workers", "1", *map(str, args)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible)
    try:
        method = "PUT" if direction == "up" else "GET"
        deadline = time.monotonic() + 60
        while proxy.count(method, path_contains=f"/{BUCKET}/t/big") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "interrupted after" in err
    assert client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    if direction == "up":
        assert [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])] in ([], ["t/small"])
    else:
        left = [p.name for p in (tmp_path / "out").rglob("*")] if (tmp_path / "out").exists() else []
        assert not any("s3po-part" in name or name.startswith("big") for name in left), left


def test_a_transfer_whose_output_goes_away_stops_and_says_it_did_not_finish(server_url, client, tmp_path):
    client.create_bucket(Bucket=BUCKET)
    folder = tmp_path / "many"
    folder.mkdir()
    for n in range(300):
        (folder / f"f{n:03d}").write_bytes(b"x" * 100)
    command = f"{S3PO} --endpoint-url {server_url} cp -r --json {folder} s3://{BUCKET}/p | head -1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert len(done.stdout.splitlines()) == 1 and "never looked at" not in done.stderr
