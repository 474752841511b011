"""STS over its Query protocol without a botocore client: the transport of the credential path
(and of doctor's one IAM call, ListMFADevices, which speaks the same protocol).

A botocore client costs its service model, its endpoint data and its event machinery, most
of a cold elevation, for two or three calls. Here each call is signed by botocore's own
SigV4Auth and sent with http.client, and every rule that decides where and how it goes is
botocore's, taken from the modules botocore.auth imports anyway:

- the endpoint: AWS_ENDPOINT_URL_STS (_IAM), AWS_ENDPOINT_URL, endpoint_url in the config's default
  profile or its services section (botocore's ConfiguredEndpointProvider), else STS's endpoint
  rule set with the region and use_fips_endpoint / use_dualstack_endpoint; regional, as the
  client elevate made before was (sts_regional_endpoints = regional); IAM's global endpoint
  from IAM's rule set;
- TLS, always verified: AWS_CA_BUNDLE, the profile's ca_bundle, REQUESTS_CA_BUNDLE, else
  botocore's CA bundle, in botocore's order;
- proxies: HTTPS_PROXY / HTTP_PROXY / NO_PROXY (botocore's get_environ_proxies), a CONNECT
  tunnel for https;
- retries: botocore's standard-mode conditions and backoff, three attempts in all;
- answers: at most MAX_RESPONSE_BYTES, each attempt's answer within READ_TIMEOUT seconds in
  all (not per read), XML with a DOCTYPE never parsed.

What this transport does not cover (an https:// proxy, an endpoint that needs another auth
scheme or extra headers, an endpoint URL or region botocore refuses) raises Unsupported, and
elevate.aws.sts_client uses a botocore client instead, as before. Failures are botocore's
exception types, so elevate.aws translates them into the same messages as a client's.
"""

from __future__ import annotations

import http.client
import io
import logging
import random
import ssl
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Optional, Union, cast
from urllib.parse import urlsplit

import botocore
import botocore.auth
import botocore.awsrequest
import botocore.configloader
import botocore.configprovider
import botocore.endpoint_provider
import botocore.exceptions
import botocore.httpsession
import botocore.loaders
import botocore.retries.standard
import botocore.utils

from . import __version__
from .config import REGION
from .errors import ResponseParserError, ResponseTooLarge, UnsafeAnswer, Unsupported
from .models import SessionCredentials, SourceKeys

log = logging.getLogger("elevate")

CONNECT_TIMEOUT = 5
READ_TIMEOUT = 15
MAX_ATTEMPTS = 3
MAX_RESPONSE_BYTES = 1 << 20  # STS and IAM answers are a few KB; a bigger one is hostile
API_VERSION = "2011-06-15"
API_VERSIONS: Mapping[str, str] = {"sts": API_VERSION, "iam": "2010-05-08"}
CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"
USER_AGENT = f"aws-elevate/{__version__} Botocore/{botocore.__version__}"
# botocore's table of settings: (config key, environment variable(s), default, conversion).
_SETTINGS: Mapping[str, Any] = botocore.configprovider.BOTOCORE_DEFAUT_SESSION_VARIABLES


@dataclass(frozen=True)
class _Signing:
    """The key pair in the shape SigV4Auth reads; secrets stay out of the repr."""

    access_key: str
    secret_key: str = field(repr=False)
    token: Optional[str] = field(default=None, repr=False)


@dataclass(frozen=True)
class Route:
    """Where and how the requests go, resolved once per client."""

    endpoint_url: str
    region: str
    signing_region: str
    signing_name: str
    verify: Union[bool, str]  # True (botocore's CA bundle) or a CA bundle path
    proxy: Optional[str] = None
    proxy_headers: Mapping[str, str] = field(default_factory=dict, repr=False)


