"""Shared fixtures: an embedded moto server (real HTTP), the template's resources on it, the Codat
simulator mounted into httpx in-process, and the API invoked through the template's own routes."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from consent_dev.template import powertools_environment

# Before any Powertools import: the template's settings (service name, metrics namespace, log level), and no X-Ray
# daemon here.
os.environ.update({**powertools_environment(), "POWERTOOLS_TRACE_DISABLED": "1", "POWERTOOLS_DEV": "0"})

import shutil
from pathlib import Path

import pytest
from botocore.awsrequest import AWSResponse

from consent.codat.client import CodatClient
from consent.events import CloudEvent
from consent.publisher import EventPublisher, PublishFailure, SnsEventPublisher
from consent.services import Services, aws_client
from consent.settings import Settings
from consent.store.dynamodb import DynamoDBConsentStore
from consent_dev.aws import Deployed, MotoServer, deploy, drop_tables
from consent_dev.codat_simulator import CodatSimulator
from consent_dev.codat_webhooks import DEV_WEBHOOK_SECRET
from consent_dev.contracts import validate_message
from consent_dev.iam import CallRecorder, judge, load
from consent_dev.local_api import LocalApi
from consent_dev.streams import StreamPump
from consent_dev.subscriber import EventsQueue

# -- IAM conformance: every AWS call a function's handler makes, in every tier, against that function's policy ------

IAM_CALLS = CallRecorder()
IAM_CALLS.install()


def _iam_folder(config: pytest.Config) -> Path:
    return Path(str(config.rootpath)) / ".pytest_cache" / "iam-calls"


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller (or the only process): a clean slate
        shutil.rmtree(_iam_folder(session.config), ignore_errors=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Workers leave their calls in a file; the controller (or the only process) judges them all: a call the
    function's policy would deny fails the run. When the whole suite ran and passed, so does a granted permission
    no call used (least privilege as a property of the template)."""
    config = session.config
    folder = _iam_folder(config)
    if hasattr(config, "workerinput"):
        IAM_CALLS.dump(folder / f"{config.workerinput['workerid']}.json")
        return
    seen = IAM_CALLS.seen | load(sorted(folder.glob("*.json")))
    whole_suite = (
        not config.option.keyword
        and not config.option.markexpr
        and [str(a).rstrip("/") for a in config.args] in ([], ["tests"], [str(config.rootpath / "tests")])
    )
    verdict = judge(seen, complete=whole_suite and session.testsfailed == 0 and exitstatus == 0)
    if not verdict.ok:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "IAM conformance", red=True)
            reporter.write_line(verdict.report())
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# -- tiers: every test carries the marker of its folder (tests/<tier>/), so `make test-<tier>` selects it --------

TIERS = ("unit", "integration", "contract", "template", "build", "e2e", "browser", "fuzz")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = item.path.parent.name
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))


# -- the event contract: every event the suite publishes is checked against its published schema -----------------

CONTRACT_VIOLATIONS: list[str] = []
_publish = SnsEventPublisher.publish


def _publish_in_contract(self: SnsEventPublisher, events: Sequence[CloudEvent]) -> list[PublishFailure]:
    failures = _publish(self, events)
    unsent = {failure.event_id for failure in failures}
    for event in events:
        if event.id in unsent:
            continue  # refused before SNS (too large) or not confirmed: not published
        attributes = {name: value["StringValue"] for name, value in event.message_attributes().items()}
        CONTRACT_VIOLATIONS.extend(
            f"{event.type.value} {event.id}: {p}" for p in validate_message(event.to_json(), attributes)
        )
    return failures


SnsEventPublisher.publish = _publish_in_contract  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _events_keep_their_contract() -> Iterator[None]:
    """Fails a test during which an event out of its schema was published (by any path: relay, dev stack)."""
    CONTRACT_VIOLATIONS.clear()
    yield
    violations, CONTRACT_VIOLATIONS[:] = list(CONTRACT_VIOLATIONS), []
    assert not violations, "events published out of their contract:\n" + "\n".join(violations)


CODAT_TEST_KEY = "test-codat-api-key"  # a documented fake, accepted only by the simulator
CUSTOMER_REF_TEST_KEY = "test-customer-ref-key"  # a documented fake: the key of the customer tag on Codat companies


