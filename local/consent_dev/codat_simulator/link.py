"""Codat's hosted Link pages, where the customer authorizes or cancels a connection (no API key needed).

``GET /link/{companyId}/{connectionId}?otp=`` shows Authorize / Cancel; a form POST of ``action=authorize|cancel`` to
the same URL uses up the one-time otp, makes the change (with its webhooks) and redirects (303) like Codat's redirect
settings: to ``redirect_url`` with ``companyId``, ``connectionId`` and ``statusCode`` (and ``errorMessage``) added,
or with Codat's reserved ``{placeholders}`` in it filled in; by default to ``/link/finished``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from .api import SimRequest
from .pages import details, esc, page
from .responses import SimResponse
from .state import Connection, LinkCheck, SimState

LinkAction = Literal["authorize", "cancel"]

FINISHED_PATH = "/link/finished"
CANCELLED_MESSAGE = "User cancelled"

_PAGE = re.compile(r"/link/(?P<company_id>[^/]+)/(?P<connection_id>[^/]+)/?")
_COMPANY_PAGE = re.compile(r"/link/company/(?P<company_id>[^/]+)/?")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_RESERVED = frozenset(
    {"companyId", "connectionId", "platform", "sourceType", "statusCode", "statusText", "errorMessage"}
)

_REFUSALS: dict[LinkCheck, tuple[int, str, str]] = {
    "unknown": (403, "This link is not valid", "It is mistyped or belongs to another connection. Ask for a new link."),
    "used": (410, "This link has already been used", "Each link works once. Ask for a new link to try again."),
    "expired": (410, "This link has expired", "Links expire a day after they are issued. Ask for a new link."),
    "gone": (404, "This connection no longer exists", "It was deleted. Ask for a new link."),
}


@dataclass(frozen=True)
class LinkSettings:
    base_url: str
    redirect_url: str | None = None


def is_link_path(path: str) -> bool:
    return path == "/link" or path.startswith("/link/")


def handle_link(state: SimState, request: SimRequest, settings: LinkSettings) -> SimResponse:
    if request.path.rstrip("/") == FINISHED_PATH:
        return _finished(request) if request.method == "GET" else _not_allowed("GET")
    company_page = _COMPANY_PAGE.fullmatch(request.path)
    if company_page is not None:
        if request.method != "GET":
            return _not_allowed("GET")
        company = state.companies.get(company_page["company_id"])
        if company is None:
            return page(404, "Company not found", "")
        return page(200, f"Link for {company.name}", "<p>Hosted Link is not simulated: use a connection's linkUrl.</p>")

    found = _PAGE.fullmatch(request.path)
    if found is None:
        return page(404, "Not found", "<p>There is no page here.</p>")
    if request.method not in ("GET", "POST"):
        return _not_allowed("GET, POST")
    form = _form(request)
    otp = request.query.get("otp") or form.get("otp", "")
    check, connection = state.check_otp(otp, found["company_id"], found["connection_id"])
    if check != "valid" or connection is None:
        status, title, advice = _REFUSALS["gone" if check == "valid" else check]
        return page(status, title, f"<p>{esc(advice)}</p>")
    if request.method == "GET":
        return _consent_page(state, connection, request.path, otp)

    action = form.get("action") or request.query.get("action")
    if action not in ("authorize", "cancel"):
        return page(400, "Choose Authorize or Cancel", "<p>The form was sent without a valid action.</p>")
    decide(state, otp, connection, "authorize" if action == "authorize" else "cancel")
    if action == "authorize":
        return _redirect(settings, connection, 200, None)
    return _redirect(settings, connection, 403, CANCELLED_MESSAGE)


def decide(state: SimState, otp: str, connection: Connection, action: LinkAction) -> None:
    """The customer's answer on Link, with a valid ``otp``: it is used up, and the connection authorized (Linked, with
    ``connection.connected`` and the first read; a Linked one is re-authorized: ``connection.reconnected``) or its
    linking cancelled (``connection.failed``). The hosted page and the Link SDK stand-in both authorize through here."""
    state.use_otp(otp)
    if action == "authorize" and connection.status == "Linked":
        state.reauthorize(connection)
    elif action == "authorize":
        state.set_status(connection, "Linked")
    else:
        state.cancel_linking(connection)


def _form(request: SimRequest) -> dict[str, str]:
    content_type = request.headers.get("content-type", "application/x-www-form-urlencoded")
    if not request.body or not content_type.startswith("application/x-www-form-urlencoded"):
        return {}
    return dict(parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True))


def _consent_page(state: SimState, connection: Connection, path: str, otp: str) -> SimResponse:
    company = state.companies[connection.company_id]
    platform = connection.integration.name
    action = f"{path}?{urlencode({'otp': otp})}"
    body = (
        f"<p><strong>{esc(company.name)}</strong> asks to read your {esc(platform)} data through Codat.</p>"
        + details(
            [
                ("Company", company.name),
                ("Integration", f"{platform} ({connection.integration.source_type.lower()})"),
                ("Status", connection.status),
            ]
        )
        + f'<form method="post" action="{esc(action)}"><div class="actions">'
        '<button type="submit" name="action" value="authorize" class="primary">Authorize</button>'
        '<button type="submit" name="action" value="cancel" class="secondary">Cancel</button>'
        "</div></form>"
        '<p class="note">A stand-in for Codat\'s hosted Link: no credentials are asked for, no data leaves this '
        "machine. This link works once.</p>"
    )
    return page(200, f"Connect {platform}", body)


def _redirect(settings: LinkSettings, connection: Connection, status_code: int, error: str | None) -> SimResponse:
    values = {
        "companyId": connection.company_id,
        "connectionId": connection.id,
        "platform": connection.integration.key,
        "sourceType": connection.integration.source_type.lower(),
        "statusCode": str(status_code),
        "statusText": "User cancelled linking" if error else "",
        "errorMessage": error or "",
    }
    target = settings.redirect_url or f"{settings.base_url}{FINISHED_PATH}"
    if any(name in _RESERVED for name in _PLACEHOLDER.findall(target)):
        location = _PLACEHOLDER.sub(lambda m: quote(values[m[1]], safe="") if m[1] in _RESERVED else m[0], target)
    else:
        added = {name: values[name] for name in ("companyId", "connectionId", "statusCode")}
        if error:
            added["errorMessage"] = error
        parts = urlsplit(target)
        query = "&".join(q for q in (parts.query, urlencode(added)) if q)
        location = urlunsplit(parts._replace(query=query))
    return SimResponse(303, {"Location": location, "Cache-Control": "no-store", "Content-Length": "0"}, b"")


def _finished(request: SimRequest) -> SimResponse:
    if request.query.get("statusCode") == "200":
        return page(200, "Connected", "<p>Your data is connected. You can close this window.</p>")
    reason = request.query.get("errorMessage") or "The connection was not authorized"
    return page(200, "Not connected", f"<p>{esc(reason)}. You can close this window.</p>")


def _not_allowed(allow: str) -> SimResponse:
    return page(405, "Method not allowed", "", headers={"Allow": allow})
