"""The simulator's in-memory Codat state: companies, connections, integrations, one-time links, events."""

from __future__ import annotations

import random
import secrets
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .consumers import WebhookConsumers
from .data import DEFAULT_READ_DELAY, CompanyData, Dataset, initial_read_data_types
from .webhook_bodies import webhook_body

ConnectionStatus = Literal["PendingAuth", "Linked", "Unlinked", "Deauthorized"]
CONNECTION_STATUSES: tuple[ConnectionStatus, ...] = ("PendingAuth", "Linked", "Unlinked", "Deauthorized")
SourceType = Literal["Accounting", "Banking", "BankFeed", "Commerce", "Expense", "Other", "Unknown"]

LinkCheck = Literal["valid", "unknown", "used", "expired", "gone"]
# Whether an access token opens a company's SDK components: valid, or why not (another company's, expired, unknown).
TokenCheck = Literal["valid", "unknown", "expired", "other_company"]

LINK_URL_LIFETIME = timedelta(days=1)
# Codat's company access token (GET /companies/{companyId}/accessToken): `expiresIn` 86400 seconds.
ACCESS_TOKEN_LIFETIME = timedelta(days=1)
DEFAULT_INITIAL_READ_DELAY = 2.0
CODAT_API_BASE_URL = "https://api.codat.io"

# What Codat records on a connection in each case (texts from the spec's webhook examples).
CANCELLED_ERROR = {"statusCode": "403", "statusText": "User cancelled linking", "errorMessage": "User cancelled"}
DEAUTHORIZED_ERROR = {
    "statusCode": "401",
    "statusText": "The integration de-authorized access to the connection.",
    "errorMessage": "The integration de-authorized access to the connection.",
}


class SimClock:
    """Wall-clock time plus an offset that tests can advance (idempotency windows, link expiry)."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, by: timedelta | float) -> None:
        with self._lock:
            self._offset += by if isinstance(by, timedelta) else timedelta(seconds=by)

    @property
    def offset(self) -> timedelta:
        """How far ahead of the wall clock this clock runs."""
        with self._lock:
            return self._offset


def codat_timestamp(moment: datetime, *, fraction: bool = True) -> str:
    """Codat's format: UTC, ``Z``, and 7 fractional digits (.NET ticks), e.g. ``2022-10-27T10:22:43.6464237Z``."""
    moment = moment.astimezone(UTC)
    if not fraction:
        return f"{moment:%Y-%m-%dT%H:%M:%S}Z"
    # datetime stops at microseconds; the 7th digit is a random tick so clients meet all seven digits.
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}{random.randrange(10)}Z"


def _codat_api_base_url() -> str:
    return CODAT_API_BASE_URL


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Integration:
    key: str
    name: str
    source_type: SourceType
    enabled: bool = True
    integration_id: str = field(default_factory=new_id)
    source_id: str = field(default_factory=new_id)
    logo_url: str = ""
    is_offline_connector: bool = False
    is_beta: bool = False
    data_provided_by: str | None = None

    def __post_init__(self) -> None:
        if not self.logo_url:
            self.logo_url = f"https://static.codat.io/public/officialLogos/Square/{self.source_id.upper()}.png"
        if self.data_provided_by is None:
            self.data_provided_by = self.name


@dataclass
class Connection:
    id: str
    company_id: str
    integration: Integration
    status: ConnectionStatus
    created: str
    last_sync: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Company:
    id: str
    name: str
    description: str | None
    tags: dict[str, str]
    created: str
    connections: dict[str, Connection] = field(default_factory=dict)
    data: CompanyData = field(default_factory=CompanyData)


@dataclass
class LinkGrant:
    """A one-time ``otp`` handed out in a ``linkUrl``; kept after use until it expires, to say it was used."""

    company_id: str
    connection_id: str
    expires: datetime
    used: bool = False


@dataclass(frozen=True)
class AccessGrant:
    """A company access token, for Codat's Link and Connections SDKs: one company's, until ``expires``."""

    company_id: str
    expires: datetime


@dataclass(frozen=True)
class SimEvent:
    """Something Codat announces by webhook; ``body`` is the envelope it sends (``id`` is the envelope's id)."""

    event_type: str
    generated: str
    company_id: str
    connection_id: str | None = None
    id: str = field(default_factory=new_id)
    body: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # The company's tags when it happened: a consumer with `companyTags` receives only its companies' events.
    company_tags: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class PendingRead:
    """A read of one connection, which completes at ``due``: the first after an authorization
    (``read.completed.initial``), or one queued through the API (``read.completed``). ``dataset_ids``: its pull
    operations, one per data type."""

    due: datetime
    company_id: str
    connection_id: str
    dataset_ids: tuple[str, ...] = ()
    initial: bool = True


