"""Healing a missed `read.completed`: Codat's company-level data status (`GET …/dataStatus`) compared with the reads
the company's connections know, for the data types its journeys need, and a newer complete read recorded on the one
connection that can have made it.

Codat says when a data type last completed a read for the company, not from which connection: the read is the one
Linked connection's of the type's source type (`consent.domain.data_readiness.source_type_of`). With several, it could
be any of them: the type is left (counted in the report), never guessed; the webhook, or a later read of a single
connection, records it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from consent.codat.models import CodatConnection, DataStatus
from consent.domain.data_readiness import source_type_of
from consent.domain.journeys import JourneyCatalog
from consent.domain.records import CompanyRecord, ConnectionRecord
from consent.domain.resources import ConnectionStatus, SourceType
from consent.observability import logger
from consent.usecases.recording import ConnectionEvents


def required_types(catalog: JourneyCatalog, company: CompanyRecord) -> list[str]:
    """The data types the company's journeys need (none: no journey of it declares data)."""
    types: dict[str, None] = {}
    for progress in company.journeys:
        definition = catalog.get(progress.journey)
        if definition is not None and definition.data is not None:
            types.update(dict.fromkeys(definition.data.types))
    return list(types)


def worth_asking(catalog: JourneyCatalog, company: CompanyRecord, reported: Iterable[CodatConnection]) -> bool:
    """Whether Codat's data status could heal anything: a journey of the company needs data, and Codat has a Linked
    connection of a source type that reads it. Any other company costs no request."""
    sources = {source_type_of(t) for t in required_types(catalog, company)}
    return any(
        ConnectionStatus.from_codat(c.status) == ConnectionStatus.LINKED
        and SourceType.from_codat(c.source_type) in sources
        for c in reported
    )


def heal_reads(
    catalog: JourneyCatalog,
    events: ConnectionEvents,
    connection_ids: Iterable[str],
    statuses: Mapping[str, DataStatus],
) -> tuple[int, int]:
    """Each needed type whose last successful read in Codat is newer than any the company's connections know,
    recorded on the connection that made it (`events`: after the connections were brought up to Codat's status).
    How many types were recorded, and how many were left because several connections could have read them."""
    if not statuses:
        return 0, 0
    company = events.view.company
    connections = [c for cid in dict.fromkeys(connection_ids) if (c := events.connection(cid)) is not None]
    healed = ambiguous = 0
    for data_type in required_types(catalog, company):
        status = statuses.get(data_type)
        at = status.last_successful_sync if status is not None else None
        if at is None or not _newer(at, data_type, connections):
            continue
        source_type = source_type_of(data_type)
        readers = [
            c
            for c in connections
            if not c.deleted and c.status == ConnectionStatus.LINKED and c.source_type == source_type
        ]
        if len(readers) > 1:
            ambiguous += 1
            logger.info(
                "data read not attributed: several Linked connections could have made it",
                extra={"company_id": company.company_id, "data_type": data_type, "connections": len(readers)},
            )
            continue
        if not readers or at <= readers[0].created_at:
            continue  # none could have made it (a connection since deleted did, before this one existed)
        record = events.connection(readers[0].connection_id)
        assert record is not None
        events.update(record.with_reads([data_type], at, catalog.data_ages))
        connections = [events.connection(c.connection_id) or c for c in connections]
        healed += 1
    return healed, ambiguous


def _newer(at: datetime, data_type: str, connections: Iterable[ConnectionRecord]) -> bool:
    """Whether a read at `at` is newer than every read of `data_type` the company's connections know (deleted ones
    too: a read their webhook recorded is not one to attribute again)."""
    return all(c.data_reads.get(data_type) is None or at > c.data_reads[data_type] for c in connections)
