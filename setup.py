"""Packaging for s3po: the metadata lives here; pyproject.toml names the build backend."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "s3po" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="s3po",
    version=VERSION,
    description="Your friendly neighborhood S3 helper: fast, safe, testable S3 from synchronous Python",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["s3po", "s3po.*"]),
    package_data={"s3po": ["py.typed"]},
    install_requires=[
        "boto3>=1.36",
        "botocore>=1.36",
        "gevent>=23.9",
    ],
    entry_points={
        "console_scripts": ["s3po = s3po.cli:run"],
        "pytest11": ["s3po = s3po.testing.plugin"],
    },
    extras_require={
        "mock": ["moto>=5.0"],
        # CRC64NVME and CRC32C at memory speed (AWS's C runtime, at the version botocore
        # pins for itself); without it s3po computes CRC32 with zlib.
        "crt": ["botocore[crt]"],
        # s3po.dask: jobs over a whole bucket on a Dask cluster.
        "dask": ["dask>=2024.1", "distributed>=2024.1"],
        "test": [
            "botocore[crt]",
            "dask>=2024.1",
            "distributed>=2024.1",
            "moto[server]>=5.0",
            "mypy>=1.10",
            "pytest>=7",
            "pytest-cov>=4",
            "trustme>=1.0",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Topic :: System :: Archiving",
        "Typing :: Typed",
    ],
)
