"""The package's surface: exports, logging etiquette, typing marker, light import."""

import logging
import os
import subprocess
import sys

import s3po


def test_all_is_sorted_complete_and_importable():
    assert list(s3po.__all__) == sorted(s3po.__all__)
    public = {name for name in vars(s3po) if not name.startswith("_") and name[0].isupper()}
    assert public <= set(s3po.__all__)
    for name in s3po.__all__:
        assert hasattr(s3po, name)


def test_the_package_logger_has_only_a_null_handler():
    handlers = logging.getLogger("s3po").handlers
    assert len(handlers) == 1 and isinstance(handlers[0], logging.NullHandler)


def test_py_typed_is_shipped():
    assert os.path.exists(os.path.join(os.path.dirname(s3po.__file__), "py.typed"))


def test_exceptions_form_one_hierarchy():
    assert issubclass(s3po.NotFound, s3po.DownloadException)
    for cls in (s3po.UploadException, s3po.DownloadException, s3po.DeleteException, s3po.BatchError):
        assert issubclass(cls, s3po.S3POException)


def test_import_is_light_and_patches_nothing():
    """`import s3po` pulls in no boto3, ssl, gevent or moto, and monkey-patches nothing.

    That is what lets a program import s3po first and monkey-patch afterwards.
    """
    code = (
        "import sys, socket\n"
        "original = socket.socket\n"
        "import s3po\n"
        "heavy = [m for m in ('boto3', 'botocore', 'ssl', 'gevent', 'urllib3', 'moto') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert socket.socket is original\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_creating_a_connection_does_not_monkey_patch():
    code = (
        "import s3po\n"
        "from gevent import monkey\n"
        "s3po.Connection(region_name='us-east-1').batch(4).close()\n"
        "assert not monkey.is_module_patched('socket')\n"
        "assert not monkey.is_module_patched('threading')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
