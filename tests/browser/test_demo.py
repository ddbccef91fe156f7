"""The demo bank app (`/demo` on `make dev`) in a real, headless Chromium: a customer's whole consent journey
through the page — sign in, create a company, connect the bank on the simulator's link page, revoke, relink,
read the history, erase — with a screenshot of each step in `.artifacts/screenshots/`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from consent_dev.devserver import DevStack
from consent_dev.template import REPO_ROOT

pytestmark = pytest.mark.browser

SCREENSHOTS = REPO_ROOT / ".artifacts" / "screenshots"
UI_WAIT_MS = 10_000  # a page update after a click
WEBHOOK_WAIT_MS = 25_000  # link page → webhooks → journey state (first read ~2 s) → the page's 2 s poll
CUSTOMER = "customer-demo"


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    # environ={}: the simulator, whatever CODAT_* a developer's shell has.
    with DevStack(port=0, codat_port=0, environ={}) as running:
        yield running


class Steps:
    """Numbered screenshots, one per step of the journey."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.count = 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for old in SCREENSHOTS.glob("demo-*.png"):
            old.unlink()

    def shot(self, name: str, page: Any = None) -> None:
        self.count += 1
        (page or self.page).screenshot(path=str(SCREENSHOTS / f"demo-{self.count:02d}-{name}.png"), full_page=True)


def authorize_on_codat(page: Any, steps: Steps, platform: str, name: str) -> None:
    """Follow the connection's link (a new tab), press Authorize on the simulator's page, close the tab."""
    from playwright.sync_api import expect  # noqa: PLC0415

    link = page.get_by_role("link", name=f"Authorize {platform} at Codat")
    expect(link).to_be_visible(timeout=UI_WAIT_MS)
    with page.context.expect_page(timeout=UI_WAIT_MS) as opened:
        link.click()
    codat = opened.value
    codat.wait_for_load_state(timeout=UI_WAIT_MS)
    expect(codat.get_by_role("button", name="Authorize")).to_be_visible(timeout=UI_WAIT_MS)
    steps.shot(f"{name}-codat-link-page", codat)
    codat.get_by_role("button", name="Authorize").click()
    expect(codat.get_by_text("Your data is connected")).to_be_visible(timeout=UI_WAIT_MS)
    codat.close()


def test_a_customer_runs_the_whole_consent_journey_in_the_demo_app(stack: DevStack, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-GB")
    context.set_default_timeout(UI_WAIT_MS)
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    steps = Steps(page)
    journey = page.locator("#journeys .journey").first
    bank = page.locator("#connections .connection").first
    try:
        # Given the demo app, signed in as a customer
        page.goto(f"{stack.api_url}/demo", timeout=UI_WAIT_MS)
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        steps.shot("sign-in")
        page.get_by_label("Customer id").fill(CUSTOMER)
        page.get_by_role("button", name="Sign in").click()

        # When they create a company for the onboarding journey
        expect(page.get_by_role("heading", name="Connect your business software")).to_be_visible()
        page.get_by_label("Business name").fill("Acme Bakery Ltd")
        page.get_by_label("Open a business account").check()
        page.get_by_role("button", name="Create company").click()

        # Then the journey waits for a bank, the one source type it requires
        expect(page.get_by_role("heading", name="Acme Bakery Ltd", level=1)).to_be_visible()
        expect(journey.locator(".badge")).to_have_text("Not started")
        banking = page.locator("#integrations section", has=page.get_by_role("heading", name="Bank accounts"))
        expect(banking.locator(".badge")).to_have_text("Required")
        expect(page.locator("#integrations section", has_text="Accounting software").locator(".badge")).to_have_text(
            "Optional"
        )
        steps.shot("company-created")

        # When they connect the bank and authorize it on Codat's page
        banking.get_by_role("button", name="Codat Banking Sandbox").click()
        expect(bank.locator(".badge")).to_have_text("Waiting for you")
        steps.shot("bank-pending")
        authorize_on_codat(page, steps, "Codat Banking Sandbox", "connect")

        # Then the page sees the connection linked and the journey complete, by itself
        expect(journey.locator(".badge")).to_have_text("Complete", timeout=WEBHOOK_WAIT_MS)
        expect(bank.locator(".badge")).to_have_text("Connected")
        expect(bank).to_contain_text("Data last synced", timeout=WEBHOOK_WAIT_MS)
        expect(page.locator("#announcer")).to_contain_text("Business onboarding: Complete", timeout=UI_WAIT_MS)
        steps.shot("journey-complete")

        # When they revoke the bank's access
        page.get_by_role("button", name="Revoke access to Codat Banking Sandbox").click()

        # Then the journey needs their action again
        expect(bank.locator(".badge")).to_have_text("Access revoked")
        expect(journey.locator(".badge")).to_have_text("Action required", timeout=WEBHOOK_WAIT_MS)
        steps.shot("revoked")

        # When they re-authorize through a fresh link
        page.get_by_role("button", name="Re-authorize Codat Banking Sandbox").click()
        authorize_on_codat(page, steps, "Codat Banking Sandbox", "relink")

        # Then the journey is complete again
        expect(journey.locator(".badge")).to_have_text("Complete", timeout=WEBHOOK_WAIT_MS)
        expect(bank.locator(".badge")).to_have_text("Connected")
        steps.shot("relinked")

        # And the consent history tells the story
        page.get_by_role("button", name="Show history").click()
        history = page.locator("#history")
        expect(history).to_contain_text("Access authorized")
        expect(history).to_contain_text("Access revoked")
        expect(history).to_contain_text("Journey complete")
        steps.shot("history")

        # When they erase the company (and confirm)
        company_id = page.locator("#company-id").inner_text()
        page.get_by_role("button", name="Erase company…").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_be_visible()
        steps.shot("erase-confirm")
        dialog.get_by_role("button", name="Erase").click()

        # Then they are back at the start, and the company is gone from the API
        expect(page.get_by_role("heading", name="Connect your business software")).to_be_visible()
        expect(page.locator("#announcer")).to_contain_text("Acme Bakery Ltd was erased")
        steps.shot("erased")
        answer = httpx.get(
            f"{stack.api_url}/companies/{company_id}",
            headers={"Authorization": f"Bearer {stack.token(CUSTOMER)}"},
            timeout=10,
        )
        assert answer.status_code == 404
        assert page_errors == []
    finally:
        context.close()


def test_the_demo_app_shows_problem_details_as_readable_messages(stack: DevStack, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context = browser.new_context()
    context.set_default_timeout(UI_WAIT_MS)
    page = context.new_page()
    try:
        # Given a signed-in customer
        page.goto(f"{stack.api_url}/demo", timeout=UI_WAIT_MS)
        page.get_by_label("Customer id").fill("customer-errors")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Connect your business software")).to_be_visible()

        # When the API refuses the request (a name longer than the API allows, past the form's own check)
        page.get_by_label("Business name").evaluate("input => input.removeAttribute('maxlength')")
        page.get_by_label("Business name").fill("x" * 1000)
        page.get_by_role("button", name="Create company").click()

        # Then the problem's detail is shown in an alert, not a raw body
        alert = page.get_by_role("alert")
        expect(alert).to_be_visible()
        expect(alert).not_to_contain_text("{")
        expect(alert).to_contain_text("name")
    finally:
        context.close()
