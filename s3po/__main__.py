"""``python -m s3po``: the command line (see s3po.cli)."""

from gevent import monkey

monkey.patch_all()  # before anything imports ssl or sockets

from s3po.cli import run  # noqa: E402  (after patching, on purpose)

run()
