"""The only place that builds a boto3 S3 client and its botocore Config."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, Optional

from .units import MiB

if TYPE_CHECKING:
    import boto3
    from botocore.config import Config

__all__ = [
    "BODY_DIGEST_HEADERS",
    "build_client",
    "check_client_arguments",
    "client_config",
    "credentials_for",
    "hash_bodies_once",
    "new_session",
    "refuse_short_bodies",
    "tls_verify",
]

# Keywords of boto3's Session.client that s3po passes through unchanged.
CLIENT_KEYWORDS = frozenset(
    {
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        "config",
        "endpoint_url",
        "region_name",
        "use_ssl",
        "verify",
        "api_version",
        "aws_account_id",
    }
)

_CHECKSUM_ENV = {
    "request_checksum_calculation": "AWS_REQUEST_CHECKSUM_CALCULATION",
    "response_checksum_validation": "AWS_RESPONSE_CHECKSUM_VALIDATION",
}


def check_client_arguments(session: Any, client_kwargs: dict[str, Any]) -> None:
    """TypeError for client arguments boto3 would refuse, without importing boto3 or ssl.

    A Connection is often made at import time, before the program monkey-patches: so
    nothing here imports botocore. A Config or Session the caller made means its module
    is loaded already, which is all the type checks need.
    """
    unknown = set(client_kwargs) - CLIENT_KEYWORDS
    if unknown:
        raise TypeError(
            f"unexpected keyword argument(s) {', '.join(sorted(unknown))}; "
            f"Connection passes only boto3 client keywords: {', '.join(sorted(CLIENT_KEYWORDS))}"
        )
    config = client_kwargs.get("config")
    config_module = sys.modules.get("botocore.config")
    if config is not None and (config_module is None or not isinstance(config, config_module.Config)):
        raise TypeError(f"config must be a botocore.config.Config, not {type(config).__name__}")
    session_module = sys.modules.get("boto3.session")
    if session is not None and (session_module is None or not isinstance(session, session_module.Session)):
        raise TypeError(f"session must be a boto3.session.Session, not {type(session).__name__}")


def client_config(user_config: Optional["Config"], max_connections: int) -> "Config":
    """s3po's botocore Config, with the user's settings layered on top.

    - Retries: botocore sends each request exactly once (``total_max_attempts=1``; its
      ``max_attempts=1`` would still send two). s3po's RetryPolicy does all retrying,
      so the two layers never multiply. A user's ``retries`` setting is overridden for
      that reason; use ``Connection(retries=...)`` instead.
    - Checksums: boto3 >= 1.36 sends CRC checksums on every upload by default, which
      many S3-compatible stores reject. s3po asks for them only when an operation
      requires one (``when_required``) and checks integrity itself with MD5 and ETags.
      A Config or environment variable that sets either knob wins.
    - Connection pool: at least ``max_connections``, so concurrent calls never see
      "Connection pool is full" nor pay for new handshakes.
    """
    from botocore.config import Config

    if user_config is not None and not isinstance(user_config, Config):
        raise TypeError(f"config must be a botocore.config.Config, not {type(user_config).__name__}")
    user_options = dict(getattr(user_config, "_user_provided_options", {}) or {})
    options: dict[str, Any] = {}
    for option, env_var in _CHECKSUM_ENV.items():
        if option not in user_options and not os.environ.get(env_var):
            options[option] = "when_required"
    merged = Config(**options)
    if user_config is not None:
        merged = merged.merge(user_config)
    pool = max(max_connections, user_options.get("max_pool_connections") or 0)
    return merged.merge(
        Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=pool,
        )
    )


def new_session(session: Optional["boto3.session.Session"]) -> "boto3.session.Session":
    """``session``, or a new one following boto3's credential chain."""
    import boto3  # here, not at the top: see check_client_arguments

    # A fresh Session, not boto3's module-level default: Sessions are not safe to share
    # between threads while clients are being created.
    return session if session is not None else boto3.session.Session()


def build_client(
    session: Optional["boto3.session.Session"],
    max_connections: int,
    client_kwargs: dict[str, Any],
) -> Any:
    """A boto3 S3 client for ``session`` (default: boto3's credential chain)."""
    check_client_arguments(session, client_kwargs)
    kwargs = dict(client_kwargs)
    config = client_config(kwargs.pop("config", None), max_connections)
    client = new_session(session).client("s3", config=config, **kwargs)
    skip_expect_continue(client)
    refuse_short_bodies(client)
    hash_bodies_once(client)
    return client


