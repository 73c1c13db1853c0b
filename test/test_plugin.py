"""The pytest plugin s3po.testing.plugin, from a sample test module of a user, run apart.

The sample runs in a fresh pytest in a folder of its own (no conftest of this suite),
once loading the plugin through its pytest11 entry point and once with ``-p``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SAMPLE = '''
import boto3
import pytest


@pytest.mark.s3po_buckets("alpha", "beta")
def test_buckets_from_a_marker(s3po_mock):
    s3po_mock.upload("alpha", "k", b"v")
    assert s3po_mock.download("alpha", "k") == b"v"
    assert list(s3po_mock.list("beta")) == []


@pytest.mark.parametrize("s3po_mock", [["gamma"]], indirect=True)
def test_buckets_from_a_parameter(s3po_mock):
    s3po_mock.upload("gamma", "k", b"v")
    assert list(s3po_mock.list("gamma")) == ["k"]


def test_every_mock_starts_empty(s3po_mock):
    import s3po
    with pytest.raises(s3po.NotFound):
        list(s3po_mock.list("alpha"))


def test_a_real_server(s3_server):
    assert s3_server.startswith("http://127.0.0.1:")
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="y")
    client.create_bucket(Bucket="served")
    client.put_object(Bucket="served", Key="k", Body=b"over the wire")
    assert client.get_object(Bucket="served", Key="k")["Body"].read() == b"over the wire"


def test_the_server_lives_for_the_session(s3_server):
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="y")
    assert [b["Name"] for b in client.list_buckets()["Buckets"]] == ["served"]


def test_reset_empties_it(s3_server_reset):
    client = boto3.client("s3", endpoint_url=s3_server_reset, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="y")
    assert client.list_buckets()["Buckets"] == []
'''


@pytest.mark.parametrize("how", ["entry point", "-p"])
def test_the_fixtures_work_in_a_users_test_module(tmp_path, how):
    (tmp_path / "test_sample.py").write_text(textwrap.dedent(SAMPLE))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_sample.py")]
    env = dict(os.environ)
    if how == "-p":
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        command[3:3] = ["-p", "s3po.testing.plugin"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 passed" in done.stdout


def test_the_readmes_example_runs(tmp_path):
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    section = readme.partition("## A pytest plugin for your tests")[2]
    example = section.partition("```python\n")[2].partition("```")[0]
    job = ("import s3po\n\n"
           "def my_job(conn):\n"
           "    conn.upload('outbox', 'result.csv', conn.download('inbox', 'data.csv').upper())\n\n")
    (tmp_path / "test_readme.py").write_text(job + example)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_readme.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout


def test_without_the_plugin_the_fixtures_are_absent(tmp_path):
    (tmp_path / "test_sample.py").write_text("def test_x(s3po_mock):\n    pass\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:s3po",
                           str(tmp_path / "test_sample.py")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1 and "fixture 's3po_mock' not found" in done.stdout


def test_the_plugin_is_loaded_here_and_defines_only_its_own_names(pytestconfig):
    plugin = pytestconfig.pluginmanager.get_plugin("s3po")
    assert plugin is not None, "the pytest11 entry point is not installed"
    fixtures = sorted(name for name in vars(plugin) if name.startswith("s3") or name.startswith("_s3po"))
    assert fixtures == ["_s3po_moto_server", "s3_server", "s3_server_reset", "s3po_mock"]
