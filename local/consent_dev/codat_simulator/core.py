"""The simulator: Codat's behaviour (auth, routing, idempotency, spec checks, faults) over framework-free requests."""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from consent_dev.codat_spec import CodatSpec, load_codat_spec

from .api import Context, SimRequest, build_router
from .catalogue import default_integrations
from .faults import DropError, Fault, FaultKind, FaultRegistry
from .idempotency import IDEMPOTENT_METHODS, IdempotencyStore, fingerprint
from .link import handle_link, is_link_path
from .render import company_json, connection_json
from .responses import JSON_CONTENT_TYPE, CodatError, SimResponse, error_body, json_response
from .state import (
    CONNECTION_STATUSES,
    Company,
    Connection,
    ConnectionStatus,
    Integration,
    SimClock,
    SimEvent,
    SimState,
    SourceType,
)
from .transport import SimTransport
from .wsgi import WSGIApp, make_wsgi_app

DEFAULT_BASE_URL = "https://api.codat.io"
DEFAULT_API_KEY = "sim-codat-api-key"
_MALFORMED_BODY = b'{"id": "3fa85f64-5717-4562-b3fc-2c9'


@dataclass
class RecordedRequest:
    """One request that reached the simulator, faulted or not."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any
    template: str | None
    status: int | None = None
    fault: FaultKind | None = None

    @property
    def operation(self) -> str | None:
        """``"POST /companies/{companyId}/connections"``: what to count calls by."""
        return None if self.template is None else f"{self.method} {self.template}"


@dataclass(frozen=True)
class Outcome:
    """What the transport should do: wait ``delay``, then drop the connection (``drop``) or send ``response``."""

    response: SimResponse | None
    delay: float = 0.0
    drop: DropError | None = None
    performed: bool = True


class SimulatedConnectionDrop(ConnectionError):
    """Raised by ``CodatSimulator.handle`` when a fault drops the connection."""

    def __init__(self, error: DropError, *, performed: bool) -> None:
        super().__init__(f"simulated {error} (request {'performed' if performed else 'not performed'})")
        self.error = error
        self.performed = performed


class CodatSimulator:
    """An in-memory Codat Platform API.

    ``spec="auto"`` loads Codat's spec if present; ``validate`` (default: whether a spec is available) checks every
    request and response against it, recording problems in ``contract_violations``.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        spec: CodatSpec | Literal["auto"] | None = "auto",
        validate: bool | None = None,
        public_base_url: str | None = None,
        clock: SimClock | None = None,
    ) -> None:
        self.api_key = api_key
        self.spec: CodatSpec | None = load_codat_spec() if spec == "auto" else spec
        if validate and self.spec is None:
            raise ValueError("validate=True needs Codat's spec, which was not found")
        self.validating = self.spec is not None if validate is None else validate
        self.public_base_url = public_base_url
        self.clock = clock or SimClock()
        self.faults = FaultRegistry()
        self.requests: list[RecordedRequest] = []
        self.contract_violations: list[str] = []
        self._lock = threading.RLock()
        self._router = build_router()
        self._idempotency = IdempotencyStore()
        self._state = SimState(self.clock, default_integrations())

    # --- inspection and control (Python API for tests) -------------------------------------------------------

    @property
    def base_url(self) -> str:
        """Where linkUrls and redirects point: ``public_base_url``, else Codat's API host (for in-process use)."""
        return (self.public_base_url or DEFAULT_BASE_URL).rstrip("/")

    @property
    def authorization(self) -> str:
        """The Authorization header value the simulator accepts."""
        return "Basic " + base64.b64encode(self.api_key.encode()).decode()

    @property
    def state(self) -> SimState:
        return self._state

    @property
    def companies(self) -> dict[str, Company]:
        return self._state.companies

    @property
    def integrations(self) -> dict[str, Integration]:
        return self._state.integrations

    @property
    def events(self) -> list[SimEvent]:
        return self._state.events

    @property
    def operations(self) -> list[str]:
        """The simulated operations, e.g. ``"POST /companies"`` (spec templates)."""
        return [f"{route.method} {route.template}" for route in self._router.routes]

    def calls(self, method: str | None = None, template: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, optionally only those for ``method`` and spec path ``template``."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and (template is None or r.template == template)
            ]

    def count(self, method: str, template: str) -> int:
        return len(self.calls(method, template))

    def reset(self) -> None:
        """Forget all state, requests, violations, faults and idempotency keys (the API key stays)."""
        with self._lock:
            self._state = SimState(self.clock, default_integrations())
            self.requests.clear()
            self.contract_violations.clear()
            self.faults.clear()
            self._idempotency.clear()

    def inject(self, fault: Fault) -> Fault:
        return self.faults.add(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def add_integration(
        self,
        key: str,
        name: str,
        source_type: SourceType = "Accounting",
        *,
        enabled: bool = True,
        is_offline_connector: bool = False,
        is_beta: bool = False,
    ) -> Integration:
        integration = Integration(
            key, name, source_type, enabled, is_offline_connector=is_offline_connector, is_beta=is_beta
        )
        with self._lock:
            self._state.integrations[key] = integration
        return integration

    def add_company(self, name: str, *, description: str | None = None, tags: dict[str, str] | None = None) -> Company:
        """Create a company directly (as if made in Codat's portal); no request is recorded."""
        with self._lock:
            return self._state.add_company(name, description, tags or {})

    def add_connection(
        self, company_id: str, platform_key: str, *, status: ConnectionStatus = "PendingAuth"
    ) -> Connection:
        with self._lock:
            company = self._state.companies[company_id]
            connection = self._state.add_connection(company, self._state.integrations[platform_key])
            self._state.set_status(connection, status)
            return connection

    def connection(self, company_id: str, connection_id: str) -> Connection:
        """The connection's state object (KeyError if absent)."""
        with self._lock:
            return self._state.companies[company_id].connections[connection_id]

    def get_company(self, company_id: str) -> dict[str, Any]:
        """The company as ``GET /companies/{companyId}`` would return it (KeyError if absent); no request recorded."""
        with self._lock:
            return company_json(self._state, self._state.companies[company_id], self.base_url)

    def get_connection(self, company_id: str, connection_id: str) -> dict[str, Any]:
        """The connection as Codat's API would return it (KeyError if absent); no request recorded."""
        with self._lock:
            connection = self._state.companies[company_id].connections[connection_id]
            return connection_json(self._state, connection, self.base_url)

    def forget_idempotency_keys(self) -> None:
        """As if Codat's 90-minute idempotency window had passed for every key."""
        with self._lock:
            self._idempotency.clear()

    def set_connection_status(self, company_id: str, connection_id: str, status: ConnectionStatus) -> Connection:
        """What the customer (or the platform) does in Codat: authorize (Linked), revoke (Deauthorized), ..."""
        if status not in CONNECTION_STATUSES:
            raise ValueError(f"unknown connection status {status!r}")
        with self._lock:
            connection = self._state.companies[company_id].connections[connection_id]
            self._state.set_status(connection, status)
            return connection

    def transport(self) -> SimTransport:
        """An httpx transport serving this simulator in-process."""
        return SimTransport(self)

    def client(self, *, authorized: bool = True, **kwargs: Any) -> httpx.Client:
        """A sync httpx client wired to ``transport()`` with Codat's base URL and (unless not ``authorized``) the
        API key; ``kwargs`` go to ``httpx.Client`` (e.g. ``timeout=``)."""
        headers = {"Authorization": self.authorization} if authorized else {}
        headers.update(kwargs.pop("headers", {}))
        kwargs.setdefault("base_url", DEFAULT_BASE_URL)
        return httpx.Client(transport=self.transport(), headers=headers, **kwargs)

    @property
    def wsgi_app(self) -> WSGIApp:
        return make_wsgi_app(self)

    # --- request processing ----------------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> SimResponse:
        """Serve one request synchronously; slow faults sleep, drops raise ``SimulatedConnectionDrop``."""
        outcome = self.process(method, path, query, headers, body)
        if outcome.delay:
            time.sleep(outcome.delay)
        if outcome.drop is not None or outcome.response is None:
            raise SimulatedConnectionDrop(outcome.drop or "remote_protocol", performed=outcome.performed)
        return outcome.response

    def process(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> Outcome:
        """Serve one request without sleeping or raising: the transport turns the ``Outcome`` into I/O."""
        request = _parse(method, path, query, headers, body)
        record = RecordedRequest(
            request.method, request.path, dict(request.query), dict(request.headers), body, request.json,
            self._template(request.method, request.path),
        )  # fmt: skip
        with self._lock:
            self.requests.append(record)
        fault = self.faults.take(request.method, request.path)
        record.fault = fault.kind if fault else None

        if fault is not None and not fault.performs:
            if fault.kind == "drop":
                return Outcome(None, drop=fault.connection_error, performed=False)
            with self._lock:
                response = self._fault_response(request, fault)
            record.status = response.status
            return Outcome(response, performed=False)

        with self._lock:
            response = self._respond(request)
        record.status = response.status
        if fault is None:
            return Outcome(response)
        if fault.kind == "slow":
            return Outcome(response, delay=fault.delay)
        if fault.kind == "lose_response":
            return Outcome(response, drop=fault.connection_error)
        with self._lock:
            return Outcome(self._fault_response(request, fault))  # malformed, after performing

    def _template(self, method: str, path: str) -> str | None:
        route, _, _ = self._router.match(method, path)
        if route is not None:
            return route.template
        found = self.spec.match_operation(method, path) if self.spec else None
        return found[0] if found else None

    def _fault_response(self, request: SimRequest, fault: Fault) -> SimResponse:
        if fault.kind == "malformed":
            content = fault.body if fault.body is not None else _MALFORMED_BODY
            return SimResponse(fault.status or 200, {"Content-Type": JSON_CONTENT_TYPE}, content)
        status = fault.status or 500
        body = error_body(status, fault.error_message)
        response = json_response(status, body, fault.response_headers)
        self._check_response(request, response)
        return response

    def _respond(self, request: SimRequest) -> SimResponse:
        if is_link_path(request.path):
            return handle_link(self._state, request.method, request.path, request.query)
        response = self._respond_api(request)
        self._check_response(request, response)
        return response

    def _respond_api(self, request: SimRequest) -> SimResponse:
        if not self._authorized(request.headers.get("authorization", "")):
            return CodatError(401, "Unauthorized").response()
        route, params, path_known = self._router.match(request.method, request.path)
        if route is None:
            if self.spec is not None and self.spec.match_operation(request.method, request.path):
                return CodatError(501, f"The simulator does not implement {request.method} {request.path}").response()
            if path_known:
                return CodatError(405, "The requested resource does not support this HTTP method.").response()
            return CodatError(404, f"No resource at {request.path}").response()

        problems = self._request_problems(request)
        if problems:
            self.contract_violations.extend(f"request: {p}" for p in problems)
            return CodatError(400, "Error processing request - not valid.", messages=problems).response()

        key = request.headers.get("idempotency-key") if request.method in IDEMPOTENT_METHODS else None
        print_ = fingerprint(request.method, request.path, request.body)
        if key:
            previous = self._idempotency.lookup(key, self.clock.now())
            if previous is not None:
                if previous[0] == print_:
                    return previous[1]
                return CodatError(
                    422, f"The Idempotency-Key '{key}' was already used for a different request."
                ).response()

        context = Context(self._state, request, params, self.base_url)
        try:
            response = route.handler(context)
        except CodatError as error:
            response = error.response()
        if key:
            self._idempotency.store(key, print_, response, self.clock.now())
        return response

    def _authorized(self, header: str) -> bool:
        scheme, _, credentials = header.partition(" ")
        return scheme.lower() == "basic" and credentials.strip() == self.authorization.partition(" ")[2]

    def _request_problems(self, request: SimRequest) -> list[str]:
        if not self.validating or self.spec is None:
            return []
        if request.json_error:
            return [f"{request.method} {request.path}: the request body is not valid JSON"]
        return self.spec.validate_request(request.method, request.path, request.query, request.json)

    def _check_response(self, request: SimRequest, response: SimResponse) -> None:
        # Anything the spec rejects in our own answers is a simulator bug; record it where tests will look.
        if not self.validating or self.spec is None:
            return
        if self.spec.match_operation(request.method, request.path) is None:
            return
        try:
            payload = json.loads(response.body) if response.body else None
        except ValueError:
            self.contract_violations.append(f"response: {request.method} {request.path}: body is not JSON")
            return
        problems = self.spec.validate_response(request.method, request.path, response.status, payload)
        self.contract_violations.extend(f"response: {p}" for p in problems)


def _parse(
    method: str, path: str, query: dict[str, str] | None, headers: dict[str, str] | None, body: bytes
) -> SimRequest:
    request = SimRequest(
        method.upper(), path, dict(query or {}), {k.lower(): v for k, v in (headers or {}).items()}, body
    )
    if body:
        try:
            request.json = json.loads(body)
        except ValueError:
            request.json_error = True
    return request
