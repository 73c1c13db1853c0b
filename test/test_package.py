"""The package's surface: exports, logging etiquette, typing marker, light import."""

import logging
import os
import subprocess
import sys

import s3po


def test_all_is_sorted_complete_and_importable():
    assert list(s3po.__all__) == sorted(s3po.__all__)
    public = {name for name in vars(s3po) if not name.startswith("_") and not _is_module(getattr(s3po, name))}
    assert public == set(s3po.__all__) - {"__version__"}
    for name in s3po.__all__:
        assert hasattr(s3po, name)


def _is_module(value):
    return type(value).__name__ == "module"


def test_what_a_user_handles_is_exported():
    """The types a program meets (handles, records, streams, errors) can be named from s3po."""
    conn = s3po.Connection(region_name="us-east-1")
    with conn.mock(buckets=["bkt"]):
        with conn.batch(2) as batch:
            handle = batch.upload("bkt", "k", b"x")
        assert isinstance(batch, s3po.Batch) and isinstance(handle, s3po.Call)
        with conn.batch(2) as batch:
            batch.download("bkt", "missing")
        assert isinstance(batch.errors()[0], s3po.CallError)
        with conn.open("bkt", "k") as stream:
            assert isinstance(stream, s3po.ObjectStream)
        assert all(isinstance(entry, (s3po.Key, s3po.Prefix)) for entry in conn.entries("bkt"))


def test_the_package_logger_has_only_a_null_handler():
    handlers = logging.getLogger("s3po").handlers
    assert len(handlers) == 1 and isinstance(handlers[0], logging.NullHandler)


def test_py_typed_is_shipped():
    assert os.path.exists(os.path.join(os.path.dirname(s3po.__file__), "py.typed"))


def test_exceptions_form_one_hierarchy():
    for cls in (s3po.UploadException, s3po.DownloadException, s3po.DeleteException, s3po.BatchError,
                s3po.NotFound, s3po.Cancelled):
        assert issubclass(cls, s3po.S3POException)


def test_import_is_light_and_patches_nothing():
    """`import s3po` pulls in no boto3, ssl or moto, and monkey-patches nothing.

    That is what lets a program import s3po first and monkey-patch afterwards (gevent
    itself imports no ssl: importing it before patching is how patching is done).
    """
    code = (
        "import sys, socket\n"
        "original = socket.socket\n"
        "import s3po\n"
        "heavy = [m for m in ('boto3', 'botocore', 'ssl', 'urllib3', 'moto') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert socket.socket is original\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_creating_a_connection_does_not_monkey_patch():
    code = (
        "import sys, s3po\n"
        "from gevent import monkey\n"
        "conn = s3po.Connection(region_name='us-east-1')\n"
        "conn.batch(4).close()\n"
        "assert 'ssl' not in sys.modules, 'a Connection must not build its client before first use'\n"
        "assert not monkey.is_module_patched('socket')\n"
        "assert not monkey.is_module_patched('threading')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
