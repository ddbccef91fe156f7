"""What the store keeps: the domain resources plus the bookkeeping they need (owner, versions, order)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pydantic import Field

from consent.domain import Company, Connection, ConnectionStatus, JourneyProgress, LedgerEntry, Resource
from consent.journeys import ConnectionState


class CompanyRecord(Resource):
    company_id: str
    customer_id: str
    name: str
    description: str | None = None
    external_ref: str | None = None
    created_at: datetime
    updated_at: datetime
    journeys: list[JourneyProgress] = Field(default_factory=list)
    # How many connections were ever requested for the company: part of Codat's Idempotency-Key for the
    # next one, so that concurrent or retried requests create one Codat connection, not two.
    connection_requests: int = 0
    # Optimistic concurrency: every update is conditional on the version it read.
    version: int = 1


class ConnectionRecord(Connection):
    """A connection as stored. `link_url` is never stored: Codat's link URLs are one-time and expire."""

    company_id: str
    customer_id: str
    company_created_at: datetime
    initial_read_done: bool = False
    # The Codat event that last set the status, for order safety (generatedDate, then webhook id).
    status_event_at: datetime | None = None
    status_event_id: str | None = None
    version: int = 1

    def to_resource(self, link_url: str | None = None) -> Connection:
        fields = self.model_dump(include=set(Connection.model_fields))
        fields["link_url"] = link_url
        return Connection.model_validate(fields)

    def to_state(self) -> ConnectionState:
        return ConnectionState(
            connection_id=self.connection_id,
            source_type=self.source_type,
            status=self.status,
            initial_read_done=self.initial_read_done,
        )


class LedgerRecord(LedgerEntry):
    """A ledger entry as stored, with what is needed to publish it as a consent event."""

    company_id: str
    customer_id: str | None = None
    # Journeys of the company when the entry was written, for subscribers' filter policies.
    journeys: list[str] = Field(default_factory=list)
    # The connection's status after this entry (connection entries only).
    status: ConnectionStatus | None = None
    # sync.completed: the data types read and how each went, e.g. [{"dataType": "invoices", "status": "Complete"}].
    data_types: list[dict[str, str]] | None = None
    # An event older than what the connection already reflects: kept for the record, changes nothing,
    # publishes nothing.
    late: bool = False

    def to_entry(self) -> LedgerEntry:
        return LedgerEntry.model_validate(self.model_dump(include=set(LedgerEntry.model_fields)))


@dataclass
class CompanyView:
    """A company with its connections, as read in one go."""

    company: CompanyRecord
    connections: list[ConnectionRecord] = field(default_factory=list)

    def to_resource(self) -> Company:
        record = self.company
        return Company(
            company_id=record.company_id,
            name=record.name,
            description=record.description,
            external_ref=record.external_ref,
            created_at=record.created_at,
            updated_at=record.updated_at,
            journeys=record.journeys,
            connections=[c.to_resource() for c in sorted(self.connections, key=lambda c: c.created_at)],
        )