def credentials_for(session: "boto3.session.Session", client_kwargs: dict[str, Any]) -> Any:
    """The credentials a client made with ``client_kwargs`` signs with, refreshable ones
    included: given keys win, as in boto3; otherwise the session's provider chain."""
    if client_kwargs.get("aws_access_key_id") and client_kwargs.get("aws_secret_access_key"):
        from botocore.credentials import Credentials

        return Credentials(client_kwargs["aws_access_key_id"], client_kwargs["aws_secret_access_key"],
                           client_kwargs.get("aws_session_token"))
    return session.get_credentials()


def tls_verify(session: "boto3.session.Session", client_kwargs: dict[str, Any]) -> Any:
    """What the client verifies certificates with: ``verify=``, else the session's CA bundle."""
    verify = client_kwargs.get("verify")
    if verify is not None:
        return verify
    core = getattr(session, "_session", None)  # botocore's session behind boto3's
    return core.get_config_variable("ca_bundle") if core is not None else None


# Bodies up to this size go out without "Expect: 100-continue".
EXPECT_CONTINUE_MIN_BYTES = 8 * MiB


def skip_expect_continue(client: Any) -> None:
    """Stop ``client`` from sending "Expect: 100-continue" with small bodies.

    botocore turns every PutObject and UploadPart body into a file object and then
    asks the server for permission before sending it: a whole round trip per request,
    which for a small object costs more than sending the body outright. Large bodies
    keep the header, so a server that refuses them does so before megabytes go out.
    Registered on this client's own event hooks, so no other client is affected.
    """
    # botocore adds the header from a handler on "before-call.s3"; a handler on the
    # same event, registered last, runs after it (a more specific event would run first).
    client.meta.events.register_last("before-call.s3", _drop_expect_for_small_bodies)


def _drop_expect_for_small_bodies(params: dict[str, Any], **kwargs: Any) -> None:
    from botocore.utils import determine_content_length

    if "Expect" not in params.get("headers", {}):
        return
    size = determine_content_length(params.get("body"))
    if size is not None and size <= EXPECT_CONTINUE_MIN_BYTES:
        del params["headers"]["Expect"]


def refuse_short_bodies(client: Any) -> None:
    """Make ``client`` raise on a response body shorter than its Content-Length.

    When a connection drops right after the headers of a 200, botocore reads an empty
    body and parses it as an empty answer: a listing with no keys, a completed
    multipart upload with no ETag, a DeleteObjects that deleted nothing, all without
    an error. IncompleteReadError is transient, so s3po retries instead.
    (Streamed GET bodies are counted where they are read.)
    """
    client.meta.events.register("before-parse.s3", _check_body_length)


def _check_body_length(operation_model: Any, response_dict: dict[str, Any], **kwargs: Any) -> None:
    body = response_dict.get("body")
    if not isinstance(body, (bytes, bytearray)) or operation_model.http.get("method") == "HEAD":
        return
    declared = response_dict.get("headers", {}).get("content-length")
    if declared is None or not declared.isdigit() or len(body) == int(declared):
        return
    from botocore.exceptions import IncompleteReadError

    raise IncompleteReadError(actual_bytes=len(body), expected_bytes=int(declared))


# The uploads s3po always sends with a digest of their body.
_DIGEST_CARRYING_OPERATIONS = ("PutObject", "UploadPart")
# The headers that carry one: a Content-MD5, or a CRC the store verifies.
BODY_DIGEST_HEADERS = ("Content-MD5", "x-amz-checksum-crc64nvme", "x-amz-checksum-crc32c", "x-amz-checksum-crc32")


def hash_bodies_once(client: Any) -> None:
    """Sign s3po's upload bodies by their Content-MD5 or checksum alone, not by a SHA-256 as well.

    Over HTTPS botocore already sends ``UNSIGNED-PAYLOAD`` when a request carries a
    Content-MD5; over plain HTTP (local and self-hosted stores) it hashes every body
    with SHA-256 too, which costs more than the digest itself, and the server as much
    again. The signed digest header binds the body to the signature just as well: the
    server refuses a body that does not match it. A ``payload_signing_enabled`` set in
    the caller's ``Config(s3=...)`` is left to decide.
    """
    s3_options = dict(getattr(client.meta.config, "s3", None) or {})
    if "payload_signing_enabled" in s3_options:
        return
    from botocore.config import Config

    unsigned = client.meta.config.merge(Config(s3={**s3_options, "payload_signing_enabled": False}))

    def sign_by_digest(request: Any, **kwargs: Any) -> None:
        if any(header in request.headers for header in BODY_DIGEST_HEADERS):
            request.context["client_config"] = unsigned

    for operation in _DIGEST_CARRYING_OPERATIONS:
        client.meta.events.register(f"before-sign.s3.{operation}", sign_by_digest)
