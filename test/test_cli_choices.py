"""The ``s3po`` command's choices, run in this process (``main(argv)``) against the loopback server.

Which keys a URL names (and ``--include``/``--exclude`` with it), the options of each
line of ``run``, options a command does not take, and failures that must be one
line with the right exit status. The console script itself, in subprocesses, is
test_cli.py's; here each command costs milliseconds.
"""

from __future__ import annotations

import json
import os

import boto3
import pytest
from s3po_fixtures import endpoint_options

import s3po
from s3po.cli.app import main

BUCKET = "cli-choices"


@pytest.fixture
def client(server_url):
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b",
                          endpoint_url=server_url)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def s3po_cli(server_url, capsys):
    """``s3po_cli(*args)`` runs the command; returns (status, stdout, stderr)."""

    def run(*args, url=server_url):
        capsys.readouterr()
        status = main(["--endpoint-url", url, "--progress", "none", *map(str, args)])
        out, err = capsys.readouterr()
        assert "Traceback" not in err
        return status, out, err

    return run


def put(client, *keys):
    for key in keys:
        client.put_object(Bucket=BUCKET, Key=key, Body=key.encode())


def keys(client, prefix=""):
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def summary(out):
    return json.loads(out.splitlines()[-1])["summary"]


def test_rm_r_deletes_only_what_include_and_exclude_choose(s3po_cli, client):
    put(client, "p/a.tmp", "p/b.keep", "p/c.keep", "p/d.tmp")
    status, out, _ = s3po_cli("rm", "-r", f"s3://{BUCKET}/p/", "--exclude", "*.keep", "--dry-run")
    assert status == 0 and out.count("(dry run) delete") == 2 and ".keep" not in out
    status, out, _ = s3po_cli("rm", "-r", f"s3://{BUCKET}/p/", "--exclude", "*.keep", "--json")
    assert status == 0 and summary(out)["deleted"] == 2
    assert keys(client) == ["p/b.keep", "p/c.keep"]
    assert s3po_cli("rm", "-r", f"s3://{BUCKET}/p", "--include", "b*")[0] == 0
    assert keys(client) == ["p/c.keep"]


def test_a_prefix_without_a_slash_is_a_folder_for_rm_du_and_ls(s3po_cli, client):
    put(client, "logs/a", "logs/b", "logs-archive/keep", "logsfile.txt")
    status, out, _ = s3po_cli("du", f"s3://{BUCKET}/logs", "--json")
    assert status == 0 and json.loads(out)["objects"] == 2
    status, out, _ = s3po_cli("ls", "-r", f"s3://{BUCKET}/logs")
    assert [line.split()[-1] for line in out.splitlines()] == ["logs/a", "logs/b"]
    assert s3po_cli("rm", "-r", f"s3://{BUCKET}/logs")[0] == 0
    assert keys(client) == ["logs-archive/keep", "logsfile.txt"]


def test_a_wildcard_over_the_whole_bucket_needs_force(s3po_cli, client):
    put(client, "dir1/k1", "dir2/k2", "k3.tmp")
    for url in (f"s3://{BUCKET}/*", f"s3://{BUCKET}/*.tmp"):
        status, _, err = s3po_cli("rm", url)
        assert status == 2 and "--force" in err
    assert len(keys(client)) == 3
    assert s3po_cli("rm", f"s3://{BUCKET}/*.tmp", "--force")[0] == 0
    assert keys(client) == ["dir1/k1", "dir2/k2"]


def test_a_wildcard_and_include_narrow_each_other(s3po_cli, client, tmp_path):
    put(client, "logs/a.gz", "logs/b.txt", "logs/c.csv", "logs/d.gz")
    status, _, _ = s3po_cli("cp", f"s3://{BUCKET}/logs/*.gz", tmp_path / "out", "--include", "a*")
    assert status == 0 and sorted(os.listdir(tmp_path / "out")) == ["a.gz"]
    status, out, _ = s3po_cli("ls", f"s3://{BUCKET}/logs/*.gz", "--exclude", "d*")
    assert [line.split()[-1] for line in out.splitlines()] == ["logs/a.gz"]


