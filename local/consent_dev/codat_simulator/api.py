"""The simulated Platform API endpoints: routing plus one handler per operation."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from . import query as codat_query
from .consumers import MAX_COMPANY_TAG_LENGTH, MAX_COMPANY_TAGS, MAX_CONSUMERS, consumer_json
from .data import DATA_TYPES, READ_IN_PROGRESS, dataset_json, initial_read_data_types, supplied_data_types
from .render import company_json, connection_json, integration_json, page_json
from .responses import CodatError, SimResponse, empty_response, json_response
from .state import ACCESS_TOKEN_LIFETIME, Company, Connection, SimState

MAX_TAGS = 10
MAX_TAG_KEY = 27
MAX_TAG_VALUE = 100
DEFAULT_PAGE_SIZE = 100
# The spec lets a request ask for up to 5000 but documents a response pageSize of at most 2000: honour the latter.
MAX_PAGE_SIZE = 2000

# Characters outside the spec's name pattern ^[A-Za-z0-9\s\-',&@.,?!\s]+$ are removed, as Codat documents.
_FORBIDDEN_NAME_CHARS = re.compile(r"[^A-Za-z0-9\s\-',&@.?!]")

_COMPANY_FIELDS = ("id", "name", "description", "platform", "redirect", "lastSync", "created", "createdByUserName")
_CONNECTION_FIELDS = (
    "id", "integrationId", "integrationKey", "sourceId", "platformName", "linkUrl", "status", "lastSync", "created",
    "sourceType",
)  # fmt: skip
_INTEGRATION_FIELDS = (
    "key", "logoUrl", "name", "enabled", "sourceId", "sourceType", "integrationId", "isOfflineConnector", "isBeta",
    "dataProvidedBy",
)  # fmt: skip


@dataclass
class SimRequest:
    """A request as the simulator sees it; header names are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    json_error: bool = False


@dataclass
class Context:
    state: SimState
    request: SimRequest
    params: dict[str, str]
    base_url: str


Handler = Callable[[Context], SimResponse]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    pattern: re.Pattern[str]


