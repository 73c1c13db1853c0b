"""The public surface keeps its types: mypy --strict on the package and on a typed program.

mypy does not follow setuptools' editable installs, so it runs from the repository
root, where ``s3po/`` is found as a folder.
"""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TYPING = os.path.join("test", "typing")

pytest.importorskip("mypy")


def mypy(*paths):
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--ignore-missing-imports",
                           "--no-incremental", *paths],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_package_and_a_typed_program_pass_mypy_strict():
    result = mypy("s3po", os.path.join(TYPING, "typed_program.py"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_misspelt_keyword_is_refused():
    result = mypy(os.path.join(TYPING, "misspelt_keyword.py"))
    assert result.returncode == 1
    assert 'Unexpected keyword argument "hedaers"' in result.stdout, result.stdout


def test_the_typed_program_runs():
    subprocess.run([sys.executable, os.path.join(TYPING, "typed_program.py")], cwd=ROOT, check=True,
                   timeout=120)