def test_each_line_of_run_has_its_own_options(s3po_cli, client, tmp_path):
    folder = tmp_path / "t"
    folder.mkdir()
    for name in ("f1.txt", "f2.txt", "x.tmp"):
        (folder / name).write_text(name)
    put(client, "synced/stale")
    script = tmp_path / "commands"
    script.write_text(f'cp -r --dry-run --exclude "*.tmp" {folder} s3://{BUCKET}/dry/\n'
                      f'cp -r --exclude "*.tmp" --content-type text/x-run {folder} s3://{BUCKET}/real/\n'
                      f"sync --delete {folder} s3://{BUCKET}/synced/\n")
    status, out, err = s3po_cli("run", script)
    assert status == 0, err
    assert out.count("(dry run) upload") == 2
    assert keys(client) == ["real/f1.txt", "real/f2.txt", "synced/f1.txt", "synced/f2.txt", "synced/x.tmp"]
    assert client.head_object(Bucket=BUCKET, Key="real/f1.txt")["ContentType"] == "text/x-run"
    # Options of the run itself are the lines' defaults, where a line's command takes them.
    script.write_text(f"cp -r {folder} s3://{BUCKET}/inherited/\nls s3://{BUCKET}/\n")
    status, out, err = s3po_cli("run", script, "--dry-run", "--exclude", "*.txt")
    assert status == 0, err
    assert out.count("(dry run) upload") == 1 and keys(client, "inherited/") == []


def test_what_deletes_more_than_a_line_names_is_never_filled_in_by_the_run(s3po_cli, client, tmp_path):
    put(client, "k", "k/below", "other")
    script = tmp_path / "commands"
    script.write_text(f"rm s3://{BUCKET}/*\n")
    status, _, err = s3po_cli("run", "--force", script)
    assert status == 2 and "--force" in err
    assert keys(client) == ["k", "k/below", "other"]
    for option in ("--delete", "--max-delete"):
        status, _, err = s3po_cli("run", option, *(["5"] if option == "--max-delete" else []), script)
        assert status == 2 and option in err
    put(client, "j", "j/below")
    script.write_text(f"mv s3://{BUCKET}/j s3://{BUCKET}/moved\nrm s3://{BUCKET}/k\n")
    status, _, err = s3po_cli("run", "-r", script)
    assert status == 0, err
    assert keys(client) == ["j/below", "k/below", "moved", "other"]  # the keys named, not what is below them


@pytest.mark.parametrize("line", ["cp - s3://{b}/piped", "cp s3://{b}/k -"])
def test_a_line_of_run_cannot_use_standard_input_or_output(s3po_cli, client, tmp_path, line):
    put(client, "k")
    script = tmp_path / "commands"
    script.write_text(f"mb s3://{BUCKET}-made\n" + line.format(b=BUCKET) + "\n")
    status, _, err = s3po_cli("run", script)
    assert status == 2 and "line 2" in err and "'-'" in err
    assert keys(client) == ["k"]
    assert f"{BUCKET}-made" not in [b["Name"] for b in client.list_buckets()["Buckets"]]  # nothing ran


@pytest.mark.parametrize("line", ["ls -j 4 s3://{b}/", "ls --endpoint-url http://127.0.0.1:9 s3://{b}/",
                                  "ls --json s3://{b}/", "cat --recursive s3://{b}/k"])
def test_a_line_of_run_cannot_set_what_belongs_to_the_whole_run(s3po_cli, client, tmp_path, line):
    script = tmp_path / "commands"
    script.write_text(f"mb s3://{BUCKET}-made\n" + line.format(b=BUCKET) + "\n")
    status, _, err = s3po_cli("run", script)
    assert status == 2 and "line 2" in err
    assert f"{BUCKET}-made" not in [b["Name"] for b in client.list_buckets()["Buckets"]]  # nothing ran


@pytest.mark.parametrize("args", [
    ["cat", "--recursive", "s3://{b}/k"],
    ["stat", "--dry-run", "s3://{b}/k"],
    ["cp", "--delete", "{f}", "s3://{b}/k"],
    ["cp", "{f}", "s3://{b}/k", "--include", "*.txt"],
    ["cp", "s3://{b}/k", "{f}.back", "--compress", "gzip"],
    ["rm", "s3://{b}/k", "--exclude", "k"],
    ["ls", "s3://{b}/", "--include", "k"],
    ["cp", "-r", "s3://{b}/a/", "s3://{b}/a/sub/"],
    ["rm", "--force", "s3://{b}/k"],
    ["sync", "--max-delete", "5", "s3://{b}/a/", "{f}.back"],
    ["sync", "--force", "s3://{b}/a/", "{f}.back"],
])
def test_options_a_command_would_ignore_are_refused(s3po_cli, client, tmp_path, args):
    put(client, "k", "a/x")
    (tmp_path / "f").write_text("f")
    status, _, err = s3po_cli(*[arg.format(b=BUCKET, f=tmp_path / "f") for arg in args])
    errors = [line for line in err.splitlines() if line.startswith("s3po:")]
    assert status == 2 and len(errors) == 1 and errors[0].startswith("s3po: usage error:"), err
    assert keys(client) == ["a/x", "k"] and not (tmp_path / "f.back").exists()


