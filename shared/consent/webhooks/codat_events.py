"""Codat's webhook envelope and the payload parts the consent journey reads: tolerant readers with limits."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from consent.codat.models import CodatDateTime

_MAX_TIMESTAMP_CHARS = 64


def _bounded_timestamp(value: Any) -> Any:
    # Codat writes at most 7 fractional digits; the parser would take any number of them.
    if isinstance(value, str) and len(value) > _MAX_TIMESTAMP_CHARS:
        raise ValueError(f"a timestamp is at most {_MAX_TIMESTAMP_CHARS} characters")
    return value


class _Tolerant(BaseModel):
    # Codat adds fields over time: ignore what we do not read, validate what we do. Built on first use
    # (defer_build): an event type builds only the payload model it reads.
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True, defer_build=True)


class WebhookEnvelope(_Tolerant):
    # Read from every webhook: built at import (Lambda's init has more CPU than a request).
    model_config = ConfigDict(defer_build=False)

    id: str = Field(min_length=1, max_length=256)
    event_type: str = Field(alias="eventType", min_length=1, max_length=200)
    generated_date: Annotated[CodatDateTime, BeforeValidator(_bounded_timestamp)] = Field(alias="generatedDate")
    payload: dict[str, Any]


class ReferenceCompany(_Tolerant):
    id: str = Field(min_length=1, max_length=64)


class ConnectionError_(_Tolerant):
    status_text: str | None = Field(default=None, alias="statusText", max_length=1000)
    error_message: str | None = Field(default=None, alias="errorMessage", max_length=1000)


class WebhookConnection(_Tolerant):
    id: str = Field(min_length=1, max_length=64)
    integration_key: str | None = Field(default=None, alias="integrationKey", max_length=16)
    source_type: str | None = Field(default=None, alias="sourceType", max_length=32)
    platform_name: str | None = Field(default=None, alias="platformName", max_length=200)
    status: str | None = Field(default=None, max_length=32)
    data_connection_errors: list[ConnectionError_] | None = Field(
        default=None, alias="dataConnectionErrors", max_length=50
    )

    @property
    def reason(self) -> str | None:
        for error in self.data_connection_errors or []:
            text = error.error_message or error.status_text
            if text:
                return text[:200]
        return None


class ConnectionPayload(_Tolerant):
    reference_company: ReferenceCompany = Field(alias="referenceCompany")
    connection: WebhookConnection


class DataTypeRead(_Tolerant):
    # Codat's spec requires neither: an entry without them is about nothing we can place, and is skipped alone.
    connection_id: str | None = Field(default=None, alias="connectionId", min_length=1, max_length=64)
    data_type: str | None = Field(default=None, alias="dataType", min_length=1, max_length=100)
    status: str = Field(default="Unknown", max_length=50)


class ReadPayload(_Tolerant):
    reference_company: ReferenceCompany = Field(alias="referenceCompany")
    data_types: list[DataTypeRead] = Field(alias="dataTypes", min_length=1, max_length=500)


class CompanyPayload(_Tolerant):
    id: str = Field(min_length=1, max_length=64)
