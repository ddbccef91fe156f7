"""The demo bank app (`/demo` on `make dev`) in a real, headless Chromium: a customer's whole consent journey
through the page — sign in, create a company, connect the bank on the simulator's link page, revoke, relink,
read the history, erase — with a screenshot of each step in `.artifacts/screenshots/`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

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

    def __init__(self, page: Any, prefix: str = "demo") -> None:
        self.page = page
        self.prefix = prefix
        self.count = 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for old in SCREENSHOTS.glob(f"{prefix}-[0-9][0-9]-*.png"):
            old.unlink()

    def shot(self, name: str, page: Any = None) -> None:
        self.count += 1
        path = SCREENSHOTS / f"{self.prefix}-{self.count:02d}-{name}.png"
        (page or self.page).screenshot(path=str(path), full_page=True)


def open_demo(stack: DevStack, browser: Any, **options: Any) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-GB", **options)
    context.set_default_timeout(UI_WAIT_MS)
    page = context.new_page()
    page.goto(f"{stack.api_url}/demo", timeout=UI_WAIT_MS)
    return context, page


def sign_in(page: Any, customer: str) -> None:
    page.get_by_label("Customer id").fill(customer)
    page.get_by_role("button", name="Sign in").click()


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

    context, page = open_demo(stack, browser)
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    steps = Steps(page)
    journey = page.locator("#journeys .journey").first
    bank = page.locator("#connections .connection").first
    notice = page.locator("#notice")
    try:
        # Given the demo app, before anyone signs in: no session in the header
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.get_by_text("Signed in as")).to_be_hidden()
        expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
        steps.shot("sign-in")
        sign_in(page, CUSTOMER)

        # Then the journeys on offer are the deployment's (GET /journeys): title, description, what to connect
        expect(page.get_by_role("heading", name="Connect your business software")).to_be_visible()
        expect(page.get_by_text(f"Signed in as {CUSTOMER}")).to_be_visible()
        onboarding = page.get_by_role("radio", name="Business onboarding")
        expect(onboarding).to_be_visible()
        expect(onboarding).to_have_accessible_description(
            "Open a business account: connect your bank, and your accounting software if you wish. "
            "You connect: your bank (and, if you wish, your accounting software)."
        )
        expect(page.get_by_role("radio", name="Loan application")).to_be_visible()
        expect(page.get_by_label("Business name")).to_have_attribute("maxlength", "100")  # CreateCompanyRequest
        steps.shot("choose-journey")

        # When they create a company for the onboarding journey
        page.get_by_label("Business name").fill("Acme Bakery Ltd")
        onboarding.check()
        page.get_by_role("button", name="Create company").click()

        # Then the journey waits for a bank, the one source type it requires, and says so
        expect(page.get_by_role("heading", name="Acme Bakery Ltd", level=1)).to_be_visible()
        expect(journey.locator(".badge")).to_have_text("Not started")
        expect(journey.locator(".advice")).to_have_text("Now connect your bank.")
        company_id = page.locator("#company").get_attribute("data-company-id")
        assert company_id
        expect(page.get_by_text(company_id)).to_have_count(0)  # an internal id, not for the customer
        banking = page.locator("#integrations section", has=page.get_by_role("heading", name="Bank accounts"))
        expect(banking.locator(".badge")).to_have_text("Required")
        expect(page.locator("#integrations section", has_text="Accounting software").locator(".badge")).to_have_text(
            "Optional"
        )
        steps.shot("company-created")

        # When they connect the bank
        banking.get_by_role("button", name="Codat Banking Sandbox").click()

        # Then the connection waits for them at Codat, and the journey says so
        expect(bank.locator(".badge")).to_have_text("Waiting for you")
        expect(journey.locator(".advice")).to_have_text(
            "Now authorize access to Codat Banking Sandbox on Codat's page."
        )
        expect(page.get_by_role("link", name="Authorize Codat Banking Sandbox at Codat")).to_be_focused()
        steps.shot("bank-pending")
        authorize_on_codat(page, steps, "Codat Banking Sandbox", "connect")

        # Then the page sees the connection linked and the journey complete, by itself
        expect(journey.locator(".badge")).to_have_text("Complete", timeout=WEBHOOK_WAIT_MS)
        expect(journey.locator(".advice")).to_have_text("Everything the bank needs is connected and up to date.")
        expect(bank.locator(".badge")).to_have_text("Connected")
        expect(bank).to_contain_text("Data last synced", timeout=WEBHOOK_WAIT_MS)
        expect(page.locator("#announcer")).to_contain_text("Business onboarding: Complete", timeout=UI_WAIT_MS)
        # And the connected bank's tile says so and cannot be clicked again
        expect(banking.locator(".tile.connected", has_text="Codat Banking Sandbox")).to_contain_text("Connected")
        expect(banking.get_by_role("button", name="Codat Banking Sandbox")).to_have_count(0)
        steps.shot("journey-complete")

        # When they ask to revoke the bank's access
        page.get_by_role("button", name="Revoke access to Codat Banking Sandbox").click()

        # Then they are asked first, in words that say what revoking does
        dialog = page.get_by_role("dialog", name="Revoke access to Codat Banking Sandbox?")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("withdrawn at Codat, and the bank's systems are told")
        steps.shot("revoke-confirm")
        dialog.get_by_role("button", name="Revoke access").click()

        # Then the page confirms it, and the journey needs their action again
        expect(notice).to_have_text("Access to Codat Banking Sandbox was withdrawn, and the bank's systems were told.")
        expect(bank.locator(".badge")).to_have_text("Access revoked")
        expect(bank).not_to_contain_text("stays with you")
        expect(journey.locator(".badge")).to_have_text("Action required", timeout=WEBHOOK_WAIT_MS)
        expect(journey.locator(".advice")).to_have_text("Your bank is no longer connected: connect your bank again.")
        # and the bank's tile no longer looks like one never connected
        expect(banking.locator(".tile", has_text="Codat Banking Sandbox")).to_contain_text(
            "Access revoked — choose to connect again"
        )
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
        expect(history).to_contain_text("Journey complete")
        # as a clean audit trail, in the order things happened: Codat's confirmations follow what they confirm,
        # and nothing of the happy path is "late"
        labels = history.locator(".event").all_inner_texts()
        assert labels.index("Connection started") < labels.index("Codat confirmed the connection"), labels
        revoked = labels.index("You revoked access")
        assert "Codat confirmed access was revoked" in labels[revoked + 1 : revoked + 3], labels
        assert "Access revoked" not in labels, labels  # her revoke, confirmed: not a second revocation by Codat
        expect(history).not_to_contain_text("arrived after")
        steps.shot("history")

        # When they erase the company (and confirm)
        page.get_by_role("button", name="Erase company…").click()
        dialog = page.get_by_role("dialog", name="Erase Acme Bakery Ltd?")
        expect(dialog).to_be_visible()
        steps.shot("erase-confirm")
        dialog.get_by_role("button", name="Erase").click()

        # Then they are back at the start with a visible confirmation, and the company is gone from the API
        expect(page.get_by_role("heading", name="Connect your business software")).to_be_visible()
        expect(notice).to_have_text("Acme Bakery Ltd was erased, at Codat and here, with every connection.")
        expect(notice).to_be_focused()
        expect(page.locator("#company-list")).not_to_contain_text("Acme Bakery Ltd")
        steps.shot("erased")
        answer = httpx.get(
            f"{stack.api_url}/companies/{company_id}",
            headers={"Authorization": f"Bearer {stack.token(CUSTOMER)}"},
            timeout=10,
        )
        assert answer.status_code == 404

        # When they sign out, the header forgets them
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.get_by_text("Signed in as")).to_be_hidden()
        expect(page.locator("#session-customer")).to_have_text("")
        assert page_errors == []
    finally:
        context.close()


def test_a_loan_application_says_what_is_next_and_a_returning_customer_sees_her_companies(
    stack: DevStack, browser: Any
) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page = open_demo(stack, browser)
    steps = Steps(page, prefix="loan")
    journey = page.locator("#journeys .journey").first
    try:
        # Given a customer who applied for a loan and connected her bank
        sign_in(page, "customer-loan")
        page.get_by_label("Business name").fill("Brick Lane Cycles")
        page.get_by_role("radio", name="Loan application").check()
        page.get_by_role("button", name="Create company").click()
        expect(page.get_by_role("heading", name="Brick Lane Cycles", level=1)).to_be_visible()
        expect(journey.locator(".advice")).to_have_text("0 of 2 connected — now connect your accounting software.")
        page.get_by_role("button", name="Codat Banking Sandbox").click()
        authorize_on_codat(page, steps, "Codat Banking Sandbox", "loan-bank")

        # Then, with the bank linked and accounting not started, the page says what is next
        expect(journey.locator(".advice")).to_have_text(
            "1 of 2 connected — now connect your accounting software.", timeout=WEBHOOK_WAIT_MS
        )
        steps.shot("bank-linked-accounting-next")

        # When she connects an accounting package and authorizes it
        accounting = page.locator("#integrations section", has=page.get_by_role("heading", name="Accounting software"))
        accounting.get_by_role("button", name="Codat Sandbox").click()
        expect(journey.locator(".advice")).to_have_text(
            "1 of 2 connected — now authorize access to Codat Sandbox on Codat's page."
        )
        authorize_on_codat(page, steps, "Codat Sandbox", "loan-accounting")

        # Then the journey is complete, and the other accounting packages say why they cannot be chosen
        expect(journey.locator(".badge")).to_have_text("Complete", timeout=WEBHOOK_WAIT_MS)
        expect(accounting.locator(".tile.unavailable", has_text="Xero")).to_contain_text("Revoke Codat Sandbox first")
        expect(accounting.get_by_role("button", name="Xero")).to_have_count(0)
        steps.shot("loan-complete")

        # When she signs out and comes back
        page.get_by_role("button", name="Sign out").click()
        sign_in(page, "customer-loan")

        # Then she sees her companies first, each with its journey's status
        companies = page.locator("#companies")
        expect(companies.get_by_role("heading", name="Continue with one of your companies")).to_be_focused()
        expect(companies).to_contain_text("Brick Lane Cycles · Loan application: Complete")
        first = page.locator("#companies, #company-form").first
        expect(first).to_have_id("companies")
        expect(page.get_by_role("heading", name="Or start something new")).to_be_visible()
        steps.shot("returning-customer")
    finally:
        context.close()


def test_the_demo_app_shows_a_clear_banner_while_the_server_is_down(stack: DevStack, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page = open_demo(stack, browser)
    steps = Steps(page, prefix="offline")
    try:
        # Given a customer looking at her company
        sign_in(page, "customer-offline")
        page.get_by_label("Business name").fill("Quiet Street Deli")
        page.get_by_role("button", name="Create company").click()
        expect(page.get_by_role("heading", name="Quiet Street Deli", level=1)).to_be_visible()
        banner = page.get_by_role("alert").filter(has_text="The bank's server cannot be reached")
        expect(banner).to_be_hidden()

        # When the server stops answering the page's polls
        page.route("**/companies/**", lambda route: route.abort())

        # Then a banner says so, plainly
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("make dev")
        steps.shot("server-down")

        # When it answers again, the banner goes by itself
        page.unroute("**/companies/**")
        expect(banner).to_be_hidden()
    finally:
        context.close()


def test_the_demo_app_sends_no_request_beyond_the_api_and_the_simulator(stack: DevStack, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page = open_demo(stack, browser)
    hosts: set[str] = set()
    context.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    steps = Steps(page, prefix="offline-only")
    try:
        # Given a customer choosing her software (every integration's tile on screen)
        page.reload()
        sign_in(page, "customer-offline-only")
        page.get_by_label("Business name").fill("Harbour Fish Co")
        page.get_by_role("radio", name="Loan application").check()
        page.get_by_role("button", name="Create company").click()
        tiles = page.locator("#integrations .tile")
        expect(tiles.first).to_be_visible()
        expect(page.locator("#integrations .logo img")).to_have_count(0)  # initials, not Codat's CDN
        expect(tiles.filter(has_text="Codat Banking Sandbox").locator(".initials")).to_have_text("CB")

        # When she opens Codat's page for a connection and the page polls a few times
        page.get_by_role("button", name="Codat Banking Sandbox").click()
        link = page.get_by_role("link", name="Authorize Codat Banking Sandbox at Codat")
        with context.expect_page(timeout=UI_WAIT_MS) as opened:
            link.click()
        opened.value.wait_for_load_state(timeout=UI_WAIT_MS)
        expect(page.locator("#checked-at")).not_to_have_text("\u2013")  # polled at least once
        steps.shot("choose-software")

        # Then every request went to the page's origin or to the simulator
        allowed = {urlsplit(stack.api_url).netloc, urlsplit(stack.codat_url).netloc}
        assert hosts, "no request was seen"
        assert hosts <= allowed, f"requests left for {sorted(hosts - allowed)}"
    finally:
        context.close()


def test_the_demo_app_shows_problem_details_next_to_the_action(stack: DevStack, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page = open_demo(stack, browser)
    try:
        # Given a signed-in customer
        sign_in(page, "customer-errors")
        expect(page.get_by_role("heading", name="Connect your business software")).to_be_visible()

        # When the API refuses the request (a name longer than the API allows, past the form's own check)
        create = page.get_by_role("button", name="Create company")
        busy_while_in_flight: list[tuple[bool, str | None]] = []

        def note_the_button(route: Any) -> None:
            if route.request.method == "POST":
                busy_while_in_flight.append((create.is_disabled(), create.get_attribute("aria-busy")))
            route.continue_()

        page.route("**/companies", note_the_button)
        page.get_by_label("Business name").evaluate("input => input.removeAttribute('maxlength')")
        page.get_by_label("Business name").fill("x" * 1000)
        create.click()

        # Then the problem is shown as a readable alert right after the form, with the focus on it
        alert = page.get_by_role("alert")
        expect(alert).to_be_visible()
        expect(alert).not_to_contain_text("{")
        expect(alert).to_contain_text("name")
        expect(page.locator("#company-form + .inline-error")).to_be_focused()
        # And the button was busy while the request was out, and is usable again
        assert busy_while_in_flight == [(True, "true")]
        expect(create).to_be_enabled()
        expect(create).not_to_have_attribute("aria-busy", "true")
    finally:
        context.close()
