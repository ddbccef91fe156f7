"""API Gateway in front of the template's functions, emulated once for every local caller: `LocalApi` calls it
in-process (integration tests, the bench), `make dev` serves it over HTTP. It is template.yaml's HTTP API
(`AWS::Serverless::HttpApi`, payload format 2.0), so it does what that API does around a function, and answers
itself where that API does, in its words (`{"message": …}`):

- CORS (when the template configures it): a preflight is answered before any route or authorizer, and every other
  answer gets the CORS headers, whatever the function said (`consent_dev.cors`);
- a body over 10 MB: 413 `Request Entity Too Large`, before routing;
- no route for the path: 404 `Not Found`;
- a route behind the JWT authorizer without a token it accepts: 401, and the function does not run (the authorizer
  checks the token only: which claim names the customer is the function's business);
- the function raises, or answers more than Lambda's 6 MB: 500 `Internal Server Error`.

Two answers differ from the deployed API's (docs/local-vs-deployed.md). A path that has routes for other methods
answers 405 `Method Not Allowed` with `Allow` here; the deployed HTTP API answers 404, as for any request it has
no route for. Schemathesis, run with its defaults, checks that an undocumented method is a 405, and an OpenAPI
document cannot list the methods a path does not take. And the authorizer's 401 is the product's problem document
(`unauthenticated`, as the function answers a token that names no customer): the OpenAPI document promises that
on every route behind the authorizer, and the contract tests hold the local stack to it. Deployed, API Gateway
answers `{"message": "Unauthorized"}`.

Every answer carries `Apigw-Requestid`, the id the function's event carries too. Routes are matched on the
percent-decoded path (as API Gateway routes); the event keeps the path as it was sent (`rawPath`)."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlencode

from consent.api.problems import PROBLEM_JSON, Problem
from consent_dev.cors import CorsPolicy
from consent_dev.jwt_auth import Unauthorized
from consent_dev.template import Route

log = logging.getLogger("consent_dev.gateway")

# The HTTP API's payload quota, and Lambda's for a synchronous invocation's response.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
MAX_LAMBDA_RESPONSE_BYTES = 6 * 1024 * 1024
APIGW_REQUEST_ID_HEADER = "Apigw-Requestid"

# The function behind a route, as Lambda runs it: the route and its event in, the function's result out.
Integration = Callable[[Route, dict[str, Any]], Any]


class Authorizer(Protocol):
    """The API's JWT authorizer: the claims of the request's `Authorization` header, or `Unauthorized`."""

    def claims(self, authorization: str | None) -> dict[str, Any]: ...


@dataclass(frozen=True)
class GatewayRequest:
    """A request as it reaches API Gateway: `path` still percent-encoded, `query` the raw query string, `headers`
    one value per lower-case name (see `fold_headers`)."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    headers: Sequence[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Routed:
    """A request API Gateway lets through: its route, and the event the route's function is invoked with."""

    route: Route
    event: dict[str, Any]


def fold_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as payload 2.0 carries them: lower-case names, a repeated header's values comma-joined."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return headers


