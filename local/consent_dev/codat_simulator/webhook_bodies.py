"""The webhook envelope Codat sends for each simulated event, built with the same builders the product's tests use."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from consent_dev.codat_webhooks import company_event, connection_event, read_event, reference_company

from .data import initial_read_data_types

# What an envelope is built from: the state's Company, Connection and Integration (Protocols, as the state builds
# its events with this module).


class Integration(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def source_type(self) -> str: ...
    @property
    def integration_id(self) -> str: ...
    @property
    def source_id(self) -> str: ...


class Connection(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def integration(self) -> Integration: ...
    @property
    def status(self) -> str: ...
    @property
    def created(self) -> str: ...
    @property
    def last_sync(self) -> str | None: ...
    @property
    def errors(self) -> Sequence[Mapping[str, Any]]: ...


class Company(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def description(self) -> str | None: ...
    @property
    def tags(self) -> Mapping[str, str]: ...
    @property
    def created(self) -> str: ...
    @property
    def connections(self) -> Mapping[str, Connection]: ...


def webhook_body(
    event_type: str,
    *,
    event_id: str,
    generated: datetime,
    company: Company,
    connection: Connection | None,
    base_url: str,
    reads: Sequence[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """The envelope ``{id, eventType, generatedDate, payload}`` for ``company.*``, ``connection.*`` and reads
    (``reads``: each data type read and how it ended; by default the source's first-read types, all Complete)."""
    if event_type.startswith("company."):
        return company_event(event_type, company_details(company, base_url), generated=generated, event_id=event_id)
    if connection is None:
        raise ValueError(f"{event_type} needs a connection")
    reference = reference_company(
        company.id, name=company.name, description=company.description or "", tags=company.tags
    )
    if event_type.startswith("read.completed"):
        if reads is None:
            reads = [(t, "Complete") for t in initial_read_data_types(connection.integration.source_type)]
        return read_event(
            company_id=company.id,
            connection_ids=[connection.id],
            initial=event_type == "read.completed.initial",
            generated=generated,
            data_types=[data_type for data_type, _ in reads],
            statuses=dict(reads),
            reference=reference,
            event_id=event_id,
        )
    integration = connection.integration
    return connection_event(
        event_type,
        company_id=company.id,
        connection_id=connection.id,
        status=connection.status,
        integration_key=integration.key,
        source_type=integration.source_type,
        platform_name=integration.name,
        generated=generated,
        errors=connection.errors,
        integration_id=integration.integration_id,
        source_id=integration.source_id,
        # No otp: a webhook is not a place to hand out a usable one-time link (Codat's carry none either).
        link_url=f"{base_url}/link/{company.id}/{connection.id}",
        created=connection.created,
        last_sync=connection.last_sync,
        reference=reference,
        event_id=event_id,
    )


def company_details(company: Company, base_url: str) -> dict[str, Any]:
    """The company as ``company.*`` webhooks carry it (the spec's ``companyDetails``)."""
    details: dict[str, Any] = {
        "id": company.id,
        "name": company.name,
        "description": company.description or "",
        "redirect": f"{base_url}/link/company/{company.id}",
        "created": company.created,
    }
    syncs = [c.last_sync for c in company.connections.values() if c.last_sync]
    if syncs:
        details["lastSync"] = max(syncs)
    if company.tags:
        details["tags"] = dict(company.tags)
    return details
