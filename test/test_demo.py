"""`make demo` runs the main job end to end against an embedded server."""

import os
import subprocess
import sys

DEMO = os.path.join(os.path.dirname(__file__), "..", "demo", "demo.py")


def test_demo_runs_end_to_end():
    result = subprocess.run([sys.executable, DEMO], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "uploaded gzip" in out
    assert "downloaded and verified all three" in out
    assert "bulk: 500 objects" in out
    assert out.rstrip().endswith("done")
