"""Placeholder for Codat's hosted Link pages, where the customer authorizes a connection (no API key needed).

``GET /link/{companyId}/{connectionId}?otp=`` shows Authorize/Cancel; posting either redeems the one-time otp.
Webhooks for these transitions are recorded as ``SimEvent``s; sending them is not implemented yet.
"""

from __future__ import annotations

import html
import re

from .responses import SimResponse
from .state import SimState

_PAGE = re.compile(r"/link/(?P<company_id>[^/]+)/(?P<connection_id>[^/]+)(?P<action>/authorize|/cancel)?/?")
_COMPANY_PAGE = re.compile(r"/link/company/(?P<company_id>[^/]+)/?")


def is_link_path(path: str) -> bool:
    return path == "/link" or path.startswith("/link/")


def _html(status: int, title: str, body: str) -> SimResponse:
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return SimResponse(status, {"Content-Type": "text/html; charset=utf-8"}, page.encode())


def handle_link(state: SimState, method: str, path: str, query: dict[str, str]) -> SimResponse:
    company_page = _COMPANY_PAGE.fullmatch(path)
    if company_page is not None and method == "GET":
        company = state.companies.get(company_page["company_id"])
        if company is None:
            return _html(404, "Company not found", "")
        return _html(
            200, f"Link for {company.name}", "<p>Hosted Link is not simulated; use a connection's linkUrl.</p>"
        )

    found = _PAGE.fullmatch(path)
    if found is None:
        return _html(404, "Not found", "")
    action = (found["action"] or "").strip("/")
    if (method, bool(action)) not in (("GET", False), ("POST", True)):
        return _html(405, "Method not allowed", "")
    otp = query.get("otp", "")
    connection = state.redeem_otp(otp, found["company_id"], found["connection_id"], consume=bool(action))
    if connection is None:
        return _html(403, "This link has expired", "<p>Ask for a new link.</p>")
    platform = html.escape(connection.integration.name)
    if action == "authorize":
        state.set_status(connection, "Linked")
        return _html(200, f"Connected to {connection.integration.name}", "<p>You can close this window.</p>")
    if action == "cancel":
        if connection.status == "PendingAuth":
            state.emit("connection.failed", connection.company_id, connection.id)
        return _html(200, "Cancelled", "<p>No data was shared.</p>")
    base = f"/link/{found['company_id']}/{found['connection_id']}"
    forms = "".join(
        f"<form method='post' action='{base}/{verb}?otp={html.escape(otp)}'><button>{label}</button></form>"
        for verb, label in (("authorize", "Authorize"), ("cancel", "Cancel"))
    )
    return _html(200, f"Connect {connection.integration.name}", f"<p>Share your {platform} data?</p>{forms}")
