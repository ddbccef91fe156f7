"""The simulator: Codat's behaviour (auth, routing, idempotency, spec checks, faults) over framework-free requests."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal

import httpx

from consent.webhooks.signature import decode_secret
from consent_dev.codat_spec import CodatSpec, load_codat_spec, pointer

from .api import Context, SimRequest, build_router
from .catalogue import default_integrations
from .consumers import CODAT_EVENT_TYPES, WebhookConsumer, WebhookConsumers
from .control import ConnectionStateError, handle_control, is_control_path
from .data import DATA_TYPES, DEFAULT_READ_DELAY, FAILURE_STATUSES, dataset_json
from .deliveries import DEFAULT_TIMEOUT, Delivery, WebhookDispatcher, WebhookMessage, WebhookSettings, scaled_schedule
from .faults import DropError, Fault, FaultKind, FaultRegistry
from .idempotency import IDEMPOTENT_METHODS, IdempotencyStore, fingerprint
from .link import LinkSettings, handle_link, is_link_path
from .render import company_json, connection_json
from .responses import JSON_CONTENT_TYPE, CodatError, SimResponse, error_body, json_response
from .sdk import SDK_API_PREFIX, cors_headers, handle_sdk, is_sdk_path, preflight
from .serving import Outcome
from .state import (
    CONNECTION_STATUSES,
    DEFAULT_INITIAL_READ_DELAY,
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

DEFAULT_BASE_URL = "https://api.codat.io"
DEFAULT_API_KEY = "sim-codat-api-key"
_MALFORMED_BODY = b'{"id": "3fa85f64-5717-4562-b3fc-2c9'
QUEUE_DATA_TEMPLATE = "/companies/{companyId}/data/queue/{dataType}"
_QUEUE_PATH = re.compile(r"/companies/(?P<company>[^/]+)/data/queue/(?P<data_type>[^/]+)/?")


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


class SimulatedConnectionDrop(ConnectionError):
    """Raised by ``CodatSimulator.handle`` when a fault drops the connection."""

    def __init__(self, error: DropError, *, performed: bool) -> None:
        super().__init__(f"simulated {error} (request {'performed' if performed else 'not performed'})")
        self.error = error
        self.performed = performed


class CodatSimulator:
    """An in-memory Codat Platform API, with its Link pages and webhook deliveries.

    ``spec="auto"`` loads Codat's spec if present; ``validate`` (default: whether a spec is available) checks every
    request, response and webhook body against it, recording problems in ``contract_violations``.
    ``redirect_url`` is where Link pages send the customer afterwards (default: the simulator's own
    ``/link/finished``); ``initial_read_delay`` is how long after each authorization ``read.completed.initial`` comes,
    ``read_delay`` how long after it is queued (``POST /companies/{companyId}/data/...``) a read's ``read.completed``.
    ``sdk_origins``: the browser origins the Link SDK stand-in's API answers (CORS; None: any), i.e. the bank's page.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        *,
        spec: CodatSpec | Literal["auto"] | None = "auto",
        validate: bool | None = None,
        public_base_url: str | None = None,
        clock: SimClock | None = None,
        redirect_url: str | None = None,
        initial_read_delay: float = DEFAULT_INITIAL_READ_DELAY,
        read_delay: float = DEFAULT_READ_DELAY,
        sdk_origins: Sequence[str] | None = None,
    ) -> None:
        self.api_key = api_key
        self.sdk_origins: tuple[str, ...] | None = None if sdk_origins is None else tuple(sdk_origins)
        self._sdk_faults: list[Fault] = []
        self.spec: CodatSpec | None = load_codat_spec() if spec == "auto" else spec
        if validate and self.spec is None:
            raise ValueError("validate=True needs Codat's spec, which was not found")
        self.validating = self.spec is not None if validate is None else validate
        self.public_base_url = public_base_url
        self.redirect_url = redirect_url
        self.clock = clock or SimClock()
        self.faults = FaultRegistry()
        self.requests: list[RecordedRequest] = []
        self.contract_violations: list[str] = []
        self._lock = threading.RLock()
        self._router = build_router()
        self._idempotency = IdempotencyStore()
        self._dispatcher: WebhookDispatcher | None = None
        self._consumers = WebhookConsumers()
        self._own_consumer_id: str | None = None  # the one configure_webhooks() made
        self._initial_read_delay = initial_read_delay
        self._read_delay = read_delay
        self._state = self._new_state()

    def _new_state(self) -> SimState:
        state = SimState(
            self.clock,
            default_integrations(),
            initial_read_delay=self._initial_read_delay,
            read_delay=self._read_delay,
            webhook_consumers=self._consumers,
        )
        state.base_url = lambda: self.base_url
        state.on_event = self._on_event
        return state

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
        """Every event Codat would announce, oldest first (first reads that are due complete here too)."""
        with self._lock:
            self._state.complete_due_reads()
            return self._state.events

    @property
    def initial_read_delay(self) -> float:
        return self._initial_read_delay

    @initial_read_delay.setter
    def initial_read_delay(self, seconds: float) -> None:
        with self._lock:
            self._initial_read_delay = self._state.initial_read_delay = seconds

    @property
    def read_delay(self) -> float:
        return self._read_delay

    @read_delay.setter
    def read_delay(self, seconds: float) -> None:
        with self._lock:
            self._read_delay = self._state.read_delay = seconds

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
        """Forget all state, requests, violations, faults, idempotency keys and webhook messages (the API key, the
        delivery settings and the webhook consumers stay: they are the client's configuration)."""
        with self._lock:
            self._state = self._new_state()
            self.requests.clear()
            self.contract_violations.clear()
            self.faults.clear()
            self._idempotency.clear()
            if self._dispatcher is not None:
                self._dispatcher.clear()

    def inject(self, fault: Fault) -> Fault:
        return self.faults.add(fault)

    def clear_faults(self) -> None:
        self.faults.clear()

    def inject_sdk_fault(self, status: int = 503, *, times: int | None = 1, message: str | None = None) -> Fault:
        """Make the next ``times`` calls of the Link/Connections SDK stand-in to its API fail with ``status`` and
        Codat's error body (``None``: until cleared), so the components' ``onError`` can be rehearsed."""
        fault = self.inject(
            Fault("status", path=f"^{re.escape(SDK_API_PREFIX)}", status=status, times=times, message=message)
        )
        with self._lock:
            self._sdk_faults.append(fault)
        return fault

    def clear_sdk_faults(self) -> None:
        with self._lock:
            faults, self._sdk_faults = self._sdk_faults, []
        for fault in faults:
            self.faults.remove(fault)

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

    def deauthorize(self, company_id: str, connection_id: str) -> Connection:
        """The platform revokes a Linked connection: Deauthorized, with ``connection.disconnected``.

        Already Deauthorized: nothing changes. KeyError if absent; ConnectionStateError if PendingAuth or Unlinked."""
        with self._lock:
            connection = self._state.companies[company_id].connections[connection_id]
            if connection.status not in ("Linked", "Deauthorized"):
                raise ConnectionStateError(
                    f"Connection {connection_id} is {connection.status}; only a Linked one can be deauthorized."
                )
            self._state.set_status(connection, "Deauthorized")
            return connection

    # --- data: reads and their status (``POST .../data/queue/{dataType}``, ``.../data/all``, ``.../dataStatus``) --

    def data_status(self, company_id: str) -> dict[str, Any]:
        """Each data type's status as ``GET /companies/{companyId}/dataStatus`` answers (KeyError if absent); no
        request recorded."""
        with self._lock:
            self._state.complete_due_reads()
            return self._state.companies[company_id].data.status_json()

    def datasets(self, company_id: str) -> list[dict[str, Any]]:
        """The company's pull operations, oldest first, as Codat shows them (``PullOperation``)."""
        with self._lock:
            self._state.complete_due_reads()
            return [dataset_json(d) for d in self._state.companies[company_id].data.datasets.values()]

    def fail_next_read(self, company_id: str, data_type: str, status: str = "FetchError", *, times: int = 1) -> None:
        """The next ``times`` reads of ``data_type`` to complete for the company end with ``status`` (one of Codat's
        pull operation statuses other than Complete and those of a read under way) instead of Complete.
        KeyError for an unknown company; ValueError for an unknown data type or status."""
        if data_type not in DATA_TYPES:
            raise ValueError(f"{data_type!r} is not one of Codat's data types")
        if status not in FAILURE_STATUSES:
            raise ValueError(f"{status!r} is not a status a read ends with other than Complete: {FAILURE_STATUSES}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._state.companies[company_id].data.fail_next(data_type, status, times)

    def clear_read_failures(self, company_id: str, data_type: str | None = None) -> None:
        """Forget the endings armed by ``fail_next_read`` (for one data type, or all); KeyError if absent."""
        with self._lock:
            self._state.companies[company_id].data.clear_failures(data_type)

    def complete_reads(self) -> list[dict[str, Any]]:
        """Complete every pending read now, first reads included, with its webhook; the pull operations ended."""
        with self._lock:
            return [dataset_json(d) for d in self._state.complete_due_reads(everything=True)]

    def queue_requests(self, company_id: str, data_type: str | None = None) -> int:
        """How many ``POST /companies/{companyId}/data/queue/{dataType}`` requests reached the simulator for the
        company (of ``data_type`` only, when given), whatever became of them (refused and faulted ones too)."""
        counted = self._queue_requests_by_type(company_id)
        return sum(counted.values()) if data_type is None else counted.get(data_type, 0)

    def _queue_requests_by_type(self, company_id: str) -> dict[str, int]:
        counted: dict[str, int] = {}
        for request in self.calls("POST", QUEUE_DATA_TEMPLATE):
            found = _QUEUE_PATH.fullmatch(request.path)
            if found and found["company"] == company_id:
                counted[found["data_type"]] = counted.get(found["data_type"], 0) + 1
        return counted

    def data_summary(self, company_id: str) -> dict[str, Any]:
        """What ``GET /_simulator/companies/{companyId}/data`` answers (KeyError if absent)."""
        queued = self._queue_requests_by_type(company_id)
        with self._lock:
            self._state.complete_due_reads()
            company = self._state.companies[company_id]
            pending = [r for r in self._state.pending_reads if r.company_id == company_id]
            return {
                "companyId": company_id,
                "queueRequests": {"total": sum(queued.values()), "byDataType": queued},
                "dataStatus": company.data.status_json(),
                "datasets": [dataset_json(d) for d in company.data.datasets.values()],
                "pendingReads": len(pending),
                "failNext": {t: list(statuses) for t, statuses in company.data.failures.items()},
            }

    # --- webhook deliveries ----------------------------------------------------------------------------------

    def configure_deliveries(
        self,
        secret: str,
        *,
        schedule: Sequence[float] | None = None,
        time_scale: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Deliver every event from now on to each webhook consumer it is for (``GET/POST /webhooks``), signed
        with ``secret`` (``whsec_…``; Codat's Portal shows a consumer's secret, here one for all), as Codat does.
        Until this is called, events are only recorded, whatever consumers exist.

        ``schedule`` lists the wait before each attempt, in seconds, the first counted from the event and each later
        one from the failure before it; Codat's (Svix's) is the default: 0, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h,
        i.e. 8 attempts. Every wait is multiplied by ``time_scale`` (e.g. 0.001 for tests). An attempt fails on a
        non-2xx answer (3xx included), after ``timeout`` seconds, or on a connection error; after the last, the
        message is marked failed. A message whose consumer is deleted or disabled meanwhile ends failed, unsent.
        ``transport`` replaces the network (an httpx transport). Configuring again applies to pending messages too.
        Starts the delivery worker (``stop_deliveries`` stops it)."""
        decode_secret(secret)  # a malformed secret fails here, not on the worker
        settings = WebhookSettings(secret, scaled_schedule(schedule, time_scale), timeout, transport)
        with self._lock:
            if self._dispatcher is None:
                self._dispatcher = WebhookDispatcher(settings, self._tick, self._consumers.endpoint)
            else:
                self._dispatcher.configure(settings)
            dispatcher = self._dispatcher
        dispatcher.start()

    def configure_webhooks(
        self,
        url: str,
        secret: str,
        *,
        schedule: Sequence[float] | None = None,
        time_scale: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Deliver every event from now on to ``url``: ``configure_deliveries`` (see there), and a webhook consumer
        for every Codat event type at ``url``. Configuring again moves that consumer (enabled again) to the new
        ``url``, for its pending messages too; other consumers are left as they are."""
        self.configure_deliveries(
            secret, schedule=schedule, time_scale=time_scale, timeout=timeout, transport=transport
        )
        with self._lock:
            own = self._own_consumer_id
            if own is not None and self._consumers.get(own) is not None:
                self._consumers.point(own, url, CODAT_EVENT_TYPES)
            else:
                self._own_consumer_id = self._consumers.add(url, CODAT_EVENT_TYPES).id

    @property
    def webhook_consumers(self) -> list[WebhookConsumer]:
        """Codat's webhook consumers (copies), oldest first, as ``GET /webhooks`` lists them."""
        return self._consumers.all()

    def add_webhook_consumer(
        self,
        url: str,
        event_types: Sequence[str],
        *,
        disabled: bool = False,
        company_tags: Sequence[str] | None = None,
    ) -> WebhookConsumer:
        """A consumer made directly (as if in Codat's Portal); no request is recorded."""
        return self._consumers.add(url, event_types, disabled=disabled, company_tags=company_tags)

    def disable_webhook_consumer(self, consumer_id: str) -> WebhookConsumer:
        """What Codat does after days of failed deliveries: nothing more is sent to it (KeyError if absent)."""
        consumer = self._consumers.disable(consumer_id)
        if self._dispatcher is not None:
            self._dispatcher.wake()  # its pending messages end now, not at their next attempt
        return consumer

    def stop_deliveries(self, timeout: float = 5.0) -> None:
        """Stop the worker after its attempt in flight; what is pending is delivered once deliveries are configured
        again."""
        if self._dispatcher is not None:
            self._dispatcher.stop(timeout)

    @property
    def webhook_url(self) -> str | None:
        """Where events go: the consumer ``configure_webhooks`` made, else the first enabled one (None: nowhere)."""
        own = self._consumers.get(self._own_consumer_id) if self._own_consumer_id else None
        if own is not None:
            return own.url
        return next((c.url for c in self._consumers.all() if not c.disabled), None)

    @property
    def delivering(self) -> bool:
        """Whether the delivery worker is running."""
        return self._dispatcher is not None and self._dispatcher.running

    @property
    def deliveries(self) -> list[Delivery]:
        """Every delivery attempt so far, in the order made."""
        return self._dispatcher.deliveries if self._dispatcher is not None else []

    @property
    def webhook_messages(self) -> list[WebhookMessage]:
        """Every event queued for delivery (since deliveries were configured), one message per consumer it is for,
        with its status and attempt count."""
        return self._dispatcher.messages if self._dispatcher is not None else []

    def deliver_now(self) -> None:
        """Skip the waits: complete every pending read (first reads and queued ones), and make every waiting retry
        due now."""
        with self._lock:
            self._state.complete_due_reads(everything=True)
        if self._dispatcher is not None:
            self._dispatcher.hurry()

    def clock_advanced(self, by: timedelta) -> None:
        """Its clock was just moved forward by ``by`` (``consent_dev.clock.DevClock``): what is due by the new time
        happens now — first reads complete (their webhooks queued before this returns), and each webhook retry
        waits ``by`` less."""
        if self._dispatcher is not None:
            self._dispatcher.advance(by.total_seconds())
        self._tick()
        if self._dispatcher is not None:
            self._dispatcher.wake()

    def flush_deliveries(self, timeout: float = 5.0, *, hurry: bool = False) -> bool:
        """Wait until nothing is pending: no first read still to complete, no message still to deliver.

        True when drained; False if ``timeout`` seconds passed first (e.g. a retry waits longer, or the worker was
        never started). Without delivery settings only the reads are waited for. ``hurry``: skip every wait
        meanwhile (``deliver_now`` over and over), so each message ends delivered or out of attempts."""
        deadline = time.monotonic() + timeout
        while True:
            if hurry:
                self.deliver_now()
            with self._lock:
                self._state.complete_due_reads()
                reads_pending = bool(self._state.pending_reads)
            dispatcher = self._dispatcher
            if not reads_pending and (dispatcher is None or not dispatcher.busy):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if dispatcher is None:
                time.sleep(min(remaining, 0.01))
            else:
                dispatcher.wake()
                dispatcher.wait_for_change(min(remaining, 0.02))

    def _tick(self) -> float | None:
        # On the delivery worker: complete due reads (queuing their webhooks); say when the next one is due.
        with self._lock:
            self._state.complete_due_reads()
            due = self._state.next_read_due()
            return None if due is None else max(0.0, (due - self.clock.now()).total_seconds())

    def _on_event(self, event: SimEvent) -> None:
        # Under the lock, from SimState.emit: check the body against Codat's spec, then queue it for delivery.
        if self.validating and self.spec is not None:
            where = pointer(
                "webhooks", event.event_type, "post", "requestBody", "content", "application/json", "schema"
            )
            problems = self.spec.validate(event.body, where)
            self.contract_violations.extend(f"webhook: {event.event_type}: {p}" for p in problems)
        if self._dispatcher is not None:
            consumers = self._consumers.receiving(event)
            if consumers:
                self._dispatcher.enqueue(event, consumers)

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
        if is_sdk_path(request.path):
            # Called by the bank's page in a browser: CORS on every answer, faults included.
            origin = request.headers.get("origin")
            if request.method == "OPTIONS":
                return Outcome(preflight(self.sdk_origins, origin))
            outcome = self._process(request, body)
            if outcome.response is None or "access-control-allow-origin" in _lower(outcome.response.headers):
                return outcome
            cors = cors_headers(self.sdk_origins, origin)
            return replace(outcome, response=replace(outcome.response, headers={**outcome.response.headers, **cors}))
        return self._process(request, body)

    def _process(self, request: SimRequest, body: bytes) -> Outcome:
        if is_control_path(request.path):
            # The simulator's own routes: not Codat's API, so neither recorded, faulted, authorized nor spec-checked.
            return Outcome(handle_control(self, request))
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
        self._state.complete_due_reads()
        if is_sdk_path(request.path):
            return handle_sdk(self._state, request.method, request.path, request.headers, request.json)
        if is_link_path(request.path):
            return handle_link(self._state, request, LinkSettings(self.base_url, self.redirect_url))
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


def _lower(headers: dict[str, str]) -> set[str]:
    return {name.lower() for name in headers}


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