class _AwsConfig:
    """The AWS config as a botocore session pinned to no profile sees it: a setting comes from
    its environment variable, else the default profile (config and credentials files merged)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.profile: Mapping[str, Any] = {}
        try:
            self.full: dict[str, Any] = botocore.configloader.load_config(self.get("config_file"))
        except botocore.exceptions.ConfigNotFound:
            self.full = {"profiles": {}}
        try:
            extra = botocore.configloader.raw_config_parse(self.get("credentials_file"))
        except botocore.exceptions.ConfigNotFound:
            extra = {}
        for name, values in extra.items():
            self.full["profiles"].setdefault(name, {}).update(values)
        self.profile = self.full["profiles"].get("default", {})

    def get(self, name: str) -> Any:
        key, env_names, default, convert = _SETTINGS[name]
        value = None
        for env in [env_names] if isinstance(env_names, str) else list(env_names or []):
            if env in self.environ:
                value = self.environ[env]
                break
        if value is None and isinstance(key, str):
            value = self.profile.get(key)
        if value is None:
            value = default
        return convert(value) if convert is not None and value is not None else value


def resolve(region: str, environ: Mapping[str, str], service: str = "sts") -> Route:
    """The route a botocore client of `service` (sts or iam) for `region` would take under
    `environ` (the invocation's); Unsupported where this transport cannot follow it, a
    BotoCoreError where botocore refuses the settings."""
    if service not in API_VERSIONS:
        raise Unsupported(f"the service {service!r}")
    if not REGION.fullmatch(region):
        raise Unsupported(f"region name {region!r}")
    config = _AwsConfig(environ)
    configured = None
    if not config.get("ignore_configured_endpoint_urls"):
        configprovider = botocore.configprovider
        provider = configprovider.ConfiguredEndpointProvider(config.full, config.profile, service, environ)
        configured = provider.provide()
    params: dict[str, Any] = {"Region": region, "UseFIPS": False, "UseDualStack": False}
    if service == "sts":
        params["UseGlobalEndpoint"] = False
    if configured:
        if not botocore.utils.is_valid_uri(configured):
            raise Unsupported("an endpoint URL botocore refuses")
        params["Endpoint"] = configured
    else:  # botocore ignores both with an endpoint URL
        params["UseFIPS"] = bool(config.get("use_fips_endpoint"))
        params["UseDualStack"] = bool(config.get("use_dualstack_endpoint"))
    # botocore's loader and search paths (AWS_DATA_PATH, ~/.aws/models first); the rule set is
    # loaded by path: load_service_model would first list every service botocore knows.
    loader = botocore.loaders.create_loader(config.get("data_path"))
    version = loader.determine_latest_version(service, "endpoint-rule-set-1")
    rules = loader.load_data(f"{service}/{version}/endpoint-rule-set-1")
    partitions = loader.load_data("partitions")
    endpoint = botocore.endpoint_provider.EndpointProvider(rules, partitions).resolve_endpoint(**params)
    if endpoint.headers:
        raise Unsupported("an endpoint that needs extra headers")
    signing_region, signing_name = region, service
    schemes = endpoint.properties.get("authSchemes") or [{"name": "sigv4"}]
    if schemes[0].get("name") != "sigv4":
        raise Unsupported(f"the auth scheme {schemes[0].get('name')!r}")
    signing_region = schemes[0].get("signingRegion", signing_region)
    signing_name = schemes[0].get("signingName", signing_name)
    url = endpoint.url
    if urlsplit(url).scheme not in ("http", "https"):
        raise Unsupported("an endpoint that is neither http nor https")
    ca_bundle = config.get("ca_bundle")
    verify: Union[bool, str] = ca_bundle if ca_bundle is not None else environ.get("REQUESTS_CA_BUNDLE", True)
    if isinstance(verify, str) and not verify.strip():
        raise Unsupported("an empty CA bundle setting")  # botocore's client says why
    proxies = botocore.httpsession.ProxyConfiguration(proxies=botocore.utils.get_environ_proxies(url))
    proxy = proxies.proxy_url_for(url)
    if proxy and not proxy.startswith("http:"):
        raise Unsupported("an https:// proxy")
    headers = proxies.proxy_headers_for(proxy) if proxy else {}
    return Route(url, region, signing_region, signing_name, verify, proxy or None, headers)


# The parts of an operation model botocore's standard retry conditions read: the calls here
# model no retryable errors, so only the generic conditions apply.
def _operation_model(service: str) -> Any:
    return SimpleNamespace(error_shapes=[], service_model=SimpleNamespace(service_name=service))


def query_fields(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The Query protocol's flat form: a list is `Name.member.N`, a structure `Name.Key`
    (PolicyArns=[{"arn": A}] is PolicyArns.member.1.arn=A), as botocore's serializer writes it."""
    fields: dict[str, Any] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            fields.update(query_fields(value, key + "."))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value, 1):
                member = f"{key}.member.{index}"
                if isinstance(item, Mapping):
                    fields.update(query_fields(item, member + "."))
                else:
                    fields[member] = item
        else:
            fields[key] = value
    return fields


