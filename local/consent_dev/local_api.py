"""The API as API Gateway would run it, in-process: routes from template.yaml, real handlers, real events."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from consent.services import Services
from consent_dev.lambda_runtime import LambdaContext, http_event, jwt_claims, load_handler, parse_body
from consent_dev.template import Route, routes


@dataclass(frozen=True)
class ApiResponse:
    status: int
    headers: dict[str, str]
    body: Any
    text: str

    def header(self, name: str) -> str | None:
        lowered = {k.lower(): v for k, v in self.headers.items()}
        return lowered.get(name.lower())


class LocalApi:
    """Sends requests to the template's routes. `customer` plays the JWT authorizer: it becomes the
    token's claims on authorized routes (None: no identity, as when the authorizer passed nothing)."""

    def __init__(self, services: Services | Callable[[Route], Services]) -> None:
        self._services = services
        self._routes = routes()

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self._routes:
            params = route.match(method, path)
            if params is not None:
                return route, params
        return None

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
        found = self.find(method, path)
        if found is None:
            return ApiResponse(404, {}, {"message": "Not Found"}, '{"message":"Not Found"}')
        route, params = found
        all_headers = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json)
            all_headers.setdefault("content-type", "application/json")
        claims = jwt_claims(customer) if customer is not None and route.authorized else None
        event = http_event(
            route, path, path_parameters=params, query=query, headers=all_headers, body=body, claims=claims
        )
        services = self._services(route) if callable(self._services) else self._services
        result = self.invoke(route, event, services)
        text = result.get("body") or ""
        try:
            parsed = parse_body(result)
        except ValueError:
            parsed = None
        return ApiResponse(int(result["statusCode"]), dict(result.get("headers") or {}), parsed, text)

    @staticmethod
    def invoke(route: Route, event: dict[str, Any], services: Services) -> dict[str, Any]:
        handler = load_handler(route.code_uri, route.handler)
        return handler(event, LambdaContext(route.function), services=services)

    # conveniences
    def get(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> ApiResponse:
        return self.request("DELETE", path, **kwargs)
