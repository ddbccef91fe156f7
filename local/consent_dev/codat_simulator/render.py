"""JSON shapes of Codat's resources, as the Platform API returns them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from .state import Company, Connection, Integration, SimState


def link_url(state: SimState, connection: Connection, base_url: str) -> str:
    # A fresh one-time link on every read, like Codat's `?otp=` links: clients must not cache them.
    otp = state.issue_otp(connection)
    return f"{base_url}/link/{connection.company_id}/{connection.id}?{urlencode({'otp': otp})}"


def connection_json(state: SimState, connection: Connection, base_url: str) -> dict[str, Any]:
    integration = connection.integration
    out: dict[str, Any] = {
        "id": connection.id,
        "integrationId": integration.integration_id,
        "integrationKey": integration.key,
        "sourceId": integration.source_id,
        "platformName": integration.name,
        "linkUrl": link_url(state, connection, base_url),
        "status": connection.status,
        "created": connection.created,
        "sourceType": integration.source_type,
    }
    if connection.last_sync is not None:
        out["lastSync"] = connection.last_sync
    if connection.errors:
        out["dataConnectionErrors"] = [dict(error) for error in connection.errors]
    return out


def company_json(state: SimState, company: Company, base_url: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": company.id,
        "name": company.name,
        "description": company.description or "",
        "platform": "",
        "redirect": f"{base_url}/link/company/{company.id}",
        "dataConnections": [connection_json(state, c, base_url) for c in company.connections.values()],
        "created": company.created,
        "createdByUserName": None,
        "products": [],
        "referenceSubsidiaryCompanies": [],
    }
    syncs = [c.last_sync for c in company.connections.values() if c.last_sync]
    if syncs:
        out["lastSync"] = max(syncs)
    if company.tags:
        out["tags"] = dict(company.tags)
    return out


def integration_json(integration: Integration) -> dict[str, Any]:
    return {
        "key": integration.key,
        "logoUrl": integration.logo_url,
        "name": integration.name,
        "enabled": integration.enabled,
        "sourceId": integration.source_id,
        "sourceType": integration.source_type,
        "integrationId": integration.integration_id,
        "isOfflineConnector": integration.is_offline_connector,
        "isBeta": integration.is_beta,
        "dataProvidedBy": integration.data_provided_by,
    }


def page_json(
    results: list[dict[str, Any]], *, page: int, page_size: int, total: int, path: str, filters: dict[str, str]
) -> dict[str, Any]:
    """Codat's paged envelope with HAL links; the links keep the caller's filters."""

    def href(number: int) -> dict[str, str]:
        return {"href": f"{path}?{urlencode({'page': number, 'pageSize': page_size, **filters})}"}

    links: dict[str, Any] = {"self": {"href": path}, "current": href(page)}
    if page > 1:
        links["previous"] = href(page - 1)
    if page * page_size < total:
        links["next"] = href(page + 1)
    return {"results": results, "pageNumber": page, "pageSize": page_size, "totalResults": total, "_links": links}