def _compile(template: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(regex + "/?")


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        self.routes.append(Route(method, template, handler, _compile(template)))

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path params, whether the path exists under another method)."""
        path_known = False
        for route in self.routes:
            found = route.pattern.fullmatch(path)
            if found is None:
                continue
            if route.method == method:
                return route, found.groupdict(), True
            path_known = True
        return None, {}, path_known


# --- helpers ----------------------------------------------------------------------------------------------------


def _company(ctx: Context) -> Company:
    company_id = ctx.params["companyId"]
    company = ctx.state.companies.get(company_id)
    if company is None:
        raise CodatError(404, f"No company was found with ID {company_id}", service="ClientsApi")
    return company


def _connection(ctx: Context) -> Connection:
    company = _company(ctx)
    connection_id = ctx.params["connectionId"]
    connection = company.connections.get(connection_id)
    if connection is None:
        raise CodatError(404, f"Data connection {connection_id} not found")
    return connection


def _paging(ctx: Context) -> tuple[int, int]:
    values: list[int] = []
    for name, default in (("page", 1), ("pageSize", DEFAULT_PAGE_SIZE)):
        raw = ctx.request.query.get(name)
        try:
            value = default if raw is None else int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise CodatError(400, f"Error processing request - {name} must be a positive integer.")
        values.append(value)
    return values[0], min(values[1], MAX_PAGE_SIZE)


def _paged(ctx: Context, items: list[dict[str, Any]], filters: dict[str, str]) -> SimResponse:
    page, size = _paging(ctx)
    window = items[(page - 1) * size : page * size]
    payload = page_json(window, page=page, page_size=size, total=len(items), path=ctx.request.path, filters=filters)
    return json_response(200, payload)


def _filter_by_query(ctx: Context, items: list[dict[str, Any]], fields: tuple[str, ...], resource: str) -> list[Any]:
    text = ctx.request.query.get("query")
    if text is None:
        return items
    try:
        parsed = codat_query.parse(text)
        codat_query.check_fields(parsed, fields, resource)
    except codat_query.QueryError as error:
        raise CodatError(400, str(error), service="ClientsApi") from None
    return [item for item in items if codat_query.matches_record(parsed, item)]


def _filters(ctx: Context, names: tuple[str, ...]) -> dict[str, str]:
    return {name: ctx.request.query[name] for name in names if name in ctx.request.query}


def _json_object(ctx: Context) -> dict[str, Any]:
    if ctx.request.json_error or not isinstance(ctx.request.json, dict):
        raise CodatError(
            400, "Error processing request - not valid.", messages=["The request body must be a JSON object."]
        )
    return ctx.request.json


def clean_company_name(name: str) -> str:
    return _FORBIDDEN_NAME_CHARS.sub("", name)


def tag_problems(tags: object) -> list[str]:
    if not isinstance(tags, dict):
        return ["tags must be an object of string keys and values."]
    problems: list[str] = []
    if len(tags) > MAX_TAGS:
        problems.append(f"A company can have at most {MAX_TAGS} tags.")
    for key, value in tags.items():
        if not 1 <= len(key) <= MAX_TAG_KEY:
            problems.append(f"Tag key '{key}' must be between 1 and {MAX_TAG_KEY} characters.")
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE:
            problems.append(f"Tag '{key}' must have a string value of at most {MAX_TAG_VALUE} characters.")
    return problems


# --- companies --------------------------------------------------------------------------------------------------


def create_company(ctx: Context) -> SimResponse:
    body = _json_object(ctx)
    problems: list[str] = []
    name = body.get("name")
    if not isinstance(name, str) or not clean_company_name(name).strip():
        problems.append("Name is required and must contain at least one allowed character.")
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        problems.append("Description must be a string.")
    tags = body.get("tags") or {}
    problems.extend(tag_problems(tags))
    if problems:
        raise CodatError(400, "Error processing request - not valid.", messages=problems)
    assert isinstance(name, str)
    company = ctx.state.add_company(clean_company_name(name), description, tags)
    return json_response(200, company_json(ctx.state, company, ctx.base_url))


def list_companies(ctx: Context) -> SimResponse:
    companies = list(ctx.state.companies.values())
    tags_filter = ctx.request.query.get("tags")
    if tags_filter is not None:
        try:
            parsed = codat_query.parse(tags_filter)
        except codat_query.QueryError as error:
            raise CodatError(400, str(error), service="ClientsApi") from None
        companies = [c for c in companies if codat_query.matches_tags(parsed, c.tags)]
    items = [company_json(ctx.state, c, ctx.base_url) for c in companies]
    items = _filter_by_query(ctx, items, _COMPANY_FIELDS, "Company")
    return _paged(ctx, items, _filters(ctx, ("query", "tags", "orderBy")))


def get_company(ctx: Context) -> SimResponse:
    return json_response(200, company_json(ctx.state, _company(ctx), ctx.base_url))


def update_company(ctx: Context) -> SimResponse:
    """PATCH: the fields given replace the company's (tags as a whole)."""
    company = _company(ctx)
    body = _json_object(ctx)
    problems: list[str] = []
    if "name" in body and (not isinstance(body["name"], str) or not clean_company_name(body["name"]).strip()):
        problems.append("Name must contain at least one allowed character.")
    if "description" in body and not isinstance(body["description"], str):
        problems.append("Description must be a string.")
    if "tags" in body:
        problems.extend(tag_problems(body["tags"]))
    if problems:
        raise CodatError(400, "Error processing request - not valid.", messages=problems)
    if "name" in body:
        company.name = clean_company_name(body["name"])
    if "description" in body:
        company.description = body["description"]
    if "tags" in body:
        company.tags = dict(body["tags"])
    return json_response(200, company_json(ctx.state, company, ctx.base_url))


def delete_company(ctx: Context) -> SimResponse:
    ctx.state.delete_company(_company(ctx).id)
    return empty_response(204)


def get_access_token(ctx: Context) -> SimResponse:
    token = ctx.state.issue_access_token(_company(ctx))
    expires_in = int(ACCESS_TOKEN_LIFETIME.total_seconds())
    return json_response(200, {"accessToken": token, "expiresIn": expires_in, "tokenType": "Bearer"})


# --- connections ------------------------------------------------------------------------------------------------


