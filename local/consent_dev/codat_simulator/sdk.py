"""A stand-in for Codat's front-end SDKs, so that Option 1 of Codat's guide (Link inside the bank's page) can be
rehearsed offline: ES modules with the same import shape as Codat's, and the small JSON API they call.

- ``GET /sdk/link.js``: exports ``CodatLink`` (``https://link-sdk.codat.io``'s shape); ``GET /sdk/connections.js``:
  exports ``CodatConnections`` (``https://connections-sdk.codat.io``'s). Served to any origin, as a CDN does.
- ``/sdk/api/…``: what the components call, authenticated by Codat's company access token
  (``Authorization: Bearer <accessToken>``, the token ``GET /companies/{companyId}/accessToken`` issues): an unknown
  or expired token is refused (401), another company's token too (403), with Codat's error body. CORS for the origins
  the simulator is told (``sdk_origins``; any when None).

  ``GET session`` (the token's company), ``GET companies/{companyId}``, ``GET companies/{companyId}/integrations``
  (the enabled ones), ``GET|POST companies/{companyId}/connections`` (``{"platformKey"}``: a connection not yet
  Linked for that integration is reused, else one is created: ``connection.created``),
  ``POST companies/{companyId}/connections/{connectionId}/authorize`` (the customer authorizes: through the same step
  as the hosted Link page, so ``connection.connected`` and the first read follow), ``PATCH
  companies/{companyId}/connections/{connectionId}`` with ``{"status": "Unlinked"}`` (disconnect, as Codat's
  Connections component does: ``connection.disconnected``).

Every ``/sdk/api/`` request goes through the simulator's fault registry, so a fault can make it fail on demand
(``CodatSimulator.inject_sdk_fault``, ``POST /_simulator/sdk-faults``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .link import decide
from .responses import CodatError, SimResponse, json_response
from .state import Company, Connection, SimState, codat_timestamp

SDK_PREFIX = "/sdk/"
SDK_API_PREFIX = "/sdk/api/"
ASSETS = Path(__file__).resolve().parent / "sdk_js"
MODULES = {"/sdk/link.js": "link.js", "/sdk/connections.js": "connections.js", "/sdk/common.js": "common.js"}
JS_CONTENT_TYPE = "text/javascript; charset=utf-8"
_SERVICE = "Link"
_ALLOWED_METHODS = "GET, POST, PATCH"
_ALLOWED_HEADERS = "Authorization, Content-Type"
_PREFLIGHT_MAX_AGE = "600"

_REFUSED_TOKENS = {
    "unknown": (401, "The access token is not valid."),
    "expired": (401, "The access token has expired: ask for a new one."),
    "other_company": (403, "The access token was issued for another company."),
}


def is_sdk_path(path: str) -> bool:
    return path.startswith(SDK_PREFIX)


def is_sdk_api_path(path: str) -> bool:
    return path.startswith(SDK_API_PREFIX)


# --- CORS: the bank's page (another origin) calls this API ------------------------------------------------------


def cors_headers(origins: tuple[str, ...] | None, origin: str | None) -> dict[str, str]:
    """The CORS headers of an answer to ``origin``: none when it is not allowed (the browser then refuses it)."""
    if origin is None or (origins is not None and origin not in origins):
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def preflight(origins: tuple[str, ...] | None, origin: str | None) -> SimResponse:
    headers = cors_headers(origins, origin)
    if "Access-Control-Allow-Origin" in headers:
        headers |= {
            "Access-Control-Allow-Methods": _ALLOWED_METHODS,
            "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
            "Access-Control-Max-Age": _PREFLIGHT_MAX_AGE,
        }
    return SimResponse(204, {**headers, "Content-Length": "0"}, b"")


# --- the modules ------------------------------------------------------------------------------------------------


def module_response(path: str, method: str) -> SimResponse:
    name = MODULES.get(path.rstrip("/"))
    if name is None:
        return CodatError(404, f"No SDK module at {path}", service=_SERVICE).response()
    if method not in ("GET", "HEAD"):
        return CodatError(405, "Use GET.", service=_SERVICE, headers={"Allow": "GET"}).response()
    headers = {
        "Content-Type": JS_CONTENT_TYPE,
        "Cache-Control": "no-cache",
        # A public script, imported by the bank's page from its own origin: module scripts are fetched with CORS.
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
    }
    return SimResponse(200, headers, (ASSETS / name).read_bytes())


# --- the API ----------------------------------------------------------------------------------------------------


@dataclass
class _Call:
    state: SimState
    company: Company
    params: dict[str, str]
    body: Any


_Handler = Callable[[_Call], SimResponse]


def handle_sdk(state: SimState, method: str, path: str, headers: dict[str, str], body: Any) -> SimResponse:
    """One request to the SDK stand-in (``headers``: lower-case names; ``body``: the parsed JSON, if any)."""
    if not is_sdk_api_path(path):
        return module_response(path, method)
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    route = path.removeprefix(SDK_API_PREFIX).rstrip("/")
    try:
        if route == "session":
            if method != "GET":
                raise CodatError(405, "Use GET.", service=_SERVICE, headers={"Allow": "GET"})
            return json_response(200, _session(state, _company(state, token, None)))
        for pattern, handlers in _ROUTES:
            found = pattern.fullmatch(route)
            if found is None:
                continue
            params = found.groupdict()
            company = _company(state, token, params["company_id"])
            handler = handlers.get(method)
            if handler is None:
                allow = ", ".join(handlers)
                raise CodatError(405, f"Use {allow}.", service=_SERVICE, headers={"Allow": allow})
            return handler(_Call(state, company, params, body))
        raise CodatError(404, f"No resource at {path}", service=_SERVICE)
    except CodatError as error:
        return error.response()


def _company(state: SimState, token: str, company_id: str | None) -> Company:
    """The company the token opens (``company_id``'s, when given), or Codat's refusal."""
    check, grant = state.check_access_token(token, company_id)
    if check != "valid" or grant is None:
        status, message = _REFUSED_TOKENS[check]
        raise CodatError(status, message, service=_SERVICE)
    return state.companies[grant.company_id]


def _session(state: SimState, company: Company) -> dict[str, Any]:
    grants = [grant for grant in state.access_tokens.values() if grant.company_id == company.id]
    expires = max(grant.expires for grant in grants)
    return {"companyId": company.id, "companyName": company.name, "expiresAt": codat_timestamp(expires)}


def _connection(call: _Call) -> Connection:
    connection = call.company.connections.get(call.params["connection_id"])
    if connection is None:
        raise CodatError(404, f"Data connection {call.params['connection_id']} not found", service=_SERVICE)
    return connection


def connection_view(connection: Connection) -> dict[str, Any]:
    """A connection as the components show it (no link: they authorize in place)."""
    out: dict[str, Any] = {
        "id": connection.id,
        "integrationKey": connection.integration.key,
        "platformName": connection.integration.name,
        "sourceType": connection.integration.source_type,
        "status": connection.status,
        "created": connection.created,
    }
    if connection.last_sync is not None:
        out["lastSync"] = connection.last_sync
    return out


def _get_company(call: _Call) -> SimResponse:
    return json_response(200, _session(call.state, call.company))


def _integrations(call: _Call) -> SimResponse:
    linked = {c.integration.key for c in call.company.connections.values() if c.status == "Linked"}
    items = [
        {
            "key": integration.key,
            "name": integration.name,
            "sourceType": integration.source_type,
            "isBeta": integration.is_beta,
            "connected": integration.key in linked,
        }
        for integration in call.state.integrations.values()
        if integration.enabled
    ]
    return json_response(200, {"results": items})


def _list_connections(call: _Call) -> SimResponse:
    return json_response(200, {"results": [connection_view(c) for c in call.company.connections.values()]})


def _create_connection(call: _Call) -> SimResponse:
    key = call.body.get("platformKey") if isinstance(call.body, dict) else None
    if not isinstance(key, str) or not key:
        raise CodatError(400, "platformKey is required.", service=_SERVICE, messages=["platformKey is required."])
    integration = call.state.integrations.get(key)
    if integration is None:
        raise CodatError(404, f"No integration was found with key '{key}'", service=_SERVICE)
    if not integration.enabled:
        raise CodatError(400, f"Integration '{key}' is not enabled.", service=_SERVICE)
    same = [c for c in call.company.connections.values() if c.integration.key == key]
    if any(c.status == "Linked" for c in same):
        raise CodatError(409, f"{integration.name} is already connected.", service=_SERVICE)
    if same:  # Link picks up where the customer left off rather than leave a second connection behind
        return json_response(200, connection_view(same[-1]))
    connection = call.state.add_connection(call.company, integration)
    return json_response(201, connection_view(connection))


def _authorize(call: _Call) -> SimResponse:
    connection = _connection(call)
    if connection.status == "Linked":
        raise CodatError(409, f"Data connection {connection.id} is already Linked.", service=_SERVICE)
    # The same step as the hosted Link page's Authorize: a one-time grant, used at once.
    decide(call.state, call.state.issue_otp(connection), connection, "authorize")
    return json_response(200, connection_view(connection))


def _unlink(call: _Call) -> SimResponse:
    connection = _connection(call)
    status = call.body.get("status") if isinstance(call.body, dict) else None
    if status != "Unlinked":
        raise CodatError(400, "Only 'Unlinked' can be set.", service=_SERVICE, messages=["Only 'Unlinked' can be set."])
    if connection.status != "Linked":
        raise CodatError(
            400,
            f"Data connection {connection.id} is {connection.status}; only a Linked connection can be unlinked.",
            service=_SERVICE,
        )
    call.state.set_status(connection, "Unlinked")
    return json_response(200, connection_view(connection))


_COMPANY = r"companies/(?P<company_id>[^/]+)"
_ROUTES: list[tuple[re.Pattern[str], dict[str, _Handler]]] = [
    (re.compile(_COMPANY), {"GET": _get_company}),
    (re.compile(f"{_COMPANY}/integrations"), {"GET": _integrations}),
    (re.compile(f"{_COMPANY}/connections"), {"GET": _list_connections, "POST": _create_connection}),
    (re.compile(f"{_COMPANY}/connections/(?P<connection_id>[^/]+)/authorize"), {"POST": _authorize}),
    (re.compile(f"{_COMPANY}/connections/(?P<connection_id>[^/]+)"), {"PATCH": _unlink}),
]
