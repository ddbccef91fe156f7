"""`make dev`: the whole product on 127.0.0.1 — template.yaml's API on the real handlers, embedded AWS, the Codat
simulator (or a real Codat) with signed webhooks, the outbox relay, a live log of every consent event, and dev-only
controls under /_dev/: a clock the product and the simulator share, moved forward on request, and the template's
scheduled functions run on request."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.utils import send_from_directory
from werkzeug.wrappers import Request, Response

from consent.api.problems import PROBLEM_JSON, Problem
from consent.codat.client import CodatClient
from consent.contract import event_schema, schema_file_name
from consent.domain.resources import utc_now
from consent.events import ConsentEventType
from consent.services import Services
from consent.settings import Settings
from consent.usecases.webhook_consumers import ensure as ensure_webhook_consumer
from consent_dev import contracts
from consent_dev.aws import REGION, Deployed, MotoServer, deploy, empty_tables
from consent_dev.clock import ClockError, DevClock, parse_duration
from consent_dev.codat_simulator import CodatSimulator, SimServer, serve
from consent_dev.codat_webhooks import DEV_CUSTOMER_REF_KEY, DEV_WEBHOOK_SECRET
from consent_dev.cors import cors_policy
from consent_dev.gateway import Gateway, GatewayRequest, GatewayResponse, fold_headers
from consent_dev.jwt_auth import TOKEN_SECONDS, JwtAuthorizer, LocalIssuer
from consent_dev.lambda_runtime import Handler, LambdaContext, load_handler, scheduled_event
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue, ReceivedEvent
from consent_dev.template import (
    PSEUDO_PARAMETERS,
    REPO_ROOT,
    Function,
    Schedule,
    deployed_with,
    function_environment,
    functions,
    load_template,
    parameter_defaults,
    powertools_environment,
    resolve,
    resources_of_type,
    routes,
    schedules,
)

log = logging.getLogger("consent_dev.devserver")

HOST = "127.0.0.1"  # never anything else: this serves fake credentials and a stand-in authorizer
DEFAULT_PORT = 3000
WEBHOOK_PATH = "/webhooks/codat"
DEV_PATH = "/_dev/"  # dev-only controls: the clock, the schedules (never in the template, never deployed)
ISSUER_PATH = "/dev/issuer"  # the local identity provider's OpenID discovery and JWKS
TOKEN_PATH = "/dev/token"  # noqa: S105 - a route: dev only, a customer token, no password
RELAY_FUNCTION = "OutboxRelayFunction"
SIMULATOR_API_KEY = "dev-codat-api-key"  # a documented fake, accepted only by the simulator
EVENTS_POLL_SECONDS = 0.2
LAMBDA_DEFAULT_TIMEOUT = 3.0  # Lambda's own default when neither the function nor Globals says

# Added to the template Globals' POWERTOOLS_* settings for the command (`template.powertools_environment`).
LOCAL_POWERTOOLS_SETTINGS = {
    "POWERTOOLS_TRACE_DISABLED": "1",  # no X-Ray daemon on a laptop
    "POWERTOOLS_METRICS_DISABLED": "true",  # EMF blobs after every request would drown the log
}


class DevStackError(RuntimeError):
    """The dev stack cannot start as configured (the message says what to change)."""


# -- configuration ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CodatTarget:
    """Which Codat the product talks to: the built-in simulator, or a real one (CODAT_BASE_URL + CODAT_API_KEY)."""

    base_url: str | None  # None: the simulator's, once it is served
    api_key: str
    webhook_secret: str

    @property
    def simulated(self) -> bool:
        return self.base_url is None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> CodatTarget:
        base_url = environ.get("CODAT_BASE_URL", "").strip()
        api_key = environ.get("CODAT_API_KEY", "").strip()
        secret = environ.get("CODAT_WEBHOOK_SECRET", "").strip() or DEV_WEBHOOK_SECRET
        if bool(base_url) != bool(api_key):
            # Half a configuration would silently fall back to the simulator: refuse it instead.
            raise DevStackError("set both CODAT_BASE_URL and CODAT_API_KEY to use a real Codat, or neither")
        if base_url:
            return cls(base_url.rstrip("/"), api_key, secret)
        return cls(None, SIMULATOR_API_KEY, secret)


def function_timeout(function: Function, template: Mapping[str, Any] | None = None) -> float:
    """The function's Timeout in template.yaml: its own property, else Globals, else Lambda's default."""
    template = template or load_template()
    default = template.get("Globals", {}).get("Function", {}).get("Timeout", LAMBDA_DEFAULT_TIMEOUT)
    properties = template["Resources"][function.logical_id]["Properties"]
    return float(properties.get("Timeout", default))


def function_memory(function: Function, template: Mapping[str, Any] | None = None) -> int:
    template = template or load_template()
    default = template.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
    return int(template["Resources"][function.logical_id]["Properties"].get("MemorySize", default))


def function_services(
    function: Function,
    refs: Mapping[str, Any],
    *,
    clock: Callable[[], datetime] = utc_now,
    api_url: str | None = None,
) -> Services:
    """The function's ports as Lambda would build them: its template environment, resolved against the
    embedded resources (so the Codat key and webhook secret come from Secrets Manager, as in AWS), on `clock`.
    With `api_url`, a setting naming the deployed API's own URL (reconciliation's CODAT_WEBHOOK_URL) names it."""
    environment = function_environment(function, dict(refs))
    if environment.get("JOURNEYS_FILE", "").startswith(LAYER_ROOT):
        # The layer's python/ is shared/ here (the package and any journeys file a bank ships beside it).
        environment["JOURNEYS_FILE"] = str(REPO_ROOT / "shared" / environment["JOURNEYS_FILE"].removeprefix(LAYER_ROOT))
    if api_url is not None:
        environment = {name: _local_api_url(value, refs, api_url) for name, value in environment.items()}
    return Services(Settings.from_environment(environment), clock=clock)


def _local_api_url(value: str, refs: Mapping[str, Any], api_url: str) -> str:
    # `https://${ConsentApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}` as resolved here: the local API's URL.
    region = refs.get("AWS::Region", PSEUDO_PARAMETERS["AWS::Region"])
    suffix = refs.get("AWS::URLSuffix", PSEUDO_PARAMETERS["AWS::URLSuffix"])
    for logical_id in resources_of_type("AWS::Serverless::HttpApi"):
        deployed = f"https://{refs.get(logical_id, logical_id)}.execute-api.{region}.{suffix}"
        if value == deployed or value.startswith(f"{deployed}/"):
            return api_url + value.removeprefix(deployed)
    return value


LAYER_ROOT = "/opt/python/"


# -- the functions behind the API: one Lambda "container" per function ---------------------------------------


@dataclass
class LambdaFunction:
    """One function's execution environment: its handler, its services (built once) and its settings.

    Invocations are serialised like a single Lambda environment's: the handlers keep per-request state
    (the Powertools resolver's context, `Services.time_left`) in module globals that a second thread would
    overwrite mid-request — in the worst case with another customer's identity."""

    function: Function
    handler: Handler
    services: Services
    timeout: float
    memory_mb: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            # The deadline starts when the environment takes the request, as Lambda's does.
            context = LambdaContext(self.function.logical_id, timeout_seconds=self.timeout, memory_mb=self.memory_mb)
            started = time.monotonic()
            result = self.handler(event, context, services=self.services)
            elapsed = time.monotonic() - started
        if elapsed > self.timeout:
            log.warning("%s took %.1f s: Lambda would have timed it out at %.0f s", self.name, elapsed, self.timeout)
        return result

    @property
    def name(self) -> str:
        return self.function.logical_id


def problem_response(status: int, code: str, detail: str, headers: Mapping[str, str] | None = None) -> Response:
    """A problem+json answer shaped like the product's own (same body, request id header)."""
    from consent.api.resolver import REQUEST_ID_HEADER  # noqa: PLC0415 - after main() set Powertools' environment

    request_id = str(uuid.uuid4())
    body = Problem(status, code, detail).body(request_id)
    all_headers = {REQUEST_ID_HEADER: request_id, "Apigw-Requestid": request_id, **(headers or {})}
    return Response(body, status=status, headers=all_headers, content_type=PROBLEM_JSON)


def gateway_request(request: Request) -> GatewayRequest:
    """A request as it reached the socket, for API Gateway: the path as sent (werkzeug's `path` is decoded)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
    return GatewayRequest(
        request.method,
        str(raw).split("?", 1)[0] or "/",
        request.environ.get("QUERY_STRING", ""),
        fold_headers(request.headers.items()),
        request.get_data(),
    )


def http_response(answer: GatewayResponse) -> Response:
    response = Response(answer.body, status=answer.status)
    response.headers.remove("Content-Type")  # only what the answer says, as API Gateway sends it
    for name, value in answer.headers:
        response.headers.add(name, value)
    return response


def journey_names(api_functions: Iterable[LambdaFunction]) -> list[str]:
    """The journeys the API functions offer (their settings' JOURNEYS_FILE, the packaged one by default)."""
    return sorted({name for function in api_functions for name in function.services.catalog.names})


# -- the consent events log --------------------------------------------------------------------------------


class EventsLog:
    """A bank system's view of the topic, in the log: an SQS queue subscribed to it, polled in a thread,
    one line per published CloudEvent; `events()` gives them all, for whoever wants to look (tests)."""

    def __init__(self, topic_arn: str) -> None:
        self._queue = EventsQueue.subscribe(topic_arn)
        self._published: list[dict[str, Any]] = []
        # Events that broke their published contract (schema or attributes), as "type id: problem" lines.
        self.violations: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="consent-events-log", daemon=True)

    def start(self) -> EventsLog:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._published)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                for received in self._queue.receive():
                    self._check(received)
                    self._record(received.event)
            except Exception:  # keep logging through a hiccup of the embedded AWS
                log.exception("events: could not read the subscriber queue; retrying")
            self._stopping.wait(EVENTS_POLL_SECONDS)

    def _check(self, received: ReceivedEvent) -> None:
        problems = contracts.validate_message(received.body, received.attributes)
        if problems:
            lines = [f"{received.event.get('type')} {received.event.get('id')}: {p}" for p in problems]
            with self._lock:
                self.violations.extend(lines)
            log.error("event   OUT OF CONTRACT %s", "; ".join(lines))

    def _record(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._published.append(event)
        data = event.get("data") or {}
        extra = "".join(
            f"  {name}={data[name]}" for name in ("journey", "connectionId", "platformKey", "status") if data.get(name)
        )
        log.info("event   %-34s id=%s subject=%s%s", event.get("type"), event.get("id"), event.get("subject"), extra)


# -- the stack ---------------------------------------------------------------------------------------------


def _forget_aws_clients() -> None:
    # Powertools keeps one Secrets Manager client per process, bound to the endpoint of its first use: after
    # the endpoint changes (this stack's moto, or the one before it) it must be built again, cache included.
    from aws_lambda_powertools.utilities.parameters import clear_caches  # noqa: PLC0415

    clear_caches()  # type: ignore[no-untyped-call]


class _QuietHandler(WSGIRequestHandler):
    """The API logs its own line per request (with the function and its duration)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _bind(port: int, app: Callable[..., Iterable[bytes]]) -> BaseWSGIServer:
    # Bound here rather than by werkzeug, which answers a taken port with sys.exit(1).
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((HOST, port))
        listener.listen(128)
    except OSError as error:
        listener.close()
        raise DevStackError(f"cannot listen on {HOST}:{port} ({error.strerror}): choose another PORT") from error
    try:
        return make_server(HOST, port, app, threaded=True, request_handler=_QuietHandler, fd=listener.fileno())
    finally:
        listener.close()  # werkzeug listens on its own duplicate of the socket


class DevStack:
    """Everything `make dev` runs, on 127.0.0.1: `DevStack(port=0, codat_port=0).start()` → `api_url`,
    `docs_url`, `openapi_url`, `health_url`, `webhook_url`, `codat_url`; `.stop()` shuts it all down.

    `port=0` picks a free port; `codat_port=None` means `port + 1` for a fixed port, else a free one.
    `environ` (default: os.environ) supplies CODAT_BASE_URL / CODAT_API_KEY / CODAT_WEBHOOK_SECRET."""

    def __init__(
        self,
        port: int = 0,
        codat_port: int | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        issuer: LocalIssuer | None = None,
        parameters: Mapping[str, str] | None = None,
    ):
        self.codat = CodatTarget.from_environment(os.environ if environ is None else environ)
        # The template's parameters as a deployment would set them (sam deploy --parameter-overrides).
        self.parameters = {**parameter_defaults(), **(parameters or {})}
        self._codat_port = codat_port if codat_port is not None else (port + 1 if port else 0)
        self._server = _bind(port, self._wsgi)
        # The bank's identity provider, locally: its keys are made now; `issuer=` lets a test mint tokens first.
        self.issuer = issuer or LocalIssuer(url=f"{self.api_url}{ISSUER_PATH}")
        self._server_thread = threading.Thread(target=self._server.serve_forever, name="dev-api", daemon=True)
        self.state = "starting"
        self.parts: dict[str, dict[str, Any]] = {}
        self.moto: MotoServer | None = None
        self.deployed: Deployed | None = None
        self.simulator: CodatSimulator | None = None
        self._sim_server: SimServer | None = None
        self.api_functions: dict[str, LambdaFunction] = {}
        # The one time of the stack: the functions' `Services.clock` and the simulator's; /_dev/clock moves it.
        self.clock = DevClock()
        # The scheduled functions (template order), each with its first scheduled event: /_dev/schedules.
        self.scheduled: dict[str, tuple[Schedule, LambdaFunction]] = {}
        self.gateway: Gateway | None = None
        self.relay: StreamPump | None = None
        self.events_log: EventsLog | None = None
        self._saved_environ: dict[str, str | None] = {}
        self._openapi: dict[str, Any] | None = None

    # -- addresses -----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def health_url(self) -> str:
        return f"{self.api_url}/health"

    @property
    def openapi_url(self) -> str:
        return f"{self.api_url}/openapi.json"

    @property
    def docs_url(self) -> str:
        return f"{self.api_url}/docs"

    @property
    def webhook_url(self) -> str:
        return f"{self.api_url}{WEBHOOK_PATH}"

    @property
    def codat_url(self) -> str:
        """Codat's base URL as the product uses it: the simulator's, or the real one."""
        if self.codat.base_url is not None:
            return self.codat.base_url
        if self._sim_server is None:
            raise DevStackError("the Codat simulator is not running yet")
        return self._sim_server.url

    @property
    def topic_arn(self) -> str:
        if self.deployed is None:
            raise DevStackError("not started")
        return self.deployed.topics["ConsentEventsTopic"]

    @property
    def ready(self) -> bool:
        return self.state == "ok"

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self) -> DevStack:
        """Serve /health (503) at once, then bring up each part; /health answers 200 when all are up."""
        self._server_thread.start()
        try:
            self._start_aws()
            self._start_codat()
            self._start_api()
            self._start_schedules()
            self._start_relay()
            self._start_events()
        except BaseException:
            self.stop()
            raise
        self.state = "ok"
        return self

    def stop(self) -> None:
        """Shut every part down, newest first; safe to call twice and after a failed start."""
        self.state = "stopping"
        steps: list[tuple[str, Callable[[], None]]] = [
            ("webhook deliveries", self._stop_deliveries),
            ("api", self._stop_api),
            ("outbox relay", lambda: self.relay.stop() if self.relay else None),
            ("events log", lambda: self.events_log.stop() if self.events_log else None),
            ("codat simulator", lambda: self._sim_server.shutdown() if self._sim_server else None),
            ("aws", lambda: self.moto.stop() if self.moto else None),
        ]
        for name, step in steps:
            try:
                step()
            except Exception:  # one stuck part must not keep the others (and their ports) alive
                log.exception("dev: stopping the %s failed", name)
        self.relay = self.events_log = self._sim_server = self.moto = None
        self._restore_environment()
        self.state = "stopped"

    def reset(self) -> None:
        """An empty deployment again, without a restart: every item of every table deleted, and the simulator's
        companies, connections, keys and undelivered webhooks forgotten. For a test whose every run must meet
        the world its first run met."""
        if self.moto is None or self.deployed is None:
            raise DevStackError("the stack is not running")
        if self.simulator is not None:
            self.simulator.reset()
        empty_tables(self.moto.endpoint, self.deployed)

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _start_aws(self) -> None:
        self.moto = MotoServer(HOST).start()
        self._set_environment(self.moto.environment())
        secrets = {
            "CodatApiKeySecret": self.codat.api_key,
            "CodatWebhookSecret": self.codat.webhook_secret,
            "CustomerRefKeySecret": DEV_CUSTOMER_REF_KEY,
        }
        # Unique names: moto's state is per process, and a test process may run more than one stack.
        suffix = f"dev-{uuid.uuid4().hex[:6]}"
        self.deployed = deploy(self.moto.endpoint, suffix=suffix, secret_values=secrets)
        self._mark("aws", state="up", endpoint=self.moto.endpoint, region=REGION)

    def _start_codat(self) -> None:
        if not self.codat.simulated:
            self._mark("codat", state="up", mode="external", url=self.codat_url)
            self._mark("webhooks", state="external", url=self.webhook_url)
            return
        # The Link SDK stand-in's API answers the demo's origin (and the bank's web app's, AllowedOrigins) only.
        origins = [self.api_url, *(o.strip() for o in str(self.parameters.get("AllowedOrigins", "")).split(","))]
        self.simulator = CodatSimulator(
            api_key=self.codat.api_key, sdk_origins=[o for o in origins if o], clock=self.clock.source
        )
        # Moving the stack's clock moves Codat's too (one offset), and what is due by then happens there.
        self.clock.on_advance(self.simulator.clock_advanced)
        try:
            self._sim_server = serve(self.simulator, HOST, self._codat_port)
        except (OSError, SystemExit) as error:  # werkzeug exits on a taken port (after saying so on stderr)
            taken = f"{HOST}:{self._codat_port}"
            raise DevStackError(f"cannot serve the Codat simulator on {taken}: choose another PORT") from error
        # Codat's delivery schedule (retries after 5 s, 5 min, …), signed with the webhook secret; starts the worker.
        self.simulator.configure_deliveries(self.codat.webhook_secret)
        consumer = self._ensure_webhook_consumer()
        self._mark("codat", state="up", mode="simulator", url=self.codat_url)
        self._mark("webhooks", state="delivering", url=self.webhook_url, consumer=consumer)

    def _ensure_webhook_consumer(self) -> str:
        """The simulator's webhook consumer for the local webhook route, made as `make codat-webhooks` makes it in
        Codat: the same use case, over HTTP to the simulator. Its id."""
        credential = base64.b64encode(self.codat.api_key.encode()).decode()
        codat = CodatClient(base_url=self.codat_url, api_key=lambda: credential)
        try:
            setup = ensure_webhook_consumer(codat, self.webhook_url)
        finally:
            codat.close()
        consumer = setup.created or next(iter(setup.found.healthy if setup.found else ()), None)
        if setup.failure is not None or consumer is None:
            raise DevStackError(f"the Codat simulator refused the webhook consumer: {setup.failure}")
        return consumer.id

    def _lambda_function(self, function: Function, template: Mapping[str, Any]) -> LambdaFunction:
        """The function's environment: its handler (import errors show now, not on a request), its services on the
        stack's clock, its timeout and memory."""
        return LambdaFunction(
            function,
            load_handler(function.code_uri, function.handler),
            function_services(function, self._refs(), clock=self.clock, api_url=self.api_url),
            function_timeout(function, template),
            function_memory(function, template),
        )

    def _start_api(self) -> None:
        template = load_template()
        api_functions = {
            function.logical_id: self._lambda_function(function, template)
            for function in functions(template)
            if function.routes
        }
        api_routes = routes(template)
        authorizer = JwtAuthorizer(self.issuer, (self.issuer.audience,))
        self.api_functions = api_functions
        self.gateway = Gateway(
            api_routes,
            lambda route, event: api_functions[route.function].invoke(event),
            authorizer,
            cors=cors_policy(self.parameters, template),
        )
        self._mark("api", state="up", url=self.api_url, routes=len(api_routes), functions=sorted(api_functions))

    def _start_schedules(self) -> None:
        """Each function EventBridge runs on a schedule once deployed, to run on request (POST /_dev/schedules/…)."""
        template = load_template()
        by_id = {function.logical_id: function for function in functions(template)}
        scheduled: dict[str, tuple[Schedule, LambdaFunction]] = {}
        for schedule in schedules(template):
            resource = template["Resources"][schedule.function]
            if schedule.function in scheduled or not deployed_with(resource, self.parameters, template):
                continue
            scheduled[schedule.function] = (schedule, self._lambda_function(by_id[schedule.function], template))
        self.scheduled = scheduled

    def _start_relay(self) -> None:
        if self.deployed is None or self.moto is None:
            raise DevStackError("the outbox relay needs the embedded AWS")
        relay = next(function for function in functions() if function.logical_id == RELAY_FUNCTION)
        relay_services = function_services(relay, self._refs(), clock=self.clock, api_url=self.api_url)
        self.relay = StreamPump(
            self.deployed.tables["ConsentTable"],
            relay,
            lambda: relay_services,
            deployed=self.deployed,
            endpoint_url=self.moto.endpoint,
        ).start()
        self._mark("outboxRelay", state="running", function=RELAY_FUNCTION)

    def _start_events(self) -> None:
        self.events_log = EventsLog(self.topic_arn).start()
        self._mark("eventsLog", state="running", topicArn=self.topic_arn)

    def _mark(self, part: str, **state: Any) -> None:
        # A new dict each time: /health reads `parts` from other threads without a lock.
        self.parts = {**self.parts, part: state}

    def _refs(self) -> dict[str, Any]:
        """What the template's Refs resolve to here: parameter defaults, the embedded resources, this Codat."""
        assert self.deployed is not None
        return {
            **self.parameters,
            "AWS::Region": REGION,
            "AWS::AccountId": "123456789012",
            "CodatBaseUrl": self.codat_url,
            **self.deployed.refs(),
        }

    def _stop_deliveries(self) -> None:
        if self.simulator is not None:
            self.simulator.stop_deliveries()

    def _stop_api(self) -> None:
        if self._server_thread.is_alive():
            self._server.shutdown()
        self._server.server_close()

    def _set_environment(self, values: Mapping[str, str]) -> None:
        # boto3 (the product's clients, Powertools' secrets) reads the endpoint and credentials from the
        # process environment; what was there before is put back by stop(), so a test process is left as found.
        for name, value in values.items():
            self._saved_environ.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        _forget_aws_clients()

    def _restore_environment(self) -> None:
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ.clear()
        _forget_aws_clients()

    # -- HTTP ----------------------------------------------------------------------------------------------

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response = self._route(request)
        return response(environ, start_response)

    def _route(self, request: Request) -> Response:
        path = request.path
        if request.method == "GET" and path == "/health":
            return self._health()
        if request.method == "GET" and path == "/openapi.json":
            return self._openapi_response()
        if request.method == "GET" and path == "/asyncapi.json":
            return Response(json.dumps(contracts.document()), content_type="application/json")
        if request.method == "GET" and path.startswith(SCHEMAS_PATH):
            return _event_schema_response(path.removeprefix(SCHEMAS_PATH))
        if request.method == "GET" and path == f"{ISSUER_PATH}/.well-known/openid-configuration":
            return Response(json.dumps(self.issuer.discovery()), content_type="application/json")
        if request.method == "GET" and path == f"{ISSUER_PATH}/.well-known/jwks.json":
            return Response(json.dumps(self.issuer.jwks()), content_type="application/json")
        if request.method == "POST" and path == TOKEN_PATH:
            return self._token_response(request)
        if request.method == "GET" and (path == "/docs" or path.startswith("/docs/")):
            return docs_response(request, path.removeprefix("/docs").lstrip("/"))
        if request.method == "GET" and path == DEMO_CONFIG_PATH:
            return self._demo_config_response()
        if request.method == "GET" and (path == "/demo" or path.startswith("/demo/")):
            return demo_response(request, path.removeprefix("/demo").lstrip("/"))
        if not self.ready or self.gateway is None:
            return problem_response(503, "starting", "The dev server is still starting.", {"Retry-After": "1"})
        if path == DEV_PATH.rstrip("/") or path.startswith(DEV_PATH):
            return self._dev_response(request)
        return http_response(self.gateway.handle(gateway_request(request)))

    # -- /_dev/: the stack's clock and its schedules (dev only: nothing of this is in the template) ---------------

    def _dev_response(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == f"{DEV_PATH}clock":
            if request.method == "GET":
                return _json_response(self.clock.describe())
            if request.method == "POST":
                return self._advance_clock(request)
            return _method_not_allowed("GET, POST")
        if path == f"{DEV_PATH}schedules":
            if request.method == "GET":
                return _json_response({"items": [self._describe_schedule(s) for s, _ in self.scheduled.values()]})
            return _method_not_allowed("GET")
        if path.startswith(f"{DEV_PATH}schedules/"):
            logical_id = path.removeprefix(f"{DEV_PATH}schedules/")
            if logical_id not in self.scheduled:
                detail = f"No scheduled function {logical_id!r} in template.yaml: see GET {DEV_PATH}schedules."
                return problem_response(404, "not_found", detail)
            if request.method == "POST":
                return self._run_schedule(logical_id)
            return _method_not_allowed("POST")
        detail = f"No dev route at {request.path}: see {DEV_PATH}clock and {DEV_PATH}schedules."
        return problem_response(404, "not_found", detail)

    def _advance_clock(self, request: Request) -> Response:
        """`{"advance": "P14D"}`: the stack's time (the functions' and the simulator's) moves forward by that much."""
        if not self.codat.simulated:
            detail = "A real Codat's clock cannot be moved: the clock moves only with the Codat simulator."
            return problem_response(409, "clock_not_movable", detail)
        try:
            body = json.loads(request.get_data() or b"null")
        except ValueError:
            body = None
        usage = 'Send {"advance": "<ISO 8601 duration of days, hours and minutes>"}, e.g. {"advance": "P14D"}.'
        if not isinstance(body, dict) or set(body) != {"advance"} or not isinstance(body["advance"], str):
            return problem_response(400, "invalid_duration", usage)
        try:
            self.clock.advance(parse_duration(body["advance"]))
        except ClockError as refused:
            return problem_response(400, "invalid_duration", f"{refused}. {usage}")
        described = self.clock.describe()
        log.info("clock   moved on %s: now %s", body["advance"], described["now"])
        return _json_response(described)

    def _describe_schedule(self, schedule: Schedule) -> dict[str, Any]:
        properties = resolve(schedule.properties, self._refs())
        state = str(properties.get("State", "ENABLED")).upper()
        return {
            "function": schedule.function,
            "event": schedule.event,
            "type": schedule.type,
            "schedule": properties.get("Schedule", properties.get("ScheduleExpression")),
            "enabled": str(properties.get("Enabled", True)).lower() != "false" and state != "DISABLED",
            "description": properties.get("Description"),
            "run": f"POST {DEV_PATH}schedules/{schedule.function}",
        }

    def _run_schedule(self, logical_id: str) -> Response:
        """The function's handler, invoked now as its schedule would (its scheduled event, at the stack's time)."""
        schedule, function = self.scheduled[logical_id]
        event = scheduled_event(schedule, self.clock(), self._refs())
        started = time.monotonic()
        try:
            result = function.invoke(event)
        except Exception as error:
            log.exception("schedule %s (%s) failed", logical_id, schedule.event)
            detail = f"{logical_id} failed: {type(error).__name__}: {error}"
            return problem_response(502, "function_error", detail)
        log.info("schedule %s (%s) ran in %.2f s", logical_id, schedule.event, time.monotonic() - started)
        return _json_response(result)

    def demo_config(self) -> dict[str, str]:
        """What the demo needs to mount Codat's front-end SDKs (Option 1): Codat's own modules against a real Codat,
        the simulator's stand-ins otherwise (so `make dev` loads nothing from the internet)."""
        if not self.codat.simulated:
            return {"codat": "codat", "linkSdkUrl": CODAT_LINK_SDK_URL, "connectionsSdkUrl": CODAT_CONNECTIONS_SDK_URL}
        return {
            "codat": "simulator",
            "linkSdkUrl": f"{self.codat_url}/sdk/link.js",
            "connectionsSdkUrl": f"{self.codat_url}/sdk/connections.js",
        }

    def _demo_config_response(self) -> Response:
        try:
            config = self.demo_config()
        except DevStackError:
            return problem_response(503, "starting", "The dev server is still starting.", {"Retry-After": "1"})
        return Response(json.dumps(config), content_type="application/json", headers={"Cache-Control": "no-store"})

    def _token_response(self, request: Request) -> Response:
        """Dev only: a token for the customer named in the form or JSON body (`customer`); there are no passwords."""
        given = request.form.get("customer") or (request.get_json(silent=True) or {}).get("customer")
        if not isinstance(given, str) or not given.strip() or len(given) > 128:
            return problem_response(422, "validation_failed", "Send `customer=<customer id>` (up to 128 characters).")
        body = {"accessToken": self.token(given.strip()), "tokenType": "Bearer", "expiresIn": TOKEN_SECONDS}
        return Response(json.dumps(body), content_type="application/json", headers={"Cache-Control": "no-store"})

    def token(self, customer_id: str) -> str:
        """A token of this stack's issuer for `customer_id`, in the template's identity claim."""
        return self.issuer.token(customer_id, claim=str(parameter_defaults()["IdentityClaim"]))

    def _health(self) -> Response:
        body = {"status": self.state, "parts": self.parts}
        return Response(json.dumps(body), status=200 if self.ready else 503, content_type="application/json")

    def _openapi_response(self) -> Response:
        if self._openapi is None:
            from consent_dev.openapi import build_openapi  # noqa: PLC0415 - imports every function's routes

            # The journeys the functions were configured with (JOURNEYS_FILE), once they are loaded.
            self._openapi = build_openapi(journey_names(self.api_functions.values()) if self.api_functions else None)
        return Response(json.dumps(self._openapi), content_type="application/json")


def _json_response(body: Any) -> Response:
    return Response(json.dumps(body), content_type="application/json", headers={"Cache-Control": "no-store"})


def _method_not_allowed(allow: str) -> Response:
    return problem_response(405, "method_not_allowed", f"Allowed: {allow}.", {"Allow": allow})


# -- the event contract: /asyncapi.json and /schemas/events/<type>.v<major>.json ------------------------------

SCHEMAS_PATH = "/schemas/events/"


def _event_schema_response(name: str) -> Response:
    event_type = next((t for t in ConsentEventType if schema_file_name(t) == name), None)
    if event_type is None:
        return problem_response(404, "not_found", "No such event schema: see /asyncapi.json.")
    return Response(json.dumps(event_schema(event_type)), content_type="application/schema+json")


# -- /docs: Swagger UI, offline ----------------------------------------------------------------------------

_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Consent journey API (make dev)</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script src="/docs/initializer.js"></script>
</body>
</html>
"""

# Served as a file rather than inline, so the page works under a strict Content-Security-Policy too.
_DOCS_INITIALIZER = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout",
  });
};
"""


def swagger_ui_directory() -> Path:
    """Swagger UI 5's static files (it reads OpenAPI 3.1), from the `swagger-ui-py` package: no CDN, so
    `make dev` works offline."""
    import swagger_ui  # type: ignore[import-untyped]  # noqa: PLC0415 - dev dependency, for /docs only

    return Path(swagger_ui.__file__).parent / "static"


def docs_response(request: Request, asset: str) -> Response:
    if asset in ("", "index.html"):
        return Response(_DOCS_PAGE, content_type="text/html; charset=utf-8")
    if asset == "initializer.js":
        return Response(_DOCS_INITIALIZER, content_type="text/javascript; charset=utf-8")
    return static_file(request, swagger_ui_directory(), asset)


def static_file(request: Request, directory: Path, name: str) -> Response:
    try:
        return send_from_directory(directory, name, request.environ)
    except NotFound:  # also what send_from_directory says of a path that would leave the directory
        return problem_response(404, "not_found", "No such file.")


# -- /demo: the demo bank app (static files; it calls the API above from the same origin) --------------------

DEMO_DIRECTORY = Path(__file__).resolve().parent / "demo"
DEMO_CONFIG_PATH = "/demo/config.json"
# Codat's front-end SDKs (Option 1 of Codat's guide), loaded by the demo only when make dev runs against a real Codat.
CODAT_LINK_SDK_URL = "https://link-sdk.codat.io"
CODAT_CONNECTIONS_SDK_URL = "https://connections-sdk.codat.io"


def demo_response(request: Request, asset: str) -> Response:
    return static_file(request, DEMO_DIRECTORY, asset or "index.html")


# -- the command -------------------------------------------------------------------------------------------


def banner(stack: DevStack, started_in: float) -> str:
    codat = f"Codat simulator  {stack.codat_url}" if stack.codat.simulated else f"Codat (real)     {stack.codat_url}"
    api = stack.api_url
    return f"""
  Consent journey backend — make dev (ready in {started_in:.1f} s)

  API              {api}
  Demo bank app    {api}/demo   (sign in as any customer id; the whole consent journey in a browser)
  API docs         {stack.docs_url}   (OpenAPI: {stack.openapi_url})
  {codat}
  Health           {stack.health_url}
  Webhooks in      {stack.webhook_url}   (signed with CODAT_WEBHOOK_SECRET)
  Embedded AWS     {stack.moto.endpoint if stack.moto else "-"}   (moto; fake credentials)

  Identity         {stack.issuer.url}   (local issuer; tokens: POST {api}{TOKEN_PATH} customer=<id>)
  Dev clock        {api}{DEV_PATH}clock   (move time on: POST {{"advance": "P14D"}})
  Schedules        {api}{DEV_PATH}schedules   (run one now: POST {api}{DEV_PATH}schedules/<function>)

  Try this first (API Gateway's JWT authorizer is enforced: a token of the local issuer, valid one hour):
    export ALICE={stack.token("alice")}
    export BOB={stack.token("bob")}
    curl -s -X POST {api}/companies -H "Authorization: Bearer $ALICE" \\
         -H 'Content-Type: application/json' -d '{{"name": "Acme Bakery Ltd", "journey": "onboarding"}}'
    curl -s -X POST {api}/companies/<companyId>/connections -H "Authorization: Bearer $ALICE" \\
         -H 'Content-Type: application/json' -d '{{"platformKey": "qhnd"}}'
    open the connection's linkUrl, press Authorize, then:
    curl -s {api}/companies/<companyId> -H "Authorization: Bearer $ALICE"

  Consent events appear below as they are published. Ctrl-C stops everything.
"""


def configure_logging() -> None:
    """The dev server's own lines on stdout, beside the functions' JSON logs (Powertools writes those itself)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s  %(message)s", datefmt="%H:%M:%S"))
    ours = logging.getLogger("consent_dev")  # the dev server, the stream pump, the simulator
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)
    ours.propagate = False
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server would log every AWS call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consent_dev.devserver", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)), help="API port")
    parser.add_argument("--codat-port", type=int, default=None, help="simulator port (default: --port + 1)")
    parser.add_argument(
        "--allowed-origins",
        default=os.environ.get("ALLOWED_ORIGINS", ""),
        help="the template's AllowedOrigins: browser origins of another app that may call the API (CORS)",
    )
    args = parser.parse_args(argv)
    # Before the handlers are imported (by start()): Powertools reads these once, at import.
    for name, value in {**powertools_environment(), **LOCAL_POWERTOOLS_SETTINGS}.items():
        os.environ.setdefault(name, value)
    configure_logging()

    stopping = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        if stopping.is_set():
            os._exit(128 + signum)  # a second Ctrl-C: whoever presses it does not want to wait
        log.info("dev     %s: shutting down (again to force)", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    started = time.monotonic()
    try:
        stack = DevStack(args.port, args.codat_port, parameters={"AllowedOrigins": args.allowed_origins})
        stack.start()
    except (DevStackError, OSError) as error:
        print(f"make dev: {error}", file=sys.stderr)
        return 2
    print(banner(stack, time.monotonic() - started), flush=True)
    try:
        # In slices: the kernel may deliver the signal to any thread, and Python runs its handler only when the
        # main thread wakes up; an unbounded wait could sleep through Ctrl-C.
        while not stopping.wait(0.25):
            pass
    finally:
        stack.stop()
    log.info("dev     stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
