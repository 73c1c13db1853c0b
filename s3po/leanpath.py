"""The lean request path: s3po's hot operations signed and sent without botocore's pipeline.

PutObject, UploadPart, GetObject (Range, If-Match), HeadObject and DeleteObject are
built, signed (sigv4.py) and sent (httppool.py) here, and their answers parsed into the
same dicts botocore returns (driven by botocore's own service model), errors into the
same ClientError. Everything else, and every case this path does not reproduce
exactly, goes through the botocore client (``serves`` decides, per request):

- per Connection: ``request_path="botocore"``; a signature version other than SigV4,
  unsigned requests, no credentials; ``request_checksum_calculation="when_supported"``;
  a proxy, a client certificate or TCP keepalive in the client's config; an event
  handler the program registered on the client (from then on);
- per bucket: S3 Express directory buckets (``--x-s3``), and a bucket whose region
  differs from the client's (learned from its first redirect);
- per request: parameters outside the set serialised here (Expires, SSE-C, ...),
  header values that are not ASCII, or a body above 8 MiB (botocore sends those
  with "Expect: 100-continue", so that a refusal comes before the megabytes).

botocore stays the source of truth: credentials come from the session's provider
chain (refreshable ones are refreshed as botocore would), and each bucket's endpoint,
addressing style and signing region from a request botocore itself builds and signs,
once per bucket, and which is never sent.
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import logging
import ssl
import urllib.parse
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Optional

from ._client import BODY_DIGEST_HEADERS, EXPECT_CONTINUE_MIN_BYTES
from .httppool import Endpoint, Pool, Response, TransportError
from .sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, Signer, canonical_query, timestamp
from .units import MiB

__all__ = ["LeanPath", "OPERATIONS"]

logger = logging.getLogger(__name__)

# boto3 method -> (HTTP method, the operation's name in botocore's model).
OPERATIONS = {
    "put_object": ("PUT", "PutObject"),
    "upload_part": ("PUT", "UploadPart"),
    "get_object": ("GET", "GetObject"),
    "head_object": ("HEAD", "HeadObject"),
    "delete_object": ("DELETE", "DeleteObject"),
}

# Parameters sent as headers, as botocore serialises them (all strings).
_HEADER_PARAMS = {
    "ContentMD5": "Content-MD5",
    "ContentType": "Content-Type",
    "ContentEncoding": "Content-Encoding",
    "ContentDisposition": "Content-Disposition",
    "ContentLanguage": "Content-Language",
    "CacheControl": "Cache-Control",
    "StorageClass": "x-amz-storage-class",
    "ACL": "x-amz-acl",
    "ServerSideEncryption": "x-amz-server-side-encryption",
    "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
    "Tagging": "x-amz-tagging",
    "Range": "Range",
    "IfMatch": "If-Match",
    "ChecksumCRC64NVME": "x-amz-checksum-crc64nvme",
    "ChecksumCRC32C": "x-amz-checksum-crc32c",
    "ChecksumCRC32": "x-amz-checksum-crc32",
    "ChecksumMode": "x-amz-checksum-mode",
}
_CHECKSUM_VALUES = frozenset({"ChecksumCRC64NVME", "ChecksumCRC32C", "ChecksumCRC32"})
# Parameters sent in the query, in the order botocore writes them into the URL.
_QUERY_PARAMS = (("UploadId", "uploadId"), ("PartNumber", "partNumber"), ("VersionId", "versionId"))
_ALLOWED = {
    "put_object": {"Bucket", "Key", "Body", "Metadata", *_HEADER_PARAMS} - {"Range", "IfMatch", "ChecksumMode"},
    "upload_part": {"Bucket", "Key", "Body", "ContentMD5", "UploadId", "PartNumber", *_CHECKSUM_VALUES},
    "get_object": {"Bucket", "Key", "Range", "IfMatch", "ChecksumMode"},
    "head_object": {"Bucket", "Key", "PartNumber", "IfMatch", "ChecksumMode"},
    "delete_object": {"Bucket", "Key", "VersionId"},
}
_WITH_BODY = frozenset({"put_object", "upload_part"})
# Answers that say the bucket lives in another region than the client's.
_REDIRECT_STATUSES = frozenset({301, 307})


class _Redirected(Exception):
    """The bucket lives in another region: botocore's redirector takes the request."""