class QueryClient:
    """GetCallerIdentity, AssumeRole and GetSessionToken (STS), or ListMFADevices (IAM), with one
    key pair: what elevate asks of a botocore client, answered in the same shapes and failing
    with the same exceptions."""

    def __init__(
        self,
        keys: Union[SourceKeys, SessionCredentials],
        route: Route,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        read_timeout: float = READ_TIMEOUT,
        service: str = "sts",
    ) -> None:
        token = keys.session_token if isinstance(keys, SessionCredentials) else None
        self._credentials = _Signing(keys.access_key_id, keys.secret_access_key, token)
        self.route = route
        self.service = service
        # service_model.service_name: how elevate.aws names the service in its errors.
        self.meta = SimpleNamespace(
            endpoint_url=route.endpoint_url,
            region_name=route.region,
            service_model=SimpleNamespace(service_name=service),
        )
        self._sleep = sleep
        self._jitter = jitter
        self._tls: Optional[ssl.SSLContext] = None
        self._read_timeout = read_timeout

    def __repr__(self) -> str:
        return f"QueryClient({self.route.endpoint_url}, {self._credentials.access_key})"

    def get_caller_identity(self) -> dict[str, Any]:
        return self._call("GetCallerIdentity", {})

    def assume_role(self, **params: Any) -> dict[str, Any]:
        return self._call("AssumeRole", params)

    def get_session_token(self, **params: Any) -> dict[str, Any]:
        return self._call("GetSessionToken", params)

    def list_mfa_devices(self, **params: Any) -> dict[str, Any]:
        return self._call("ListMFADevices", params)

    def _call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """One call with botocore's standard retries; the parsed answer or botocore's exception."""
        standard = botocore.retries.standard
        conditions = standard.StandardRetryConditions(max_attempts=MAX_ATTEMPTS)
        backoff = standard.ExponentialBackoff(
            random=self._jitter, throttling_detector=standard.ThrottlingErrorDetector(None)
        )
        invocation = str(uuid.uuid4())
        attempt = 0
        while True:
            attempt += 1
            parsed: Optional[dict[str, Any]] = None
            answer: Optional[botocore.awsrequest.AWSResponse] = None
            caught: Optional[Exception] = None
            try:
                answer = self._send(operation, params, attempt, invocation)
                parsed = parse(answer, operation)
            except Exception as exc:  # noqa: BLE001 - botocore's retry conditions judge it, then it is raised
                caught = exc
            context = standard.RetryContext(
                attempt_number=attempt,
                operation_model=_operation_model(self.service),
                parsed_response=parsed,
                http_response=answer,
                caught_exception=caught,
            )
            if not conditions.is_retryable(context):
                break
            delay = backoff.delay_amount(context)
            log.debug(
                "%s %s: attempt %d failed; retrying in %.2f s",
                self.service.upper(),
                operation,
                attempt,
                delay,
            )
            self._sleep(delay)
        if caught is not None:
            raise caught
        assert parsed is not None and answer is not None  # noqa: S101 - set together above
        metadata = parsed.setdefault("ResponseMetadata", {})
        metadata["RetryAttempts"] = attempt - 1
        metadata.update(context.get_retry_metadata())
        if answer.status_code >= 300:
            raise botocore.exceptions.ClientError(cast(Any, parsed), operation)
        return parsed

    def _send(self, operation: str, params: Mapping[str, Any], attempt: int, invocation: str) -> Any:
        """Sign and send one request; the answer (status, headers, body), bounded in size and time."""
        request_dict: dict[str, Any] = {
            "url_path": "/",
            "query_string": "",
            "method": "POST",
            "headers": {"Content-Type": CONTENT_TYPE},
            "body": {"Action": operation, "Version": API_VERSIONS[self.service], **query_fields(params)},
        }
        botocore.awsrequest.prepare_request_dict(request_dict, self.route.endpoint_url, user_agent=USER_AGENT)
        request = botocore.awsrequest.create_request_object(request_dict)
        route = self.route
        credentials: Any = self._credentials  # the attributes SigV4Auth reads, without a repr of the secret
        signer = botocore.auth.SigV4Auth(credentials, route.signing_name, route.signing_region)
        signer.add_auth(request)
        host = signer.headers_to_sign(request)["host"]
        request.headers["amz-sdk-invocation-id"] = invocation
        request.headers["amz-sdk-request"] = f"attempt={attempt}; max={MAX_ATTEMPTS}"
        body = request.body
        url = request.url
        parts = urlsplit(url)
        connection = self._connection(parts.scheme, parts.hostname or "", parts.port)
        try:
            self._connect(connection, url)
            target = url if self.route.proxy and parts.scheme == "http" else _path(parts.path, parts.query)
            return self._exchange(connection, url, target, host, dict(request.headers.items()), body)
        finally:
            connection.close()

    def _connection(self, scheme: str, host: str, port: Optional[int]) -> http.client.HTTPConnection:
        proxy = urlsplit(self.route.proxy) if self.route.proxy else None
        if scheme == "https":
            if proxy is not None:
                tunnel = http.client.HTTPSConnection(
                    proxy.hostname or "", proxy.port or 80, timeout=CONNECT_TIMEOUT, context=self._context()
                )
                tunnel.set_tunnel(host, port or 443, headers=dict(self.route.proxy_headers))
                return tunnel
            context = self._context()
            return http.client.HTTPSConnection(host, port or 443, timeout=CONNECT_TIMEOUT, context=context)
        if proxy is not None:
            return http.client.HTTPConnection(proxy.hostname or "", proxy.port or 80, timeout=CONNECT_TIMEOUT)
        return http.client.HTTPConnection(host, port or 80, timeout=CONNECT_TIMEOUT)

    def _context(self) -> ssl.SSLContext:
        """Certificates verified against the CA bundle botocore would use (made on first use)."""
        if self._tls is None:
            cafile = botocore.httpsession.get_cert_path(cast(Any, self.route.verify))
            self._tls = ssl.create_default_context(cafile=str(cafile))
        return self._tls

    def _connect(self, connection: http.client.HTTPConnection, url: str) -> None:
        exceptions = botocore.exceptions
        try:
            connection.connect()
        except TimeoutError as exc:
            raise exceptions.ConnectTimeoutError(endpoint_url=url, error=exc) from exc
        except ssl.SSLError as exc:
            raise exceptions.SSLError(endpoint_url=url, error=exc) from exc
        except OSError as exc:
            if self.route.proxy:
                proxy = botocore.httpsession.mask_proxy_url(self.route.proxy)
                raise exceptions.ProxyConnectionError(proxy_url=proxy, error=exc) from exc
            raise exceptions.EndpointConnectionError(endpoint_url=url, error=exc) from exc

    def _exchange(
        self,
        connection: http.client.HTTPConnection,
        url: str,
        target: str,
        host: str,
        headers: Mapping[str, str],
        body: bytes,
    ) -> botocore.awsrequest.AWSResponse:
        exceptions = botocore.exceptions
        sock = connection.sock
        limit = self._read_timeout
        deadline = time.monotonic() + limit
        try:
            sock.settimeout(limit)
            connection.putrequest("POST", target, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", host)
            connection.putheader("Accept-Encoding", "identity")
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            bounded: Any = _Bounded(sock, deadline, limit)  # what HTTPResponse reads from a socket
            response = http.client.HTTPResponse(bounded, method="POST")
            response.begin()
            length = response.getheader("Content-Length")
            if length and length.strip().isdigit() and int(length) > MAX_RESPONSE_BYTES:
                raise ResponseTooLarge(f"more than {MAX_RESPONSE_BYTES // 1024} KiB")
            content = response.read(MAX_RESPONSE_BYTES + 1)
            if len(content) > MAX_RESPONSE_BYTES:
                raise ResponseTooLarge(f"more than {MAX_RESPONSE_BYTES // 1024} KiB")
        except TimeoutError as exc:
            raise exceptions.ReadTimeoutError(endpoint_url=url, error=exc) from exc
        except ssl.SSLError as exc:
            raise exceptions.SSLError(endpoint_url=url, error=exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise exceptions.ConnectionClosedError(endpoint_url=url) from exc
        answer_headers = botocore.awsrequest.HeadersDict()
        for name, value in response.getheaders():
            answer_headers[name] = value
        answer = botocore.awsrequest.AWSResponse(url, response.status, cast(Any, answer_headers), None)
        cast(Any, answer)._content = content  # it would read its raw stream: here, the bounded bytes
        return answer


def _path(path: str, query: str) -> str:
    return (path or "/") + (f"?{query}" if query else "")


class _Bounded:
    """A socket as HTTPResponse reads it, with one deadline over every read of the answer."""

    def __init__(self, sock: Any, deadline: float, limit: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._limit = limit

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline, self._limit))


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: Any, deadline: float, limit: float) -> None:
        self._sock = sock
        self._deadline = deadline
        self._limit = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no complete answer within {self._limit} s")
        self._sock.settimeout(min(left, self._limit))
        return int(self._sock.recv_into(buffer))


