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


def codat_time(moment: datetime | None = None) -> str:
    """Codat's timestamp style: UTC, 7 fractional digits, `Z`."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def envelope(event_type: str, payload: Mapping[str, Any], *, generated: datetime | None = None) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "eventType": event_type,
        "generatedDate": codat_time(generated),
        "payload": payload,
    }


def reference_company(company_id: str) -> dict[str, Any]:
    return {
        "id": company_id,
        "name": "Acme Bakery Ltd",
        "description": "",
        "links": {"portal": f"https://app.codat.io/companies/{company_id}/summary"},
        "tags": {},
    }


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
) -> dict[str, Any]:
    connection: dict[str, Any] = {
        "id": connection_id,
        "integrationId": "bf083d72-62c7-493e-aec9-81b4dbba7e2c",
        "integrationKey": integration_key,
        "sourceId": "bdd831ce-eebd-4896-89a7-20e5ee8989ee",
        "platformName": platform_name,
        "linkUrl": f"https://link-api.codat.io/companies/{company_id}/connections/{connection_id}/start",
        "status": status,
        "created": codat_time(generated),
        "sourceType": source_type,
    }
    if errors:
        connection["dataConnectionErrors"] = list(errors)
    payload = {"referenceCompany": reference_company(company_id), "connection": connection}
    return envelope(event_type, payload, generated=generated)


def read_event(
    *,
    company_id: str,
    connection_ids: Iterable[str],
    initial: bool,
    generated: datetime | None = None,
    data_types: Iterable[str] = ("bankAccounts", "bankTransactions"),
) -> dict[str, Any]:
    reads = [
        {"connectionId": cid, "dataType": data_type, "recordsModified": True, "status": "Complete", "issues": []}
        for cid in connection_ids
        for data_type in data_types
    ]
    payload = {
        "referenceCompany": reference_company(company_id),
        "modifiedFromDate": codat_time(generated),
        "dataTypes": reads,
    }
    return envelope("read.completed.initial" if initial else "read.completed", payload, generated=generated)


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
