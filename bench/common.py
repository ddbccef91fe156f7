"""What the bench sections share: the embedded AWS and Codat they run against, warm APIs on real I/O and on
in-memory fakes, timing statistics and the printed tables."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from consent_dev.template import parameter_defaults, powertools_environment

# As the template's Globals set them (POWERTOOLS_LOG_LEVEL: the LogLevel parameter's default). No X-Ray
# daemon here: POWERTOOLS_TRACE_DISABLED=1 stands in for it. Set before anything imports Powertools.
os.environ.update({**powertools_environment(), "POWERTOOLS_TRACE_DISABLED": "1"})

# After the environment above: Powertools reads it when these import it.
from consent.observability import logger
from consent.services import Services, aws_client
from consent.settings import Settings
from consent_dev.aws import Deployed, MotoServer, deploy
from consent_dev.budget import CallCounter, World
from consent_dev.codat_simulator import CodatSimulator, SimServer, serve
from consent_dev.codat_webhooks import DEV_CUSTOMER_REF_KEY, DEV_WEBHOOK_SECRET
from consent_dev.fake_store import FakeStore
from consent_dev.local_api import LocalApi

from fakes import FakeCodat, FakePublisher

SIMULATOR_API_KEY = "bench-codat-api-key"
# One customer sends every request of a section, hundreds a minute: the template's per-customer quotas set as a
# deployment for a load test would set them, so that none refuses a request the bench times.
QUOTA_PARAMETERS = {
    "MaxCompaniesPerCustomer": 10_000,
    "CustomerCodatRequestsPerMinute": 100_000,
    "CustomerCodatRequestsPerDay": 10_000_000,
}

# Log lines are part of a request's cost (Lambda ships stdout to CloudWatch): written, but not to the terminal.
_DEVNULL = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
logger.registered_handler.setStream(_DEVNULL)  # type: ignore[attr-defined]
warnings.filterwarnings("ignore", message="No application metrics to publish")
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the embedded servers' access logs


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Powertools' metrics print their EMF lines to stdout: keep them out of the bench's table."""
    with contextlib.redirect_stdout(_DEVNULL):
        yield


class _TablesCopiedOncePerTransaction:
    """moto's TransactWriteItems deep-copies the whole table (for its rollback) once per item of the
    transaction, so a write's latency grows with the items times the table's size, which DynamoDB's does not.
    Within one transaction, before anything is written, those copies are identical: this makes it one copy
    per table. Everything else moto does (conditions, rollback, streams) is unchanged."""

    def __init__(self) -> None:
        from moto.dynamodb.models.table import Table  # noqa: PLC0415 - dev dependency

        self._table = Table
        self._copies: dict[int, Any] | None = None

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if self._copies is None or not isinstance(value, self._table):
            return copy.deepcopy(value, memo)
        if id(value) not in self._copies:
            self._copies[id(value)] = copy.deepcopy(value, memo)
        return self._copies[id(value)]

    def install(self) -> None:
        """Before the MotoServer: its atomic lock then wraps this, so one transaction runs at a time."""
        from moto.dynamodb import models  # noqa: PLC0415
        from moto.dynamodb.models import DynamoDBBackend  # noqa: PLC0415

        # The `copy` module moto's models use, which this stands in for (a global of theirs, not an export).
        globals_of_models = vars(models)
        if isinstance(globals_of_models["copy"], _TablesCopiedOncePerTransaction):
            return
        original = DynamoDBBackend.transact_write_items
        shim = self

        def transact_write_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
            shim._copies = {}
            try:
                original(backend, transact_items)
            finally:
                shim._copies = None

        globals_of_models["copy"] = self
        # A method of moto's, wrapped: mypy refuses any assignment to a method.
        DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign, assignment]