# --- the Query protocol's answers ------------------------------------------------------------


class _NoDoctype(ElementTree.TreeBuilder):
    def doctype(self, name: str, pubid: Optional[str], system: Optional[str]) -> None:
        raise UnsafeAnswer("the answer carries a DOCTYPE")


def _xml(body: bytes) -> ElementTree.Element:
    # A DOCTYPE is refused before any declaration in it is used (no entity is ever expanded);
    # expat loads no external entity. botocore's parser reads UTF-8 only, and so does this.
    parser = ElementTree.XMLParser(target=_NoDoctype(), encoding="utf-8")  # noqa: S314  # nosec B314
    try:
        parser.feed(body)
        root: ElementTree.Element = parser.close()
    except ElementTree.ParseError as exc:
        raise ResponseParserError(
            f"Unable to parse response ({exc}), invalid XML received. Further retries may succeed:\n{body!r}"
        ) from None
    return root


def _tag(node: ElementTree.Element) -> str:
    return node.tag.rsplit("}", 1)[-1]


def _value(node: ElementTree.Element) -> Any:
    """An element as botocore's parser reads it: children by name (a repeated name becomes a
    list), else its text ("" when empty)."""
    if len(node) == 0:
        return node.text or ""
    result: dict[str, Any] = {}
    for child in node:
        key, value = _tag(child), _value(child)
        if key in result:
            result[key] = [*result[key], value] if isinstance(result[key], list) else [result[key], value]
        else:
            result[key] = value
    return result