def create_connection(ctx: Context) -> SimResponse:
    company = _company(ctx)
    key = _json_object(ctx).get("platformKey") if ctx.request.body else None
    if not isinstance(key, str) or not key:
        raise CodatError(400, "Error processing request - not valid.", messages=["platformKey is required."])
    integration = ctx.state.integrations.get(key)
    if integration is None:
        raise CodatError(404, f"No integration was found with key '{key}'")
    if not integration.enabled:
        raise CodatError(400, f"Integration '{key}' is not enabled.", messages=[f"Integration '{key}' is not enabled."])
    connection = ctx.state.add_connection(company, integration)
    return json_response(200, connection_json(ctx.state, connection, ctx.base_url))


def list_connections(ctx: Context) -> SimResponse:
    company = _company(ctx)
    items = [connection_json(ctx.state, c, ctx.base_url) for c in company.connections.values()]
    items = _filter_by_query(ctx, items, _CONNECTION_FIELDS, "DataConnection")
    return _paged(ctx, items, _filters(ctx, ("query", "orderBy")))


def get_connection(ctx: Context) -> SimResponse:
    return json_response(200, connection_json(ctx.state, _connection(ctx), ctx.base_url))


def unlink_connection(ctx: Context) -> SimResponse:
    connection = _connection(ctx)
    status = _json_object(ctx).get("status")
    if status != "Unlinked":
        raise CodatError(400, "Error processing request - not valid.", messages=["Only 'Unlinked' can be set."])
    if connection.status != "Linked":
        raise CodatError(
            400,
            f"Data connection {connection.id} is {connection.status}; only a Linked connection can be unlinked.",
        )
    ctx.state.set_status(connection, "Unlinked")
    return json_response(200, connection_json(ctx.state, connection, ctx.base_url))


def delete_connection(ctx: Context) -> SimResponse:
    ctx.state.delete_connection(_connection(ctx))
    # The spec documents a bare 200 (no body) here, unlike DELETE /companies/{companyId} which answers 204.
    return empty_response(200)


# --- data (reads) -----------------------------------------------------------------------------------------------


def queue_data(ctx: Context) -> SimResponse:
    """Queue a read of one data type: from the given connection, else from every Linked one that supplies it.

    Refused (400) for a data type being read already, and when no Linked connection supplies it."""
    company = _company(ctx)
    data_type = ctx.params["dataType"]
    if data_type not in DATA_TYPES:  # the spec's enum; only reached when the simulator does not validate
        raise CodatError(400, "Error processing request - not valid.", messages=[f"Unknown data type '{data_type}'."])
    connection_id = ctx.request.query.get("connectionId")
    if connection_id is not None:
        connection = company.connections.get(connection_id)
        if connection is None:
            raise CodatError(404, f"Data connection {connection_id} not found")
        candidates = [connection]
    else:
        candidates = list(company.connections.values())
    linked = [c for c in candidates if c.status == "Linked"]
    if connection_id is not None and not linked:
        status = candidates[0].status
        raise CodatError(400, f"Data connection {connection_id} is {status}: only a Linked connection can be read.")
    if not linked:
        raise CodatError(400, f"Company {company.id} has no Linked data connection to read {data_type} from.")
    supplying = [c for c in linked if data_type in supplied_data_types(c.integration.source_type)]
    if not supplying:
        platforms = ", ".join(sorted({c.integration.name for c in linked}))
        raise CodatError(400, f"The data type {data_type} is not supported by {platforms}.")
    if company.data.in_progress(data_type):
        raise CodatError(400, READ_IN_PROGRESS)
    started = ctx.state.start_reads(company, supplying, [data_type], initial=False)
    return json_response(200, dataset_json(started[0]))


def refresh_all_data(ctx: Context) -> SimResponse:
    """Queue a read of the first-read data types from each Linked connection, but those being read already."""
    company = _company(ctx)
    linked = [c for c in company.connections.values() if c.status == "Linked"]
    wanted = {c.id: initial_read_data_types(c.integration.source_type) for c in linked}
    busy = {t for types in wanted.values() for t in types if company.data.in_progress(t)}
    for connection in linked:
        data_types = [t for t in wanted[connection.id] if t not in busy]
        if data_types:
            ctx.state.start_reads(company, [connection], data_types, initial=False)
    return empty_response(204)


def get_data_status(ctx: Context) -> SimResponse:
    return json_response(200, _company(ctx).data.status_json())


# --- integrations -----------------------------------------------------------------------------------------------


