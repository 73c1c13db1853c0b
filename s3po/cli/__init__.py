"""The ``s3po`` command line: an application, so it is the one part of s3po that monkey-patches.

``run`` (the console script) and ``python -m s3po`` patch with gevent first, then import
the rest: transfers run as greenlets on gevent's sockets, the fastest way s3po has to keep
many small requests in flight. ``import s3po`` never patches; importing this package
does not either, only running the command does.
"""


def run() -> None:
    """The console script ``s3po``."""
    import gevent
    from gevent import monkey

    monkey.patch_all()  # a second call (after ``python -m s3po``'s) changes nothing
    hub = gevent.get_hub()
    # Ctrl-C is the command's to report (a summary, exit 130), not the hub's to print.
    hub.NOT_ERROR = (*hub.NOT_ERROR, KeyboardInterrupt)

    import sys

    from .app import main

    sys.exit(main())