@dataclass
class Stack:
    """Embedded AWS (moto over HTTP, with template.yaml's resources) and the Codat simulator over HTTP."""

    moto: MotoServer
    simulator: CodatSimulator
    codat_server: SimServer
    deployed: Deployed
    settings: Settings
    secret_values: ClassVar[dict[str, str]] = {
        "CodatApiKeySecret": SIMULATOR_API_KEY,
        "CodatWebhookSecret": DEV_WEBHOOK_SECRET,
        "CustomerRefKeySecret": DEV_CUSTOMER_REF_KEY,
    }

    @classmethod
    def start(cls) -> Stack:
        _TablesCopiedOncePerTransaction().install()
        moto = MotoServer().start()
        os.environ.update(moto.environment())
        # Spec validation is the tests' job; here it would only add the simulator's own time to every call.
        simulator = CodatSimulator(api_key=SIMULATOR_API_KEY, spec=None)
        server = serve(simulator)
        deployed = deploy(moto.endpoint, secret_values=cls.secret_values)
        settings = Settings(
            table_name=deployed.tables["ConsentTable"],
            topic_arn=deployed.topics["ConsentEventsTopic"],
            codat_base_url=server.url,
            codat_api_key=SIMULATOR_API_KEY,
            webhook_secret=DEV_WEBHOOK_SECRET,
            customer_ref_key=DEV_CUSTOMER_REF_KEY,
            max_companies_per_customer=QUOTA_PARAMETERS["MaxCompaniesPerCustomer"],
            customer_codat_requests_per_minute=QUOTA_PARAMETERS["CustomerCodatRequestsPerMinute"],
            customer_codat_requests_per_day=QUOTA_PARAMETERS["CustomerCodatRequestsPerDay"],
        )
        return cls(moto, simulator, server, deployed, settings)

    def fresh_table(self) -> None:
        """Start over on an empty table (and delete the old one): moto's TransactWriteItems deep-copies every
        table it holds, so its latency grows with what earlier sections wrote; DynamoDB's does not."""
        old = self.deployed.tables["ConsentTable"]
        self.deployed = deploy(self.moto.endpoint, secret_values=self.secret_values)
        self.settings = self.settings.model_copy(update={"table_name": self.deployed.tables["ConsentTable"]})
        aws_client("dynamodb").delete_table(TableName=old)

    def stop(self) -> None:
        self.codat_server.shutdown()
        self.moto.stop()

    def refs(self) -> dict[str, Any]:
        """What the template's Ref/GetAtt resolve to here (Codat's base URL: the simulator)."""
        refs = {**parameter_defaults(), **QUOTA_PARAMETERS, **self.deployed.refs()}
        return {**refs, "CodatBaseUrl": self.codat_server.url}

    def services(self) -> Services:
        """A warm container's ports on real I/O: the product's own wiring from settings (secrets given
        directly, as a warm container has them cached)."""
        return Services(self.settings)

    def world(self) -> tuple[World, Services]:
        """A warm API on real I/O, and its services."""
        services = self.services()
        return World(LocalApi(services), self.simulator, new_services=self.services), services

    def counter(self) -> CallCounter:
        return CallCounter(self.simulator)


def fake_world(settings: Settings) -> tuple[World, Services]:
    """A warm API whose store, Codat and publisher are in memory, and its services."""
    store, codat, publisher = FakeStore(), FakeCodat(), FakePublisher()

    def services() -> Services:
        return Services(settings, store=store, codat=codat, publisher=publisher)  # type: ignore[arg-type]

    warm = services()
    return World(LocalApi(warm), codat, new_services=services), warm


# -- statistics ------------------------------------------------------------------------------------------------


def percentile(samples: Sequence[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary(samples_ms: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(samples_ms),
        "median_ms": round(statistics.median(samples_ms), 3),
        "p99_ms": round(percentile(samples_ms, 0.99), 3),
    }


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """Milliseconds `action` took, and what it returned."""
    started = time.perf_counter()
    result = action()
    return (time.perf_counter() - started) * 1000, result


def ratio(value: float, floor: float) -> float:
    return round(value / floor, 2) if floor else math.inf


# -- tables ----------------------------------------------------------------------------------------------------


@dataclass
class Table:
    title: str
    columns: Sequence[str]
    rows: list[Sequence[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *row: Any) -> None:
        self.rows.append(row)

    def render(self) -> str:
        cells = [[str(c) for c in self.columns], *[[_cell(c) for c in row] for row in self.rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        numeric = [all(_is_number(row[i]) for row in self.rows) for i in range(len(self.columns))]

        def line(row: Sequence[str]) -> str:
            return "  ".join(
                cell.rjust(width) if right else cell.ljust(width)
                for cell, width, right in zip(row, widths, numeric, strict=True)
            ).rstrip()

        out = io.StringIO()
        out.write(f"\n{self.title}\n{'=' * len(self.title)}\n")
        out.write(line(cells[0]) + "\n" + line(["-" * w for w in widths]) + "\n")
        for row in cells[1:]:
            out.write(line(row) + "\n")
        for note in self.notes:
            out.write(f"  * {note}\n")
        return out.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "∞" if math.isinf(value) else f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