def test_a_run_file_that_is_not_utf8_is_a_usage_error_naming_the_line(s3po_cli, client, tmp_path):
    script = tmp_path / "commands"
    script.write_bytes(f"ls s3://{BUCKET}/\n".encode() + b"cp caf\xe9 s3://x/\n")
    status, _, err = s3po_cli("run", script)
    assert status == 2 and "line 2" in err and "UTF-8" in err


def test_a_listing_out_of_order_is_one_line_and_exit_1(s3po_cli, client, tmp_path, monkeypatch):
    put(client, "t/a", "t/b")
    listed = s3po.Connection.objects
    monkeypatch.setattr(s3po.Connection, "objects",
                        lambda self, *args, **kwargs: iter(reversed(list(listed(self, *args, **kwargs)))))
    status, _, err = s3po_cli("cp", "-r", f"s3://{BUCKET}/t", tmp_path / "out")
    assert status == 1 and "byte order" in err


def test_mb_and_a_pipe_honour_dry_run(s3po_cli, client):
    status, out, _ = s3po_cli("mb", f"s3://{BUCKET}-dry", "--dry-run")
    assert status == 0 and "(dry run) mb" in out
    assert f"{BUCKET}-dry" not in [b["Name"] for b in client.list_buckets()["Buckets"]]
    status, out, _ = s3po_cli("cp", "-", f"s3://{BUCKET}/piped", "--dry-run")
    assert status == 0 and "(dry run) upload" in out and keys(client) == []


def test_mv_r_deletes_each_source_as_it_arrives_and_counts_it(s3po_cli, client, tmp_path):
    put(client, *(f"m/{n}" for n in range(5)))
    status, out, _ = s3po_cli("mv", "-r", f"s3://{BUCKET}/m", f"s3://{BUCKET}/moved", "--json")
    assert status == 0
    records = [json.loads(line) for line in out.splitlines()]
    assert summary(out)["transferred"] == 5 and summary(out)["deleted"] == 5
    assert sorted(r["destination"] for r in records if r.get("operation") == "delete") == [
        f"s3://{BUCKET}/m/{n}" for n in range(5)]
    assert keys(client) == [f"moved/{n}" for n in range(5)]


def test_mv_r_to_a_folder_takes_folder_markers_too(s3po_cli, client, tmp_path):
    put(client, "m/a", "m/dir/", "m/dir/b", "m/empty/")
    (tmp_path / "out" / "dir").mkdir(parents=True)  # one folder is there already
    status, _, err = s3po_cli("mv", "-r", f"s3://{BUCKET}/m", tmp_path / "out")
    assert status == 0, err
    assert keys(client) == []
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")) == [
        "a", "dir", "dir/b", "empty"]


def test_rm_du_and_ls_r_show_progress(s3po_cli, client, server_url, capsys, monkeypatch):
    monkeypatch.setenv("S3PO_PROGRESS_INTERVAL", "0")
    put(client, "p/a", "p/b")
    for args in (["du", f"s3://{BUCKET}/p"], ["ls", "-r", f"s3://{BUCKET}/p"], ["rm", "-r", f"s3://{BUCKET}/p"]):
        capsys.readouterr()
        assert main(["--endpoint-url", server_url, "--progress", "log", *args]) == 0
        assert "progress: " in capsys.readouterr().err, args


@pytest.mark.parametrize("scheme", ["http"])
def test_ls_of_the_buckets_is_retried_as_every_call_is(s3po_cli, proxy):
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b",
                          **endpoint_options(proxy.url))
    client.create_bucket(Bucket=BUCKET)
    proxy.clear()
    proxy.add_fault("status", count=1, method="GET", status=500, code="InternalError")
    status, out, err = s3po_cli("ls", url=proxy.url)
    assert status == 0 and f"s3://{BUCKET}" in out, err