def gateway_answer(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> GatewayResponse:
    """An answer API Gateway gives itself (not a function's): `{"message": …}`."""
    body = json.dumps({"message": message}).encode()
    return GatewayResponse(status, [("Content-Type", "application/json"), *headers], body)


def unauthenticated(request_id: str) -> GatewayResponse:
    """The authorizer's refusal, as the OpenAPI document has it: the product's problem, `unauthenticated`, with its
    request id header."""
    from consent.api.resolver import REQUEST_ID_HEADER  # noqa: PLC0415 - imports Powertools: after its environment

    detail = "Send `Authorization: Bearer <token>`: a JWT of the issuer (make dev: POST /dev/token)."
    body = Problem(401, "unauthenticated", detail).body(request_id).encode()
    headers = [("Content-Type", PROBLEM_JSON), (REQUEST_ID_HEADER, request_id), ("WWW-Authenticate", "Bearer")]
    return GatewayResponse(401, headers, body)


class Gateway:
    """The template's routes, each to its function through `integration`, with `authorizer` in front of exactly
    the routes that have it in the template, and the template's CORS policy (`cors`; None: no CORS)."""

    def __init__(
        self,
        api_routes: Iterable[Route],
        integration: Integration,
        authorizer: Authorizer,
        *,
        cors: CorsPolicy | None = None,
    ) -> None:
        self._routes = list(api_routes)
        self._integration = integration
        self._authorizer = authorizer
        self._cors = cors

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for `method` and the (percent-encoded) `path`, with its path parameters, decoded."""
        decoded = unquote(path)
        for route in self._routes:
            params = route.match(method, decoded)
            if params is not None:
                return route, params
        return None

    def handle(self, request: GatewayRequest) -> GatewayResponse:
        request_id = str(uuid.uuid4())
        origin = request.headers.get("origin")
        if self._cors is not None and self._cors.is_preflight(request.method, request.headers):
            answer = GatewayResponse(204, self._cors.preflight_headers(origin), b"")
        else:
            answer = self._answer(request, request_id)
            if self._cors is not None:
                answer = GatewayResponse(answer.status, self._cors.decorate(origin, answer.headers), answer.body)
        return GatewayResponse(answer.status, [*answer.headers, (APIGW_REQUEST_ID_HEADER, request_id)], answer.body)

    def route(self, request: GatewayRequest, request_id: str | None = None) -> Routed | GatewayResponse:
        """The route and the event for `request`, or API Gateway's own answer when it goes no further."""
        if len(request.body) > MAX_REQUEST_BYTES:
            return gateway_answer(413, "Request Entity Too Large")
        found = self.find(request.method, request.path)
        if found is None:
            decoded = unquote(request.path)
            allowed = sorted({r.method for r in self._routes if r.match(r.method, decoded) is not None})
            if allowed:  # a route's path with another method: say which it takes (RFC 9110 §15.5.6)
                return gateway_answer(405, "Method Not Allowed", [("Allow", ", ".join(allowed))])
            return gateway_answer(404, "Not Found")
        route, params = found
        claims = None
        if route.authorized:
            try:
                claims = self._authorizer.claims(request.headers.get("authorization"))
            except Unauthorized:
                return unauthenticated(request_id or str(uuid.uuid4()))
        event = http_event(
            route,
            request.path,
            path_parameters=params,
            query=request.query,
            headers=request.headers,
            body=request.body or None,
            claims=claims,
            request_id=request_id,
        )
        return Routed(route, event)

    def _answer(self, request: GatewayRequest, request_id: str) -> GatewayResponse:
        routed = self.route(request, request_id)
        if isinstance(routed, GatewayResponse):
            return routed
        started = time.monotonic()
        try:
            result = self._integration(routed.route, routed.event)
        except Exception:  # an unhandled function error: Lambda logs the trace, API Gateway answers 500
            log.exception("api     %s %s: %s raised", request.method, request.path, routed.route.function)
            return gateway_answer(500, "Internal Server Error")
        answer = lambda_response(result)
        millis = (time.monotonic() - started) * 1000
        log.info(
            "api     %s %s → %d  %s %.0f ms",
            request.method,
            request.path,
            answer.status,
            routed.route.function,
            millis,
        )
        return answer


def lambda_response(result: Any) -> GatewayResponse:
    """A payload 2.0 function result as API Gateway turns it into an HTTP answer. Lambda refuses a synchronous
    response over 6 MB, and API Gateway then answers 500."""
    if len(json.dumps(result, default=str).encode()) > MAX_LAMBDA_RESPONSE_BYTES:
        return gateway_answer(500, "Internal Server Error")
    if not isinstance(result, Mapping) or "statusCode" not in result:
        # API Gateway's inference for format 2.0: any other JSON value is a 200 application/json body.
        return GatewayResponse(200, [("Content-Type", "application/json")], json.dumps(result).encode())
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
    headers = [(name, str(value)) for name, value in (result.get("headers") or {}).items()]
    headers += [("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or []]
    return GatewayResponse(int(result["statusCode"]), headers, raw)


def http_event(
    route: Route,
    path: str,
    *,
    path_parameters: Mapping[str, str] | None = None,
    query: Mapping[str, str] | str | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | str | None = None,
    claims: Mapping[str, Any] | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """An HTTP API payload 2.0 event for `route`, as API Gateway builds it (`path` as sent: `rawPath`)."""
    lowered = {name.lower(): value for name, value in (headers or {}).items()}
    raw_query = query if isinstance(query, str) else urlencode(query or {})
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": lowered,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": lowered.get("host", "localhost"),
            "domainPrefix": "localhost",
            "http": {
                "method": route.method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": request_id or str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if "cookie" in lowered:
        event["cookies"] = [c.strip() for c in lowered.pop("cookie").split(";") if c.strip()]
    if raw_query:
        params: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            params[name] = f"{params[name]},{value}" if name in params else value
        event["queryStringParameters"] = params
    if path_parameters:
        event["pathParameters"] = dict(path_parameters)
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": dict(claims), "scopes": None}}
    if body is not None:
        if isinstance(body, bytes):
            try:
                event["body"] = body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(body).decode()
                event["isBase64Encoded"] = True
        else:
            event["body"] = body
    return event


def jwt_claims(customer_id: str, *, issuer: str = "https://login.example-bank.test/") -> dict[str, Any]:
    """Claims as API Gateway's JWT authorizer passes them (all values are strings)."""
    now = int(time.time())
    return {
        "sub": customer_id,
        "iss": issuer,
        "aud": "consent-app",
        "iat": str(now),
        "exp": str(now + 3600),
        "scope": "openid",
    }
