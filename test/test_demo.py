"""`make demo` runs a command-line session and the library's main job against an embedded server."""

import os
import subprocess
import sys

DEMO = os.path.join(os.path.dirname(__file__), "..", "demo", "demo.py")
CLI_SESSION = os.path.join(os.path.dirname(__file__), "..", "demo", "cli_session.py")


def test_demo_runs_end_to_end():
    result = subprocess.run([sys.executable, DEMO], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "uploaded gzip" in out
    assert "downloaded and verified all three" in out
    assert "bulk: 500 objects" in out
    assert out.rstrip().endswith("done")


def test_the_command_line_session_runs_end_to_end():
    # Fewer files than `make demo`'s 2,000: the same commands, quicker.
    result = subprocess.run([sys.executable, CLI_SESSION, "--files", "300"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for command in ("$ s3po mb", "$ s3po cp -r", "$ s3po ls", "$ s3po du", "$ s3po sync", "$ s3po cat",
                    "$ s3po rm -r"):
        assert command in out, out
    assert "300 transferred" in out  # the upload
    assert "0 transferred" in out and "300 skipped" in out  # the sync that moves nothing
    assert "2026-01-01 request 1999 ok" in out  # the gzip object, decompressed
    assert "in 300 objects" in out
    assert out.rstrip().endswith("a gzip object read back")
