"""The simulator's in-memory Codat state: companies, connections, integrations, one-time links, events."""

from __future__ import annotations

import random
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

ConnectionStatus = Literal["PendingAuth", "Linked", "Unlinked", "Deauthorized"]
CONNECTION_STATUSES: tuple[ConnectionStatus, ...] = ("PendingAuth", "Linked", "Unlinked", "Deauthorized")
SourceType = Literal["Accounting", "Banking", "BankFeed", "Commerce", "Expense", "Other", "Unknown"]

LINK_URL_LIFETIME = timedelta(days=1)


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


def codat_timestamp(moment: datetime, *, fraction: bool = True) -> str:
    """Codat's format: UTC, ``Z``, and 7 fractional digits (.NET ticks), e.g. ``2022-10-27T10:22:43.6464237Z``."""
    moment = moment.astimezone(UTC)
    if not fraction:
        return f"{moment:%Y-%m-%dT%H:%M:%S}Z"
    # datetime stops at microseconds; the 7th digit is a random tick so clients meet all seven digits.
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}{random.randrange(10)}Z"


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


@dataclass(frozen=True)
class LinkGrant:
    """A one-time ``otp`` handed out in a ``linkUrl``."""

    company_id: str
    connection_id: str
    expires: datetime


@dataclass(frozen=True)
class SimEvent:
    """Something Codat would announce by webhook (delivery is not simulated yet)."""

    event_type: str
    generated: str
    company_id: str
    connection_id: str | None = None
    id: str = field(default_factory=new_id)


@dataclass
class SimState:
    """All mutable state; the simulator holds its lock while touching it."""

    clock: SimClock
    integrations: dict[str, Integration]
    companies: dict[str, Company] = field(default_factory=dict)
    link_grants: dict[str, LinkGrant] = field(default_factory=dict)
    access_tokens: dict[str, str] = field(default_factory=dict)
    events: list[SimEvent] = field(default_factory=list)

    def now(self) -> str:
        return codat_timestamp(self.clock.now())

    def emit(self, event_type: str, company_id: str, connection_id: str | None = None) -> None:
        self.events.append(SimEvent(event_type, self.now(), company_id, connection_id))

    def add_company(self, name: str, description: str | None, tags: dict[str, str]) -> Company:
        company = Company(new_id(), name, description, dict(tags), self.now())
        self.companies[company.id] = company
        self.emit("company.created", company.id)
        return company

    def delete_company(self, company_id: str) -> None:
        company = self.companies.pop(company_id)
        for grant_otp, grant in list(self.link_grants.items()):
            if grant.company_id == company.id:
                del self.link_grants[grant_otp]
        for token, owner in list(self.access_tokens.items()):
            if owner == company.id:
                del self.access_tokens[token]
        self.emit("company.deleted", company.id)

    def add_connection(self, company: Company, integration: Integration) -> Connection:
        # Codat gives a connection's `created` without fractional seconds (see the spec's examples).
        connection = Connection(
            new_id(), company.id, integration, "PendingAuth", codat_timestamp(self.clock.now(), fraction=False)
        )
        company.connections[connection.id] = connection
        self.emit("connection.created", company.id, connection.id)
        return connection

    def delete_connection(self, connection: Connection) -> None:
        del self.companies[connection.company_id].connections[connection.id]
        self.emit("connection.deleted", connection.company_id, connection.id)

    def set_status(self, connection: Connection, status: ConnectionStatus) -> None:
        previous = connection.status
        if previous == status:
            return
        connection.status = status
        if status == "Linked":
            connection.last_sync = self.now()
            connection.errors = []
            self.emit(
                "connection.connected" if previous == "PendingAuth" else "connection.reconnected",
                connection.company_id,
                connection.id,
            )
        elif status in ("Unlinked", "Deauthorized"):
            self.emit("connection.disconnected", connection.company_id, connection.id)

    def issue_otp(self, connection: Connection) -> str:
        now = self.clock.now()
        for stale in [k for k, grant in self.link_grants.items() if grant.expires <= now]:
            del self.link_grants[stale]
        otp = secrets.token_urlsafe(18)
        self.link_grants[otp] = LinkGrant(connection.company_id, connection.id, now + LINK_URL_LIFETIME)
        return otp

    def redeem_otp(self, otp: str, company_id: str, connection_id: str, *, consume: bool) -> Connection | None:
        """The connection a still-valid otp grants access to, or None."""
        grant = self.link_grants.get(otp)
        if grant is None or grant.expires <= self.clock.now():
            return None
        if (grant.company_id, grant.connection_id) != (company_id, connection_id):
            return None
        company = self.companies.get(company_id)
        connection = company.connections.get(connection_id) if company else None
        if consume:
            del self.link_grants[otp]
        return connection

    def issue_access_token(self, company: Company) -> str:
        token = secrets.token_urlsafe(32)
        self.access_tokens[token] = company.id
        return token
