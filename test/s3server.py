"""The test environment for moto's standalone server: fake credentials, no developer config.

The server itself is s3po.testing.server.MotoServer, which `make demo` uses too.
"""

from __future__ import annotations

import os

from s3po.testing.server import HOST, MotoServer, free_port

__all__ = ["FAKE_AWS_ENVIRONMENT", "MotoServer", "free_port", "isolated_aws_environment",
           "isolated_moto_server"]

# Everything botocore reads from the environment that could point a test at a
# developer's real account, profile or endpoint. They are removed, then the
# fake credentials below are set, so the credential chain stops at the
# environment and never reaches ~/.aws, a container or the instance metadata.
_DEVELOPER_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_REQUEST_CHECKSUM_CALCULATION",
    "AWS_RESPONSE_CHECKSUM_VALIDATION",
)

FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Unsetting AWS_CONFIG_FILE would fall back to ~/.aws/config, so point
    # both files at something empty instead.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def isolated_aws_environment(environ: dict[str, str] | os._Environ) -> dict[str, str]:
    """Return a copy of `environ` with fake AWS credentials and no developer AWS config.

    Loopback is also added to NO_PROXY: botocore (and urllib) honour
    HTTP_PROXY, and a developer's proxy must not sit between a test and
    127.0.0.1.
    """
    env = {k: v for k, v in environ.items() if k not in _DEVELOPER_AWS_VARIABLES}
    env.update(FAKE_AWS_ENVIRONMENT)
    for name in ("NO_PROXY", "no_proxy"):
        hosts = [h for h in env.get(name, "").split(",") if h]
        env[name] = ",".join(hosts + [h for h in (HOST, "localhost") if h not in hosts])
    return env


def isolated_moto_server() -> MotoServer:
    """A MotoServer (not yet started) whose environment has only fake credentials."""
    return MotoServer(env=isolated_aws_environment(os.environ))