class FakeClock:
    """Monotonic time that moves only when the code under test sleeps: retry budgets without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    os.environ.update(server.environment())
    yield server
    server.stop()


@pytest.fixture
def aws(moto_server: MotoServer) -> Iterator[Deployed]:
    deployed = deploy(moto_server.endpoint)
    yield deployed
    # moto copies every table it holds on each transaction: a finished test's tables would slow every later one.
    drop_tables(moto_server.endpoint, deployed)


@pytest.fixture
def simulator() -> Iterator[CodatSimulator]:
    # Validates every request our code sends against Codat's spec (when the spec is present): a test that
    # made the product send Codat something undocumented fails here, whatever it asserted itself.
    simulator = CodatSimulator(api_key=CODAT_TEST_KEY)
    yield simulator
    assert simulator.contract_violations == []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_codat_client(simulator: CodatSimulator, clock: FakeClock, **overrides: Any) -> CodatClient:
    options: dict[str, Any] = {
        "base_url": "https://api.codat.io",
        "api_key": lambda: base64.b64encode(CODAT_TEST_KEY.encode()).decode(),
        "transport": simulator.transport(),
        "sleep": clock.sleep,
        "clock": clock.monotonic,
        "connect_timeout": 0.5,
        "read_timeout": 0.5,
        "retry_budget": 20.0,
        "max_attempts": 4,
        **overrides,
    }
    return CodatClient(**options)


@pytest.fixture
def codat_factory(simulator: CodatSimulator, clock: FakeClock) -> Callable[..., CodatClient]:
    """A Codat client on the simulator with some options changed."""
    return lambda **overrides: make_codat_client(simulator, clock, **overrides)


@pytest.fixture
def codat(simulator: CodatSimulator, clock: FakeClock) -> CodatClient:
    return make_codat_client(simulator, clock)


@pytest.fixture
def settings(aws: Deployed) -> Settings:
    return Settings(
        table_name=aws.tables["ConsentTable"],
        topic_arn=aws.topics.get("ConsentEventsTopic"),
        codat_api_key=CODAT_TEST_KEY,
        webhook_secret=DEV_WEBHOOK_SECRET,
        customer_ref_key=CUSTOMER_REF_TEST_KEY,
    )


@pytest.fixture
def dynamodb(moto_server: MotoServer) -> Any:
    return aws_client("dynamodb")  # the product's own client factory, pointed at moto by AWS_ENDPOINT_URL


class DynamoDBFaults:
    """Makes the real boto3 client receive DynamoDB error answers (throttling, …) for chosen operations,
    so the store's own error handling runs, botocore's retries included."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.remaining: dict[str, list[str | None]] = {}
        client.meta.events.register("before-send.dynamodb.*", self._before_send)

    def fail(self, operation: str, code: str, *, times: int = 1, after: int = 0) -> None:
        """The next `times` calls of `operation` fail with `code`, once `after` more have gone through."""
        self.remaining.setdefault(operation, []).extend([None] * after + [code] * times)

    def _before_send(self, request: Any, **_: Any) -> Any:
        operation = request.headers.get("X-Amz-Target", b"")
        operation = (operation.decode() if isinstance(operation, bytes) else operation).rsplit(".", 1)[-1]
        queue = self.remaining.get(operation)
        if not queue:
            return None
        code = queue.pop(0)
        if code is None:
            return None
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code}).encode()
        status = 500 if code in ("InternalServerError", "ServiceUnavailable") else 400  # as DynamoDB answers
        return AWSResponse(request.url, status, {"Content-Type": "application/x-amz-json-1.0"}, _RawBody(body))


class _RawBody:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


@pytest.fixture
def dynamodb_faults(dynamodb: Any) -> DynamoDBFaults:
    return DynamoDBFaults(dynamodb)


@pytest.fixture
def store(settings: Settings, dynamodb: Any) -> DynamoDBConsentStore:
    return DynamoDBConsentStore(dynamodb, settings.table_name)


@pytest.fixture
def services(settings: Settings, store: DynamoDBConsentStore, codat: CodatClient) -> Services:
    return Services(settings, store=store, codat=codat)


@pytest.fixture
def api(services: Services) -> LocalApi:
    return LocalApi(services)


@pytest.fixture
def table_items(dynamodb: Any, settings: Settings) -> Callable[[], list[dict[str, Any]]]:
    """Every item in the table (a test-only Scan: the product scans only to reconcile, company items only)."""

    def scan() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {"TableName": settings.table_name, "ConsistentRead": True}
        while True:
            page = dynamodb.scan(**request)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    return scan


# -- consent events out: the outbox relay on the test's table, and what subscribers receive ---------------
# Imported here rather than at the top so that this section stays an append-only block of the file.


@pytest.fixture
def subscribe_events(settings: Settings) -> Callable[..., EventsQueue]:
    """Subscribes a new queue to the test's topic (raw delivery), optionally with a filter policy."""
    assert settings.topic_arn is not None
    topic_arn = settings.topic_arn
    return lambda filter_policy=None: EventsQueue.subscribe(topic_arn, filter_policy=filter_policy)


@pytest.fixture
def events_queue(subscribe_events: Callable[..., EventsQueue]) -> EventsQueue:
    """A subscriber that receives every consent event of the test."""
    return subscribe_events()


@pytest.fixture
def outbox_factory(settings: Settings, aws: Deployed) -> Callable[..., StreamPump]:
    """The template's outbox relay following the test's table, as Lambda would run it; `publisher=` replaces
    the real SNS publisher (e.g. with one that fails)."""

    def pump(publisher: EventPublisher | None = None) -> StreamPump:
        relay_services = Services(settings, publisher=publisher)
        return StreamPump(settings.table_name, "OutboxRelayFunction", lambda: relay_services, deployed=aws)

    return pump


@pytest.fixture
def outbox(outbox_factory: Callable[..., StreamPump]) -> StreamPump:
    """`outbox.drain()` publishes every consent event committed so far, as the relay would."""
    return outbox_factory()