@dataclass
class SimState:
    """All mutable state; the simulator holds its lock while touching it."""

    clock: SimClock
    integrations: dict[str, Integration]
    companies: dict[str, Company] = field(default_factory=dict)
    link_grants: dict[str, LinkGrant] = field(default_factory=dict)
    access_tokens: dict[str, AccessGrant] = field(default_factory=dict)
    events: list[SimEvent] = field(default_factory=list)
    # Where linkUrls point when an event is built (the simulator's public base URL, which serve() may set later).
    base_url: Callable[[], str] = field(default_factory=lambda: _codat_api_base_url)
    # Called with every event as it is recorded (the simulator queues it for delivery); under the simulator's lock.
    on_event: Callable[[SimEvent], None] | None = None
    initial_read_delay: float = DEFAULT_INITIAL_READ_DELAY
    read_delay: float = DEFAULT_READ_DELAY
    pending_reads: list[PendingRead] = field(default_factory=list)
    # The client's configuration rather than its data: the simulator hands the same one to each new state.
    webhook_consumers: WebhookConsumers = field(default_factory=WebhookConsumers)

    def now(self) -> str:
        return codat_timestamp(self.clock.now())

    def emit(
        self,
        event_type: str,
        company: Company,
        connection: Connection | None = None,
        *,
        reads: Sequence[tuple[str, str]] | None = None,
    ) -> SimEvent:
        """Record what Codat would announce, with the envelope built from the state as it is now (``reads``: the
        (data type, status) pairs a ``read.completed*`` lists)."""
        event_id = new_id()
        body = webhook_body(
            event_type,
            event_id=event_id,
            generated=self.clock.now(),
            company=company,
            connection=connection,
            base_url=self.base_url(),
            reads=reads,
        )
        connection_id = connection.id if connection is not None else None
        event = SimEvent(
            event_type, body["generatedDate"], company.id, connection_id, event_id, body, dict(company.tags)
        )
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)
        return event

    def add_company(self, name: str, description: str | None, tags: dict[str, str]) -> Company:
        company = Company(new_id(), name, description, dict(tags), self.now())
        self.companies[company.id] = company
        self.emit("company.created", company)
        return company

    def delete_company(self, company_id: str) -> None:
        company = self.companies.pop(company_id)
        for grant_otp, grant in list(self.link_grants.items()):
            if grant.company_id == company.id:
                del self.link_grants[grant_otp]
        for token, access in list(self.access_tokens.items()):
            if access.company_id == company.id:
                del self.access_tokens[token]
        self.emit("company.deleted", company)

    def add_connection(self, company: Company, integration: Integration) -> Connection:
        # Codat gives a connection's `created` without fractional seconds (see the spec's examples).
        connection = Connection(
            new_id(), company.id, integration, "PendingAuth", codat_timestamp(self.clock.now(), fraction=False)
        )
        company.connections[connection.id] = connection
        self.emit("connection.created", company, connection)
        return connection

    def delete_connection(self, connection: Connection) -> None:
        company = self.companies[connection.company_id]
        del company.connections[connection.id]
        self.emit("connection.deleted", company, connection)

    def set_status(self, connection: Connection, status: ConnectionStatus) -> None:
        """A status change as Codat makes it, with its webhook; becoming Linked also starts the first read."""
        previous = connection.status
        if previous == status:
            return
        company = self.companies[connection.company_id]
        connection.status = status
        if status == "Linked":
            connection.last_sync = self.now()
            connection.errors = []
            event_type = "connection.connected" if previous == "PendingAuth" else "connection.reconnected"
            self.emit(event_type, company, connection)
            self.start_reads(company, [connection], initial_read_data_types(connection.integration.source_type))
        elif status in ("Unlinked", "Deauthorized"):
            if status == "Deauthorized":
                connection.errors.append(self._error(DEAUTHORIZED_ERROR))
            self.emit("connection.disconnected", company, connection)

    def reauthorize(self, connection: Connection) -> None:
        """The customer authorized a connection that was already Linked, through a fresh link (open banking's
        re-consent: Codat re-authorizes the same connection): it stays Linked, ``connection.reconnected`` is sent and
        a first read follows, as after any authorization."""
        company = self.companies[connection.company_id]
        connection.last_sync = self.now()
        connection.errors = []
        self.emit("connection.reconnected", company, connection)
        self.start_reads(company, [connection], initial_read_data_types(connection.integration.source_type))

    def cancel_linking(self, connection: Connection) -> None:
        """The customer cancelled on the link page: the status stays, the error is recorded, ``connection.failed``."""
        if connection.status == "Linked":
            return  # nothing was being linked
        connection.errors.append(self._error(CANCELLED_ERROR))
        self.emit("connection.failed", self.companies[connection.company_id], connection)

    def _error(self, error: dict[str, str]) -> dict[str, Any]:
        return {**error, "erroredOnUtc": codat_timestamp(self.clock.now(), fraction=False), "status": "Active"}

    def start_reads(
        self, company: Company, connections: Sequence[Connection], data_types: Sequence[str], *, initial: bool = True
    ) -> list[Dataset]:
        """Queue a read of ``data_types`` from each connection: a pull operation per data type, completing after
        ``initial_read_delay`` (the first read after an authorization) or ``read_delay`` (one queued later)."""
        delay = self.initial_read_delay if initial else self.read_delay
        due = self.clock.now() + timedelta(seconds=delay)
        started: list[Dataset] = []
        for connection in connections:
            requested = self.now()
            datasets = [company.data.open(new_id(), company.id, connection.id, t, requested) for t in data_types]
            dataset_ids = tuple(d.id for d in datasets)
            self.pending_reads.append(PendingRead(due, company.id, connection.id, dataset_ids, initial))
            started.extend(datasets)
        return started

    def complete_due_reads(self, *, everything: bool = False) -> list[Dataset]:
        """Finish the reads that are due (all of them with ``everything``), each with ``read.completed.initial`` or
        ``read.completed`` listing its data types and how each ended; the pull operations they finished.

        A read whose connection was deleted or is no longer Linked by then is not announced, as in Codat: its pull
        operations end AuthError (Deauthorized) or Cancelled."""
        now = self.clock.now()
        due = [read for read in self.pending_reads if everything or read.due <= now]
        if not due:
            return []
        self.pending_reads = [read for read in self.pending_reads if not (everything or read.due <= now)]
        finished: list[Dataset] = []
        for read in sorted(due, key=lambda r: r.due):
            company = self.companies.get(read.company_id)
            if company is None:
                continue
            connection = company.connections.get(read.connection_id)
            datasets = [company.data.datasets[i] for i in read.dataset_ids if i in company.data.datasets]
            completed = self.now()
            if connection is None or connection.status != "Linked":
                ending = "AuthError" if connection is not None and connection.status == "Deauthorized" else "Cancelled"
                finished.extend(company.data.finish(d, completed, ending) for d in datasets)
                continue
            ended = [company.data.finish(d, completed) for d in datasets]
            finished.extend(ended)
            if not ended or any(d.status == "Complete" for d in ended):
                connection.last_sync = completed
            event_type = "read.completed.initial" if read.initial else "read.completed"
            self.emit(event_type, company, connection, reads=[(d.data_type, d.status) for d in ended] or None)
        return finished

    def next_read_due(self) -> datetime | None:
        return min((read.due for read in self.pending_reads), default=None)

    def issue_otp(self, connection: Connection) -> str:
        now = self.clock.now()
        for stale in [k for k, grant in self.link_grants.items() if grant.expires <= now]:
            del self.link_grants[stale]
        otp = secrets.token_urlsafe(18)
        self.link_grants[otp] = LinkGrant(connection.company_id, connection.id, now + LINK_URL_LIFETIME)
        return otp

    def check_otp(self, otp: str, company_id: str, connection_id: str) -> tuple[LinkCheck, Connection | None]:
        """Whether ``otp`` opens this connection's link page: ``valid`` (with the connection) or why not."""
        grant = self.link_grants.get(otp)
        if grant is None or (grant.company_id, grant.connection_id) != (company_id, connection_id):
            return "unknown", None
        if grant.used:
            return "used", None
        if grant.expires <= self.clock.now():
            return "expired", None
        company = self.companies.get(company_id)
        connection = company.connections.get(connection_id) if company else None
        return ("valid", connection) if connection is not None else ("gone", None)

    def use_otp(self, otp: str) -> None:
        self.link_grants[otp].used = True

    def issue_access_token(self, company: Company) -> str:
        """A new company access token, valid for ``ACCESS_TOKEN_LIFETIME`` on the simulator's clock."""
        now = self.clock.now()
        # An expired token is kept for another lifetime, so that it is refused as expired rather than unknown.
        for stale in [t for t, grant in self.access_tokens.items() if grant.expires + ACCESS_TOKEN_LIFETIME <= now]:
            del self.access_tokens[stale]
        token = secrets.token_urlsafe(32)
        self.access_tokens[token] = AccessGrant(company.id, now + ACCESS_TOKEN_LIFETIME)
        return token

    def check_access_token(self, token: str, company_id: str | None = None) -> tuple[TokenCheck, AccessGrant | None]:
        """Whether ``token`` opens the SDK components for ``company_id`` (for its own company when None)."""
        grant = self.access_tokens.get(token) if token else None
        if grant is None or grant.company_id not in self.companies:
            return "unknown", None
        if grant.expires <= self.clock.now():
            return "expired", None
        if company_id is not None and company_id != grant.company_id:
            return "other_company", None
        return "valid", grant
