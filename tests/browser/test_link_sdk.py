"""Option 1 of Codat's guide in the demo bank app (`/demo` on `make dev`), in a real, headless Chromium, offline:
Codat's Link SDK mounted inside the bank's page (the simulator's stand-in, imported from the simulator as Codat's
module would be from link-sdk.codat.io) — connect, cancel, an error, manage connections and disconnect — with a
screenshot of each step in `.artifacts/screenshots/`. Whatever the SDK's callbacks say, the page shows what Codat's
webhooks made true; and a consent given inside the page reads in the ledger as one given on Codat's hosted page."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from test_demo import WEBHOOK_WAIT_MS, Steps, authorize_on_codat, open_demo, sign_in

from consent_dev.devserver import DevStack

pytestmark = pytest.mark.browser

CONSENT_VERSION = "2026-01"  # the demo's data-sharing terms (CONSENT_VERSION in app.js)
BANK = "Codat Banking Sandbox"
SDK_MODE = "Connect inside this page (Codat's Link SDK)"
HOSTED_MODE = "Connect on Codat's page (hosted link)"


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    with DevStack(port=0, codat_port=0, environ={}) as running:
        yield running


def start_company(page: Any, customer: str, name: str) -> str:
    """Sign in, create a company for the onboarding journey (a bank required); its id."""
    from playwright.sync_api import expect  # noqa: PLC0415

    sign_in(page, customer)
    page.get_by_label("Business name").fill(name)
    page.get_by_role("radio", name="Business onboarding").check()
    page.get_by_role("button", name="Create company").click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
    company_id = page.locator("#company").get_attribute("data-company-id")
    assert company_id
    return str(company_id)


def link_panel(page: Any) -> Any:
    return page.get_by_role("dialog", name="Codat: connect your software")


def open_link_sdk(page: Any) -> Any:
    """Choose Option 1 and open Codat's Link in the page: the panel, once it lists the software."""
    from playwright.sync_api import expect  # noqa: PLC0415

    page.get_by_role("radio", name=SDK_MODE).check()
    page.get_by_role("button", name="Connect your software with Codat").click()
    panel = link_panel(page)
    expect(panel).to_be_visible()
    expect(panel.get_by_role("heading", name="Connect your software")).to_be_focused()
    return panel


