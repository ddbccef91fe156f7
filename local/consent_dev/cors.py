"""CORS as the deployed HTTP API does it, from the template's own `CorsConfiguration` (one source of truth).

API Gateway answers a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) itself, before any
route or authorizer, and adds `Access-Control-Allow-Origin` (the request's origin, when allowed) and
`Access-Control-Expose-Headers` to every other answer, whatever the function returned. An origin that is not
allowed gets no CORS header at all, so the browser refuses the answer to the page."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from consent_dev.template import condition, load_template


@dataclass(frozen=True)
class CorsPolicy:
    allow_origins: tuple[str, ...]
    allow_headers: tuple[str, ...]
    allow_methods: tuple[str, ...]
    expose_headers: tuple[str, ...]
    max_age: int
    allow_credentials: bool

    def allows(self, origin: str | None) -> bool:
        return origin is not None and origin in self.allow_origins

    @staticmethod
    def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
        """`headers`: lower-case names."""
        return method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers

    def preflight_headers(self, origin: str | None) -> list[tuple[str, str]]:
        """The headers of the answer to a preflight from `origin` (its status: 204, no body)."""
        headers: list[tuple[str, str]] = []
        if origin is not None and self.allows(origin):
            headers += [
                ("Access-Control-Allow-Origin", origin),
                ("Access-Control-Allow-Methods", ",".join(self.allow_methods)),
                ("Access-Control-Allow-Headers", ",".join(self.allow_headers)),
                ("Access-Control-Max-Age", str(self.max_age)),
            ]
            if self.allow_credentials:
                headers.append(("Access-Control-Allow-Credentials", "true"))
        return [*headers, ("Vary", "Origin")]

    def decorate(self, origin: str | None, headers: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """An answer's headers for a request from `origin`: the function's own CORS headers dropped (API Gateway
        ignores them), the policy's added."""
        decorated = [(name, value) for name, value in headers if not name.lower().startswith("access-control-")]
        if origin is not None and self.allows(origin):
            decorated.append(("Access-Control-Allow-Origin", origin))
            if self.expose_headers:
                decorated.append(("Access-Control-Expose-Headers", ",".join(self.expose_headers)))
            if self.allow_credentials:
                decorated.append(("Access-Control-Allow-Credentials", "true"))
        return [*decorated, ("Vary", "Origin")]


def cors_policy(parameters: Mapping[str, Any], template: dict[str, Any] | None = None) -> CorsPolicy | None:
    """The API's CORS policy for these parameter values, as the template declares it (None: no CORS)."""
    template = template or load_template()
    [api] = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::HttpApi"]
    configured = api["Properties"].get("CorsConfiguration")
    if configured is None:
        return None
    config = _evaluate(configured, parameters, lambda name: condition(name, parameters, template))
    if not isinstance(config, dict):
        return None
    return CorsPolicy(
        allow_origins=tuple(config.get("AllowOrigins", ())),
        allow_headers=tuple(config.get("AllowHeaders", ())),
        allow_methods=tuple(config.get("AllowMethods", ())),
        expose_headers=tuple(config.get("ExposeHeaders", ())),
        max_age=int(config.get("MaxAge", 0)),
        allow_credentials=bool(config.get("AllowCredentials", False)),
    )


_NO_VALUE = object()


def _evaluate(value: Any, parameters: Mapping[str, Any], conditions: Callable[[str], bool]) -> Any:
    """The intrinsics this configuration uses: Ref (parameters, AWS::NoValue), Fn::If, Fn::Split."""
    if isinstance(value, dict) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref":
            return _NO_VALUE if argument == "AWS::NoValue" else parameters[argument]
        if name == "Fn::If":
            name_of, when_true, when_false = argument
            return _evaluate(when_true if conditions(name_of) else when_false, parameters, conditions)
        if name == "Fn::Split":
            separator, text = argument
            return str(_evaluate(text, parameters, conditions)).split(separator)
    if isinstance(value, dict):
        evaluated = {k: _evaluate(v, parameters, conditions) for k, v in value.items()}
        return {k: v for k, v in evaluated.items() if v is not _NO_VALUE}
    if isinstance(value, list):
        return [v for v in (_evaluate(item, parameters, conditions) for item in value) if v is not _NO_VALUE]
    return None if value is _NO_VALUE else value