@dataclass(frozen=True)
class _Route:
    """Where one bucket's requests go, as botocore would send them."""

    endpoint: Endpoint
    prefix: str  # the URL path before the key: "/bucket/" (path style) or "/"
    region: str  # the signing region


@dataclass(frozen=True)
class Request:
    """A signed request, ready to go."""

    endpoint: Endpoint
    method: str
    target: str  # path and query, as sent
    headers: dict[str, str] = field(repr=False)  # Authorization, a session token: never in a repr
    body: Any = field(repr=False)

    @property
    def url(self) -> str:
        return self.endpoint.url + self.target


@dataclass(frozen=True)
class _Member:
    name: str
    kind: str  # the shape's type: string, integer, long, boolean, timestamp...


class LeanPath:
    """One Connection's lean request path (see the module's docstring)."""

    def __init__(self, client: Any, credentials: Any, user_agent: str, max_connections: int,
                 verify: Any) -> None:
        self._client = client
        self._credentials = credentials
        self._signer = Signer()
        self._probes: dict[str, Any] = {}
        self._routes: dict[str, Optional[_Route]] = {}
        self._outputs: dict[str, tuple[dict[str, _Member], Optional[str]]] = {}
        self._user_agent = user_agent
        config = client.meta.config
        s3_options = dict(getattr(config, "s3", None) or {})
        self._sign_payloads: Optional[bool] = s3_options.get("payload_signing_enabled")
        self._pool = Pool(size=max_connections, connect_timeout=_seconds(config.connect_timeout),
                          read_timeout=_seconds(config.read_timeout), tls=lambda: _tls_context(verify))
        self.unavailable: Optional[str] = _connection_refusal(client, credentials)
        if self.unavailable is None:
            client.meta.events.register_first("before-send.s3.HeadObject", self._stop_probes)
            _notice_handlers(client, self)

    # -- deciding -----------------------------------------------------------------------

    def serves(self, operation: str, params: Mapping[str, Any]) -> bool:
        """True when this request goes out here; False sends it through botocore."""
        if self.unavailable is not None or operation not in OPERATIONS:
            return False
        if not params.keys() <= _ALLOWED[operation]:
            return False
        if operation in _WITH_BODY and _length(params.get("Body")) > EXPECT_CONTINUE_MIN_BYTES:
            return False  # a large body goes with "Expect: 100-continue", which botocore handles
        if not all(_ascii(value) for name, value in params.items() if name in _HEADER_PARAMS):
            return False
        if "Metadata" in params and not all(_ascii(k) and _ascii(v) for k, v in params["Metadata"].items()):
            return False
        return self._route(params["Bucket"]) is not None

    def _route(self, bucket: str) -> Optional[_Route]:
        if bucket in self._routes:
            return self._routes[bucket]
        route = None
        # S3 Express directory buckets (session auth) and ARNs (access points, Object
        # Lambda, Outposts, Multi-Region: other signing services and rules): botocore's.
        if not bucket.endswith("--x-s3") and not bucket.startswith("arn:"):
            route = self._route_botocore_takes(bucket)
        self._routes[bucket] = route
        return route

    def _route_botocore_takes(self, bucket: str) -> Optional[_Route]:
        """The bucket's endpoint, addressing style and signing region, as botocore builds them.

        One HeadObject of a probe key goes through the whole botocore pipeline (endpoint
        rules, addressing, signing) and is stopped just before it would be sent
        (``_stop_probes``): what it would have sent is the route.
        """
        probe = f"s3po-route-probe-{uuid.uuid4().hex}"
        try:
            self._client.head_object(Bucket=bucket, Key=probe)
        except Exception as exc:  # no credentials, an endpoint rule that refuses: botocore's to say
            logger.debug("lean path: no route for bucket %s (%s)", bucket, exc)
            self._probes.pop(probe, None)
            return None
        request = self._probes.pop(probe, None)
        if request is None:
            return None
        parts = urllib.parse.urlsplit(request.url)
        authorization = request.headers.get("Authorization", b"")
        if isinstance(authorization, bytes):
            authorization = authorization.decode("ascii", "replace")
        credential = authorization.partition("Credential=")[2].partition(",")[0].split("/")
        if not authorization.startswith("AWS4-HMAC-SHA256 ") or len(credential) != 5 or parts.query \
                or credential[3] != "s3":  # signed for another service than the one s3po signs for
            return None
        if not parts.path.endswith(f"/{probe}"):
            return None
        return _Route(Endpoint(parts.scheme, _host_header(parts)), parts.path[:-len(probe)], credential[2])

    def _stop_probes(self, request: Any, **kwargs: Any) -> Any:
        """A before-send handler: a route probe is kept, answered here, and never sent."""
        path = urllib.parse.urlsplit(request.url).path
        marker = path.rpartition("/")[2]
        if not marker.startswith("s3po-route-probe-"):
            return None
        self._probes[marker] = request
        from botocore.awsrequest import AWSResponse

        return AWSResponse(request.url, 200, {}, _EmptyRaw())

    def forget_route(self, bucket: str) -> None:
        """Send this bucket's requests through botocore from now on (it redirected us)."""
        self._routes[bucket] = None

    # -- sending ----------------------------------------------------------------------------

    def send(self, operation: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """The answer to ``operation``, as botocore's client would return it, or its ClientError."""
        request = self.build(operation, params)
        body = request.body
        start = body.tell() if body is not None and hasattr(body, "tell") else None
        url = request.endpoint.url + request.target
        try:
            response = self._pool.request(request.endpoint, request.method, request.target, request.headers, body,
                                          lambda exc: _botocore_error(exc, url))
        except TransportError as exc:
            raise _botocore_error(exc, url) from exc
        try:
            return self._answer(OPERATIONS[operation][1], request.method, response)
        except _Redirected:
            # Another region: botocore's redirector knows what to do, and remembers it.
            self.forget_route(params["Bucket"])
            if start is not None:
                params["Body"].seek(start)
            return getattr(self._client, operation)(**params)  # type: ignore[no-any-return]

    def build(self, operation: str, params: Mapping[str, Any], now: Optional[datetime] = None) -> "Request":
        """The signed request for ``operation`` (``now`` for the signature: the clock's by default)."""
        method, _ = OPERATIONS[operation]
        route = self._route(params["Bucket"])
        assert route is not None  # serves() said so
        path = route.prefix + urllib.parse.quote(params["Key"].encode("utf-8"), safe="/~")
        query = [(query_name, urllib.parse.quote(str(params[param]), safe="-_.~"))
                 for param, query_name in _QUERY_PARAMS if param in params]
        target = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
        headers = {_HEADER_PARAMS[param]: value for param, value in params.items() if param in _HEADER_PARAMS}
        for key, value in (params.get("Metadata") or {}).items():
            headers[f"x-amz-meta-{key}"] = value
        body = params.get("Body") if operation in _WITH_BODY else None
        payload = self._payload_hash(route, operation, body, headers)
        frozen = self._credentials.get_frozen_credentials()
        amz_date = timestamp(now or datetime.now(timezone.utc))
        headers["X-Amz-Date"] = amz_date
        if frozen.token:
            headers["X-Amz-Security-Token"] = frozen.token
        headers["X-Amz-Content-SHA256"] = payload
        headers["Authorization"] = self._signer.authorization(
            method=method, host=route.endpoint.netloc, path=path, query=canonical_query(query), headers=headers,
            payload_hash=payload, amz_date=amz_date, region=route.region, access_key=frozen.access_key,
            secret_key=frozen.secret_key)
        headers["User-Agent"] = self._user_agent
        if body is not None or method in ("PUT", "DELETE"):
            headers["Content-Length"] = str(_length(body))
        return Request(route.endpoint, method, target, headers, body)

    def _payload_hash(self, route: _Route, operation: str, body: Any, headers: Mapping[str, str]) -> str:
        if body is None:
            return EMPTY_SHA256
        # As botocore's S3SigV4Auth with s3po's settings: bodies that carry a Content-MD5
        # or a checksum are not hashed again (see _client.hash_bodies_once), unless the
        # config says so.
        sign = self._sign_payloads
        if sign is None:
            sign = not any(header in headers for header in BODY_DIGEST_HEADERS)
        if not sign:
            return UNSIGNED_PAYLOAD
        if isinstance(body, (bytes, bytearray, memoryview)):
            return hashlib.sha256(body).hexdigest()
        start = body.tell()
        digest = hashlib.sha256()
        for chunk in iter(lambda: body.read(MiB), b""):
            digest.update(chunk)
        body.seek(start)
        return digest.hexdigest()

    # -- answers ------------------------------------------------------------------------------

    def _answer(self, name: str, method: str, response: Response) -> Mapping[str, Any]:
        status = response.status
        metadata = {"HTTPStatusCode": status, "HTTPHeaders": response.headers,
                    "RequestId": response.headers.get("x-amz-request-id", ""),
                    "HostId": response.headers.get("x-amz-id-2", ""), "RetryAttempts": 0}
        if status >= 301:
            body = b"" if method == "HEAD" else response.read()
            response.close()
            if status in _REDIRECT_STATUSES or (status == 400 and "x-amz-bucket-region" in response.headers):
                raise _Redirected()
            raise _client_error(status, body, metadata, name)
        members, payload = self._output(name)
        parsed: dict[str, Any] = {"ResponseMetadata": metadata}
        meta: dict[str, str] = {}
        for header, value in response.headers.items():
            member = members.get(header)
            if member is not None:
                parsed[member.name] = _value(member.kind, value)
            elif header.startswith("x-amz-meta-"):
                meta[header[len("x-amz-meta-"):]] = value
        if method in ("GET", "HEAD"):
            parsed["Metadata"] = meta
        if payload is not None:
            parsed[payload] = response
        else:
            response.read()  # PUT and DELETE answers have no body worth reading
            response.close()
        return parsed

    def _output(self, name: str) -> tuple[dict[str, _Member], Optional[str]]:
        """The operation's answer as botocore's model describes it: header -> member, and
        the member that is the streamed body."""
        known = self._outputs.get(name)
        if known is None:
            shape = self._client.meta.service_model.operation_model(name).output_shape
            members: dict[str, _Member] = {}
            payload = None
            for member_name, member in shape.members.items():
                location = member.serialization.get("location")
                if location == "header":
                    members[member.serialization.get("name", member_name).lower()] = _Member(
                        member_name, member.type_name)
                elif member.serialization.get("eventstream") or member.type_name == "blob":
                    payload = member_name
            known = self._outputs[name] = (members, payload)
        return known

    def close(self) -> None:
        self._pool.close()


class _EmptyRaw:
    """The raw body of the answer a route probe gets instead of being sent."""

    def stream(self, **kwargs: Any) -> Any:
        return iter(())


def _value(kind: str, text: str) -> Any:
    if kind in ("integer", "long"):
        return int(text)
    if kind == "boolean":
        return text.lower() == "true"
    if kind == "timestamp":
        try:
            # HTTP dates ("Tue, 01 Dec 2026 11:12:31 GMT"), fast; anything else as botocore reads it.
            return email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            from botocore.utils import parse_timestamp

            return parse_timestamp(text)
    return text


def _client_error(status: int, body: bytes, metadata: Mapping[str, Any], operation: str) -> Any:
    """The ClientError botocore raises for this answer."""
    from botocore.exceptions import ClientError

    error: dict[str, str] = {}
    if body:
        try:
            root = ElementTree.fromstring(body)
            found = root if root.tag == "Error" else root.find("Error")
            for child in found if found is not None else ():
                error[child.tag] = child.text or ""
        except ElementTree.ParseError:
            error = {}
    if not error.get("Code"):
        error = {"Code": str(status), "Message": http.client.responses.get(status, "")}
    parsed: dict[str, Any] = {"Error": error, "ResponseMetadata": dict(metadata)}
    if error.get("RequestId"):
        parsed["ResponseMetadata"]["RequestId"] = error["RequestId"]
    return ClientError(parsed, operation)


def _botocore_error(exc: TransportError, url: str) -> Any:
    """A failure below HTTP as the botocore exception that names it (so retries see it the same)."""
    from botocore import exceptions as bce

    cause = exc.cause
    if isinstance(cause, ssl.SSLError) and not isinstance(cause, ssl.SSLEOFError):
        return bce.SSLError(endpoint_url=url, error=cause)
    if isinstance(cause, TimeoutError):
        if exc.phase == "connect":
            return bce.ConnectTimeoutError(endpoint_url=url, error=cause)
        return bce.ReadTimeoutError(endpoint_url=url, error=cause)
    if exc.phase == "connect":
        return bce.EndpointConnectionError(endpoint_url=url, error=cause)
    if exc.phase == "receive":
        return bce.ResponseStreamingError(error=cause)
    return bce.ConnectionClosedError(endpoint_url=url, error=cause)


def _length(body: Any) -> int:
    if body is None:
        return 0
    if isinstance(body, (bytes, bytearray, memoryview)):
        return len(body)
    import os

    start = body.tell()
    end = body.seek(0, os.SEEK_END)
    body.seek(start)
    return int(end - start)


def _ascii(value: Any) -> bool:
    return isinstance(value, str) and value.isascii()


def _seconds(value: Any) -> float:
    return float(value) if value is not None else 60.0


def _host_header(parts: urllib.parse.SplitResult) -> str:
    """The Host header botocore signs: lower case, the port only when not the scheme's own."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def _tls_context(verify: Any) -> ssl.SSLContext:
    """TLS as botocore would set it up: its CA bundle, or the one given, or no checks."""
    from botocore.httpsession import get_cert_path

    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=get_cert_path(True if verify is None else verify))


def _connection_refusal(client: Any, credentials: Any) -> Optional[str]:
    """Why this client's requests cannot take the lean path at all, or None."""
    config = client.meta.config
    if credentials is None:
        return "no credentials (botocore says so)"
    if getattr(config, "signature_version", None) not in (None, "s3v4", "v4"):
        return f"signature version {config.signature_version!r}"
    if getattr(config, "request_checksum_calculation", None) == "when_supported":
        return "request_checksum_calculation='when_supported' (botocore adds checksums)"
    if getattr(config, "client_cert", None) or getattr(config, "tcp_keepalive", None):
        return "a client certificate or TCP keepalive in the client's config"
    from botocore.utils import get_environ_proxies

    # As botocore decides: the config's proxies, else the environment's for the endpoint
    # (whose "no" entry is NO_PROXY, not a proxy), looked up by the endpoint's scheme.
    endpoint = client.meta.endpoint_url
    proxies = getattr(config, "proxies", None) or get_environ_proxies(endpoint)
    if proxies.get(urllib.parse.urlsplit(endpoint).scheme):
        return "a proxy"
    return None


def _notice_handlers(client: Any, lean: LeanPath) -> None:
    """From the moment the program registers an event handler on the client, every request
    goes through botocore, where the handler will see it."""
    events = client.meta.events
    for name in ("register", "register_first", "register_last"):
        original = getattr(events, name)

        def register(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            lean.unavailable = "an event handler registered on the client"
            return _original(*args, **kwargs)

        setattr(events, name, register)