def list_integrations(ctx: Context) -> SimResponse:
    items = [integration_json(i) for i in ctx.state.integrations.values()]
    items = _filter_by_query(ctx, items, _INTEGRATION_FIELDS, "Integration")
    return _paged(ctx, items, _filters(ctx, ("query", "orderBy")))


def get_integration(ctx: Context) -> SimResponse:
    key = ctx.params["platformKey"]
    integration = ctx.state.integrations.get(key)
    if integration is None:
        raise CodatError(404, f"No integration was found with key '{key}'")
    return json_response(200, integration_json(integration))


# --- webhook consumers ------------------------------------------------------------------------------------------


def list_webhook_consumers(ctx: Context) -> SimResponse:
    # At most 50 exist, so Codat answers them all at once: no paging.
    return json_response(200, {"results": [consumer_json(c) for c in ctx.state.webhook_consumers.all()]})


def create_webhook_consumer(ctx: Context) -> SimResponse:
    body = _json_object(ctx)
    url, event_types = body.get("url"), body.get("eventTypes") or []
    disabled, company_tags = body.get("disabled"), body.get("companyTags")
    problems: list[str] = []
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        problems.append("url is required: an absolute http(s) URL.")
    # Any event type name is taken (the spec's own examples use older names such as "DataSyncCompleted").
    if not isinstance(event_types, list) or not all(isinstance(t, str) and t for t in event_types):
        problems.append("eventTypes must be a list of event type names.")
    if disabled is not None and not isinstance(disabled, bool):
        problems.append("disabled must be true or false.")
    if company_tags is not None and (
        not isinstance(company_tags, list)
        or len(company_tags) > MAX_COMPANY_TAGS
        or not all(
            isinstance(t, str) and 0 < len(t) <= MAX_COMPANY_TAG_LENGTH and ":" in t.strip(":") for t in company_tags
        )
    ):
        problems.append(f"companyTags: at most {MAX_COMPANY_TAGS}, each tagKey:tagValue.")
    if problems:
        raise CodatError(400, "Error processing request - not valid.", messages=problems)
    if len(ctx.state.webhook_consumers) >= MAX_CONSUMERS:
        raise CodatError(
            400,
            f"The number of webhook consumers you can create is limited to {MAX_CONSUMERS}.",
            messages=["Delete an unused webhook consumer first."],
        )
    assert isinstance(url, str)
    consumer = ctx.state.webhook_consumers.add(url, event_types, disabled=bool(disabled), company_tags=company_tags)
    return json_response(201, consumer_json(consumer))


def delete_webhook_consumer(ctx: Context) -> SimResponse:
    consumer_id = ctx.params["webhookId"]
    if not ctx.state.webhook_consumers.delete(consumer_id):
        raise CodatError(404, f"Webhook consumer {consumer_id} not found")
    return empty_response(204)


def build_router() -> Router:
    router = Router()
    router.add("POST", "/companies", create_company)
    router.add("GET", "/companies", list_companies)
    router.add("GET", "/companies/{companyId}", get_company)
    router.add("PATCH", "/companies/{companyId}", update_company)
    router.add("DELETE", "/companies/{companyId}", delete_company)
    router.add("GET", "/companies/{companyId}/accessToken", get_access_token)
    router.add("POST", "/companies/{companyId}/connections", create_connection)
    router.add("GET", "/companies/{companyId}/connections", list_connections)
    router.add("GET", "/companies/{companyId}/connections/{connectionId}", get_connection)
    router.add("PATCH", "/companies/{companyId}/connections/{connectionId}", unlink_connection)
    router.add("DELETE", "/companies/{companyId}/connections/{connectionId}", delete_connection)
    router.add("POST", "/companies/{companyId}/data/queue/{dataType}", queue_data)
    router.add("POST", "/companies/{companyId}/data/all", refresh_all_data)
    router.add("GET", "/companies/{companyId}/dataStatus", get_data_status)
    router.add("GET", "/integrations", list_integrations)
    router.add("GET", "/integrations/{platformKey}", get_integration)
    router.add("GET", "/webhooks", list_webhook_consumers)
    router.add("POST", "/webhooks", create_webhook_consumer)
    router.add("DELETE", "/webhooks/{webhookId}", delete_webhook_consumer)
    return router
