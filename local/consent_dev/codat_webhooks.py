"""Codat's webhook deliveries, built and signed as Codat (through Svix) sends them: for tests, and for the
simulator's deliveries to the local webhook route."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from consent.webhooks.signature import decode_secret, sign

# A documented fake (base64 of "consent-dev-webhook-secret-0001"): the default of `make dev` and tests.
DEV_WEBHOOK_SECRET = "whsec_Y29uc2VudC1kZXYtd2ViaG9vay1zZWNyZXQtMDAwMQ=="  # noqa: S105 - documented fake
# A documented fake: the key of the customer reference `make dev` tags Codat companies with (CustomerRefKeySecret).
DEV_CUSTOMER_REF_KEY = "consent-dev-customer-ref-key-0001"


def codat_time(moment: datetime | None = None) -> str:
    """Codat's timestamp style: UTC, 7 fractional digits, `Z`."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def envelope(
    event_type: str, payload: Mapping[str, Any], *, generated: datetime | None = None, event_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": event_id or str(uuid.uuid4()),
        "eventType": event_type,
        "generatedDate": codat_time(generated),
        "payload": payload,
    }


def reference_company(
    company_id: str, *, name: str = "Acme Bakery Ltd", description: str = "", tags: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        "id": company_id,
        "name": name,
        "description": description,
        "links": {"portal": f"https://app.codat.io/companies/{company_id}/summary"},
        "tags": dict(tags or {}),
    }


def company_event(
    event_type: str,
    company: Mapping[str, Any],
    *,
    generated: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """``company.created`` / ``company.deleted``: the payload is the company itself (Codat's ``companyDetails``)."""
    return envelope(event_type, dict(company), generated=generated, event_id=event_id)


def connection_event(
    event_type: str,
    *,
    company_id: str,
    connection_id: str,
    status: str,
    integration_key: str = "qhnd",
    source_type: str = "Banking",
    platform_name: str = "Codat Sandbox Banking",
    generated: datetime | None = None,
    errors: Iterable[Mapping[str, Any]] = (),
    integration_id: str = "bf083d72-62c7-493e-aec9-81b4dbba7e2c",
    source_id: str = "bdd831ce-eebd-4896-89a7-20e5ee8989ee",
    link_url: str | None = None,
    created: str | None = None,
    last_sync: str | None = None,
    reference: Mapping[str, Any] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """A ``connection.*`` event; the keyword defaults are Codat's spec example values, for tests that need none."""
    connection: dict[str, Any] = {
        "id": connection_id,
        "integrationId": integration_id,
        "integrationKey": integration_key,
        "sourceId": source_id,
        "platformName": platform_name,
        "linkUrl": link_url or f"https://link-api.codat.io/companies/{company_id}/connections/{connection_id}/start",
        "status": status,
        "created": created or codat_time(generated),
        "sourceType": source_type,
    }
    if last_sync is not None:
        connection["lastSync"] = last_sync
    errors = list(errors)
    if errors:
        connection["dataConnectionErrors"] = [dict(error) for error in errors]
    payload = {"referenceCompany": dict(reference or reference_company(company_id)), "connection": connection}
    return envelope(event_type, payload, generated=generated, event_id=event_id)


def read_event(
    *,
    company_id: str,
    connection_ids: Iterable[str],
    initial: bool,
    generated: datetime | None = None,
    data_types: Iterable[str] = ("bankAccounts", "bankTransactions"),
    reference: Mapping[str, Any] | None = None,
    event_id: str | None = None,
    statuses: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ``read.completed(.initial)`` event: each data type read from each connection, with how it ended
    (``statuses`` by data type, Codat's pull operation statuses; ``Complete`` when not given)."""
    ended = {data_type: (statuses or {}).get(data_type, "Complete") for data_type in data_types}
    reads = [
        {
            "connectionId": cid,
            "dataType": data_type,
            "recordsModified": status == "Complete",
            "status": status,
            "issues": [],
        }
        for cid in connection_ids
        for data_type, status in ended.items()
    ]
    payload = {
        "referenceCompany": dict(reference or reference_company(company_id)),
        "modifiedFromDate": codat_time(generated),
        "dataTypes": reads,
    }
    event_type = "read.completed.initial" if initial else "read.completed"
    return envelope(event_type, payload, generated=generated, event_id=event_id)


def signed(
    body: Mapping[str, Any] | bytes,
    secret: str = DEV_WEBHOOK_SECRET,
    *,
    message_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    """The raw body and Standard Webhooks headers of one delivery (the same id on every retry)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(decode_secret(secret), message_id, timestamp, raw),
        "content-type": "application/json",
    }
    return raw, headers