def ledger(stack: DevStack, customer: str, company_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(
        f"{stack.api_url}/companies/{company_id}/events?limit=100",
        headers={"Authorization": f"Bearer {stack.token(customer)}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def trail(entries: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """What a consent looks like in the ledger, whoever's ids: (type, kind of actor, consent version)."""
    return [(e["type"], e["actor"].split(":", 1)[0], e.get("consentVersion")) for e in entries]


def flush_webhooks(stack: DevStack) -> None:
    answer = httpx.post(f"{stack.codat_url}/_simulator/webhooks/flush?timeout=10", timeout=15)
    assert answer.status_code == 200, answer.text
    assert answer.json()["drained"], answer.text


def test_a_customer_connects_her_bank_inside_the_page_with_codats_link_sdk(stack: DevStack, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page = open_demo(stack, browser)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    hosts: set[str] = set()
    context.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    steps = Steps(page, prefix="link-sdk")
    journey = page.locator("#journeys .journey").first
    bank = page.locator("#connections .connection").first
    try:
        # Given a customer who applies for business onboarding
        company_id = start_company(page, "customer-sdk", "Acme Bakery Ltd")

        # When she chooses to connect inside the bank's page
        page.get_by_role("radio", name=SDK_MODE).check()

        # Then the page offers Codat's window instead of its own tiles, and says which terms she accepts
        expect(page.get_by_role("button", name="Connect your software with Codat")).to_be_visible()
        expect(page.locator("#integrations")).to_be_hidden()
        expect(page.locator("#consent-terms")).to_contain_text(f"version {CONSENT_VERSION}")
        steps.shot("choose-option-1")

        # When she opens it
        open_button = page.get_by_role("button", name="Connect your software with Codat")
        open_button.click()

        # Then Codat's Link opens inside the page, with the focus in it, listing what she may connect
        panel = link_panel(page)
        expect(panel).to_be_visible()
        expect(panel.get_by_role("heading", name="Connect your software")).to_be_focused()
        expect(panel.get_by_role("heading", name="Bank accounts")).to_be_visible()
        expect(panel.get_by_role("button", name="Xero")).to_be_visible()
        expect(panel.get_by_role("button", name="Pandle")).to_have_count(0)  # not enabled in the catalogue
        steps.shot("link-lists-software")

        # When she picks her bank, reads what she agrees to, and authorizes it
        panel.get_by_role("button", name=BANK).click()
        expect(panel.get_by_role("heading", name=f"Connect {BANK}")).to_be_focused()
        expect(panel).to_contain_text(f"lets your bank read its {BANK} data through Codat")
        steps.shot("link-consent")
        panel.get_by_role("button", name="Authorize").click()

        # Then Codat's Link says so, and she finishes
        expect(panel.get_by_role("heading", name=f"{BANK} is connected")).to_be_focused()
        steps.shot("link-connected")
        panel.get_by_role("button", name="Finish").click()

        # Then the panel is gone, the focus is back on the button she used
        expect(panel).to_be_hidden()
        expect(open_button).to_be_focused()

        # And the journey completes from Codat's webhooks, the page polling as ever
        expect(journey.locator(".badge")).to_have_text("Complete", timeout=WEBHOOK_WAIT_MS)
        expect(journey.locator(".advice")).to_have_text("Everything the bank needs is connected and up to date.")
        expect(bank.locator(".badge")).to_have_text("Connected")
        expect(bank).to_contain_text("Data last synced", timeout=WEBHOOK_WAIT_MS)
        expect(page.locator("#sdk-hint")).to_be_hidden()  # "Codat is confirming…" went once Codat confirmed
        steps.shot("journey-complete")

        # And the bank recorded her consent, with the terms she accepted, as hers
        created = [e for e in ledger(stack, "customer-sdk", company_id) if e["type"] == "connection.created"]
        assert [(e["actor"], e.get("consentVersion")) for e in created] == [("customer:customer-sdk", CONSENT_VERSION)]

        # And nothing was loaded from beyond the API and the simulator
        allowed = {urlsplit(stack.api_url).netloc, urlsplit(stack.codat_url).netloc}
        assert hosts <= allowed, f"requests left for {sorted(hosts - allowed)}"
        assert page_errors == []
    finally:
        context.close()


def test_closing_codats_link_without_authorizing_records_nothing(stack: DevStack, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page = open_demo(stack, browser)
    steps = Steps(page, prefix="link-sdk-cancel")
    try:
        # Given a customer who opened Codat's Link and got as far as the consent for her bank
        company_id = start_company(page, "customer-sdk-cancel", "Corner Shop Ltd")
        panel = open_link_sdk(page)
        panel.get_by_role("button", name=BANK).click()
        expect(panel.get_by_role("heading", name=f"Connect {BANK}")).to_be_visible()

        # When she cancels
        panel.get_by_role("button", name="Cancel").click()

        # Then the panel closes, the focus comes back, and the page says nothing was connected
        expect(panel).to_be_hidden()
        expect(page.get_by_role("button", name="Connect your software with Codat")).to_be_focused()
        expect(page.locator("#announcer")).to_have_text("Codat's window was closed. Nothing was connected.")
        steps.shot("cancelled")

        # When she opens it again and leaves with Escape
        panel = open_link_sdk(page)
        page.keyboard.press("Escape")
        expect(panel).to_be_hidden()
        expect(page.get_by_role("button", name="Connect your software with Codat")).to_be_focused()

        # Then nothing was made at Codat, and nothing is recorded: no connection, no consent in the ledger
        flush_webhooks(stack)
        assert stack.simulator is not None
        assert stack.simulator.companies[company_id].connections == {}
        expect(page.locator("#no-connections")).to_be_visible()
        expect(page.locator("#journeys .journey .badge").first).to_have_text("Not started")
        types = [e["type"] for e in ledger(stack, "customer-sdk-cancel", company_id)]
        assert not [t for t in types if "connection" in t], types
        steps.shot("nothing-recorded")
    finally:
        context.close()


def test_codats_errors_reach_the_customer_in_plain_words_next_to_what_she_used(stack: DevStack, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page = open_demo(stack, browser)
    steps = Steps(page, prefix="link-sdk-error")
    open_button = page.get_by_role("button", name="Connect your software with Codat")
    try:
        # Given a customer about to connect inside the page, and Codat failing for a moment
        start_company(page, "customer-sdk-error", "Rainy Day Umbrellas")
        page.get_by_role("radio", name=SDK_MODE).check()
        fault = httpx.post(f"{stack.codat_url}/_simulator/sdk-faults", json={"status": 503, "times": 1}, timeout=10)
        assert fault.status_code == 201, fault.text

        # When she opens Codat's Link
        open_button.click()

        # Then the panel closes, and the problem is said right after the button, with the focus on it:
        # Codat's onError said the customer can try again (userRecoverable)
        expect(link_panel(page)).to_be_hidden()
        alert = page.locator("#sdk-connect + .inline-error")
        expect(alert).to_be_focused()
        expect(alert).to_have_attribute("role", "alert")
        expect(alert).to_contain_text("Codat could not finish")
        expect(alert).to_contain_text("Please try again in a moment")
        expect(alert).not_to_contain_text("{")
        steps.shot("recoverable-error")

        # When she tries again, it works
        open_button.click()
        expect(link_panel(page).get_by_role("heading", name="Connect your software")).to_be_visible()
        expect(alert).to_have_count(0)
        link_panel(page).get_by_role("button", name="Close").click()
        expect(link_panel(page)).to_be_hidden()

        # When the token the bank hands over is not one Codat issued (e.g. forged on the way)
        def forged(route: Any) -> None:
            session = {
                "component": "link",
                "accessToken": "forged",
                "expiresIn": 86400,
                "expiresAt": "2099-01-01T00:00:00Z",
            }
            route.fulfill(status=201, content_type="application/json", body=json.dumps(session))

        page.route("**/sdk-sessions", forged)
        open_button.click()

        # Then Codat refuses it (onError, not recoverable), and she is told to reload, not to try again
        alert = page.locator("#sdk-connect + .inline-error")
        expect(alert).to_be_focused()
        expect(alert).to_contain_text("Codat's window could not open")
        expect(alert).to_contain_text("reload the page")
        expect(alert).to_contain_text("Codat's reference:")
        steps.shot("token-refused")
        page.unroute("**/sdk-sessions")
    finally:
        context.close()


def test_a_disconnect_in_codats_connections_component_needs_her_action_again(stack: DevStack, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page = open_demo(stack, browser)
    steps = Steps(page, prefix="connections-sdk")
    journey = page.locator("#journeys .journey").first
    bank = page.locator("#connections .connection").first
    try:
        # Given a customer whose bank is connected (through Codat's Link, in the page)
        company_id = start_company(page, "customer-sdk-manage", "Hilltop Dairy")
        panel = open_link_sdk(page)
        panel.get_by_role("button", name=BANK).click()
        panel.get_by_role("button", name="Authorize").click()
        panel.get_by_role("button", name="Finish").click()
        expect(journey.locator(".badge")).to_have_text("Complete", timeout=WEBHOOK_WAIT_MS)

        # When she manages her connections at Codat
        manage = page.get_by_role("button", name="Manage connections at Codat")
        manage.click()

        # Then Codat's Connections component lists them, with the focus in it
        panel = page.get_by_role("dialog", name="Codat: manage your connections")
        expect(panel.get_by_role("heading", name="Manage your connections")).to_be_focused()
        expect(panel.locator(".codat-connection", has_text=BANK)).to_contain_text("Connected")
        steps.shot("connections-listed")

        # When she disconnects her bank (and confirms)
        panel.get_by_role("button", name=f"Disconnect {BANK}").click()
        expect(panel).to_contain_text(f"Disconnect {BANK}? Your bank will no longer receive its data.")
        steps.shot("disconnect-confirm")
        panel.get_by_role("button", name="Disconnect", exact=True).click()
        expect(panel.get_by_role("status")).to_have_text(f"{BANK} was disconnected.")
        expect(panel.locator(".codat-connection", has_text=BANK)).to_contain_text("Disconnected")
        steps.shot("disconnected-at-codat")
        panel.get_by_role("button", name="Close").click()
        expect(panel).to_be_hidden()
        expect(manage).to_be_focused()

        # Then, from Codat's webhook, the page shows the access revoked and the journey needing her again
        expect(bank.locator(".badge")).to_have_text("Access revoked", timeout=WEBHOOK_WAIT_MS)
        expect(journey.locator(".badge")).to_have_text("Action required", timeout=WEBHOOK_WAIT_MS)
        expect(journey.locator(".advice")).to_have_text("Your bank is no longer connected: connect your bank again.")
        steps.shot("action-required")

        # And the bank recorded it as her revocation
        revocations = [e for e in ledger(stack, "customer-sdk-manage", company_id) if e["type"] == "consent.revoked"]
        assert [e["actor"] for e in revocations] == ["customer:customer-sdk-manage"], revocations
    finally:
        context.close()


def test_the_ledger_reads_the_same_for_a_consent_given_in_the_page_or_on_codats_page(
    stack: DevStack, browser: Any
) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page = open_demo(stack, browser)
    steps = Steps(page, prefix="ledger-both-ways")
    journey = page.locator("#journeys .journey").first
    customer = "customer-both-ways"
    try:
        # Given a customer who connects one company's bank on Codat's hosted page (Option 2)
        hosted = start_company(page, customer, "Hosted Link Ltd")
        page.get_by_role("radio", name=HOSTED_MODE).check()
        page.get_by_role("button", name=BANK).click()
        authorize_on_codat(page, steps, BANK, "hosted")
        expect(journey.locator(".badge")).to_have_text("Complete", timeout=WEBHOOK_WAIT_MS)
        expect(page.locator("#connections .connection").first).to_contain_text(
            "Data last synced", timeout=WEBHOOK_WAIT_MS
        )

        # And another company's bank inside the page, with Codat's Link SDK (Option 1)
        page.get_by_role("button", name="All companies").click()
        page.get_by_label("Business name").fill("Link SDK Ltd")
        page.get_by_role("radio", name="Business onboarding").check()
        page.get_by_role("button", name="Create company").click()
        expect(page.get_by_role("heading", name="Link SDK Ltd", level=1)).to_be_visible()
        in_page = str(page.locator("#company").get_attribute("data-company-id"))
        panel = open_link_sdk(page)
        panel.get_by_role("button", name=BANK).click()
        panel.get_by_role("button", name="Authorize").click()
        panel.get_by_role("button", name="Finish").click()
        expect(journey.locator(".badge")).to_have_text("Complete", timeout=WEBHOOK_WAIT_MS)
        expect(page.locator("#connections .connection").first).to_contain_text(
            "Data last synced", timeout=WEBHOOK_WAIT_MS
        )
        page.get_by_role("button", name="Show history").click()
        expect(page.locator("#history")).to_contain_text("Journey complete")
        steps.shot("history-option-1", page)
        flush_webhooks(stack)

        # Then both ledgers tell the same story, entry for entry: her consent with her terms, Codat's confirmation,
        # the link, the first sync, the journey's milestones
        by_hosted_link = trail(ledger(stack, customer, hosted))
        by_link_sdk = trail(ledger(stack, customer, in_page))
        assert by_link_sdk == by_hosted_link
        assert ("connection.created", "customer", CONSENT_VERSION) in by_link_sdk
        kinds = [(kind, actor) for kind, actor, _ in by_link_sdk]
        for step in (("connection.created", "customer"), ("codat.connection.created", "codat")):
            assert step in kinds, kinds
        order = [kind for kind, _ in kinds]
        assert order.index("connection.created") < order.index("codat.connection.created")
        assert order.index("codat.connection.created") <= order.index("connection.linked")
        assert order.index("connection.linked") < order.index("sync.completed") < order.index("journey.completed")
    finally:
        context.close()
