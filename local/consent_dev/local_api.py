"""The API in-process, as the deployed stack runs it: `consent_dev.gateway`'s API Gateway (routes from
template.yaml, the JWT authorizer, its own answers) in front of the real handlers, without a socket."""

from __future__ import annotations

import json as jsonlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlencode

from consent.services import Services
from consent_dev.gateway import Gateway, GatewayRequest, GatewayResponse, Routed
from consent_dev.jwt_auth import TOKEN_SECONDS, JwtAuthorizer, LocalIssuer
from consent_dev.lambda_runtime import LambdaContext, load_handler
from consent_dev.template import Route, routes

_TOKEN_MARGIN_SECONDS = 60  # a cached token is minted again this long before it expires


@cache
def _issuer() -> LocalIssuer:
    """One issuer per process: its RSA key takes tens of milliseconds to make."""
    return LocalIssuer(url="https://issuer.local-api.test")


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: Any  # the JSON body, parsed (None: empty or not JSON)
    text: str

    def header(self, name: str) -> str | None:
        lowered = {k.lower(): v for k, v in self.headers.items()}
        return lowered.get(name.lower())


class LocalApi:
    """Sends requests to the template's routes. `customer` is the caller: their token of a local issuer goes in
    `Authorization` (None: no token, which the authorizer refuses on every route behind it; a header given
    explicitly wins). `services` are the functions' ports: the same for all, or per route."""

    def __init__(self, services: Services | Callable[[Route], Services]) -> None:
        self._services = services
        issuer = _issuer()
        self._gateway = Gateway(routes(), self._invoke, JwtAuthorizer(issuer, (issuer.audience,)))
        self._tokens: dict[str, tuple[str, float]] = {}

    def token(self, customer: str) -> str:
        """A bearer token for `customer` that the API's authorizer accepts (minted once, until near its expiry)."""
        token, expires = self._tokens.get(customer, ("", 0.0))
        if time.time() > expires - _TOKEN_MARGIN_SECONDS:
            token, expires = _issuer().token(customer), time.time() + TOKEN_SECONDS
            self._tokens[customer] = (token, expires)
        return token

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        return self._gateway.find(method, path)

    def request(
        self,
        method: str,
        path: str,
        *,
        customer: str | None = None,
        json: Any = None,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | str | None = None,
    ) -> ApiResponse:
        sent = self._request(method, path, customer=customer, json=json, body=body, headers=headers, query=query)
        return _api_response(self._gateway.handle(sent))

    def event(
        self,
        method: str,
        path: str,
        *,
        customer: str | None = None,
        json: Any = None,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | str | None = None,
    ) -> tuple[Route, dict[str, Any]]:
        """The route and the event `request` would invoke its function with (for invoking it directly)."""
        sent = self._request(method, path, customer=customer, json=json, body=body, headers=headers, query=query)
        routed = self._gateway.route(sent)
        if not isinstance(routed, Routed):
            raise ValueError(f"API Gateway answers {method} {path} itself: {routed.status} {routed.body!r}")
        return routed.route, routed.event

    @staticmethod
    def invoke(route: Route, event: dict[str, Any], services: Services) -> dict[str, Any]:
        """The route's handler, run with `event` as Lambda would (no API Gateway: its raw result)."""
        handler = load_handler(route.code_uri, route.handler)
        return handler(event, LambdaContext(route.function), services=services)

    def _invoke(self, route: Route, event: dict[str, Any]) -> dict[str, Any]:
        services = self._services(route) if callable(self._services) else self._services
        return self.invoke(route, event, services)

    def _request(
        self,
        method: str,
        path: str,
        *,
        customer: str | None,
        json: Any,
        body: bytes | str | None,
        headers: Mapping[str, str] | None,
        query: Mapping[str, str] | str | None,
    ) -> GatewayRequest:
        sent = {name.lower(): value for name, value in (headers or {}).items()}
        if customer is not None:
            sent.setdefault("authorization", f"Bearer {self.token(customer)}")
        if json is not None:
            body = jsonlib.dumps(json)
            sent.setdefault("content-type", "application/json")
        raw = body.encode() if isinstance(body, str) else body or b""
        raw_query = query if isinstance(query, str) else urlencode(query or {})
        return GatewayRequest(method.upper(), path, raw_query, sent, raw)

    # conveniences
    def get(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.request("DELETE", path, **kwargs)


def _api_response(answer: GatewayResponse) -> ApiResponse:
    headers: dict[str, str] = {}
    for name, value in answer.headers:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    text = answer.body.decode("utf-8", errors="replace")
    try:
        parsed = jsonlib.loads(text) if text else None
    except ValueError:
        parsed = None
    return ApiResponse(answer.status, headers, parsed, text)