def parse(answer: botocore.awsrequest.AWSResponse, operation: str) -> dict[str, Any]:
    """An STS (or IAM) answer in the shape a botocore client returns (or puts in a ClientError)."""
    status, body = answer.status_code, answer.content
    headers = {name.lower(): value for name, value in answer.headers.items()}
    metadata = {"HTTPStatusCode": status, "HTTPHeaders": headers}
    if status >= 301:
        if status >= 500 and (not body.strip() or body.strip().startswith(b"<html>")):
            error: dict[str, Any] = {"Code": str(status), "Message": http.client.responses.get(status, "")}
            return {"Error": error, "ResponseMetadata": metadata}
        parsed = _value(_xml(body))
        parsed = parsed if isinstance(parsed, dict) else {}
        if isinstance(parsed.get("Errors"), dict):
            parsed.update(parsed.pop("Errors"))
        request_id = parsed.pop("RequestId", None)
        if request_id is not None:
            metadata["RequestId"] = request_id
        parsed["ResponseMetadata"] = metadata
        return parsed
    root = _value(_xml(body))
    root = root if isinstance(root, dict) else {}
    result = root[f"{operation}Result"]  # a KeyError, as in botocore's parser, when it is missing
    result = _first(result) if isinstance(result, (dict, list)) else {}
    credentials = _first(result.get("Credentials"))
    if isinstance(credentials, dict) and isinstance(credentials.get("Expiration"), str):
        credentials["Expiration"] = botocore.utils.parse_timestamp(credentials["Expiration"])
    if credentials is not None:
        result["Credentials"] = credentials
    if operation == "ListMFADevices":
        result["MFADevices"] = devices = _members(result.get("MFADevices"))
        for device in devices:
            if isinstance(device.get("EnableDate"), str):
                device["EnableDate"] = botocore.utils.parse_timestamp(device["EnableDate"])
        result["IsTruncated"] = result.get("IsTruncated") == "true"
    request_id = _first(root.get("ResponseMetadata"))
    if isinstance(request_id, dict) and isinstance(request_id.get("RequestId"), str):
        metadata["RequestId"] = request_id["RequestId"]
    return {**result, "ResponseMetadata": metadata}


def _members(value: Any) -> list[dict[str, Any]]:
    """A Query list (`<member>` elements) as botocore reads it: a list, empty when the element
    is empty or missing; a member that is not a structure is dropped, not passed on."""
    found = value.get("member", []) if isinstance(value, dict) else []
    return [m for m in (found if isinstance(found, list) else [found]) if isinstance(m, dict)]


def _first(value: Any) -> Any:
    """A structure given more than once: botocore reads the first."""
    return value[0] if isinstance(value, list) and value else value


def connect(
    keys: Union[SourceKeys, SessionCredentials],
    region: str,
    environ: Mapping[str, str],
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
    read_timeout: float = READ_TIMEOUT,
    service: str = "sts",
) -> QueryClient:
    """A QueryClient of `service` for `region` (Unsupported, or a BotoCoreError, as resolve says)."""
    return QueryClient(keys, resolve(region, environ, service), sleep, jitter, read_timeout, service)
