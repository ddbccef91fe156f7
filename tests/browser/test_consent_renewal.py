"""The consent clock in the demo bank app (`/demo` on `make dev`), in a real, headless Chromium: a bank connection
shows by when to renew it; the page's rehearsal panel (make dev only) moves the stack's time on and sends the
reminders due; once the renewal window is open the customer renews on the simulator's link page, and the page shows
the reminder, the renewal and the next `renewBy`. Screenshots in `.artifacts/screenshots/renewal-*.png`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from test_demo import WEBHOOK_WAIT_MS, Steps, authorize_on_codat, open_demo, sign_in

from consent_dev.devserver import DevStack

pytestmark = pytest.mark.browser

CUSTOMER = "customer-renewal"
BANK = "Codat Banking Sandbox"


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    # Its own stack: the test moves its clock, which never goes back. environ={}: the simulator.
    with DevStack(port=0, codat_port=0, environ={}) as running:
        yield running


def bank_connection(stack: DevStack, company_id: str) -> dict[str, Any]:
    """The bank connection as the API gives it."""
    answer = httpx.get(
        f"{stack.api_url}/companies/{company_id}/connections",
        headers={"Authorization": f"Bearer {stack.token(CUSTOMER)}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    [connection] = answer.json()["items"]
    return dict(connection)


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def readable_day(text: str) -> re.Pattern[str]:
    """The day the page shows for an instant (en-GB, UTC: "28 Feb 2027"; September may read "Sept")."""
    moment = instant(text)
    return re.compile(rf"\b{moment.day} {moment:%b}\w* {moment.year}\b")


def settled(page: Any) -> None:
    """The page's one action at a time is over (its next click is not dropped)."""
    from playwright.sync_api import expect  # noqa: PLC0415

    expect(page.locator("body")).not_to_have_attribute("aria-busy", "true")


def test_a_customer_is_reminded_and_renews_her_bank_consent_in_the_demo_app(stack: DevStack, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page = open_demo(stack, browser, timezone_id="UTC")
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    steps = Steps(page, prefix="renewal")
    bank = page.locator("#connections .connection").first
    renew_by = bank.locator(".renew-by time")
    renew = page.get_by_role("button", name=f"Renew access to {BANK}")
    rehearse = page.get_by_role("region", name="Rehearse: move time forward")
    history = page.locator("#history")
    try:
        # Given a customer onboarding, on make dev: the rehearsal panel is there, at real time
        sign_in(page, CUSTOMER)
        page.get_by_label("Business name").fill("Canal Side Bakery")
        page.get_by_role("radio", name="Business onboarding").check()
        page.get_by_role("button", name="Create company").click()
        expect(page.get_by_role("heading", name="Canal Side Bakery", level=1)).to_be_visible()
        expect(rehearse).to_be_visible()
        expect(rehearse).to_contain_text("(real time)")
        company_id = page.locator("#company").get_attribute("data-company-id")
        assert company_id

        # When she connects her bank
        banking = page.locator("#integrations section", has=page.get_by_role("heading", name="Bank accounts"))
        banking.get_by_role("button", name=BANK).click()
        authorize_on_codat(page, steps, BANK, "connect")

        # Then the connection says by when to renew it: the API's renewBy, as a plain date (and on its tile)
        expect(page.locator("#journeys .journey").first.locator(".badge")).to_have_text(
            "Complete", timeout=WEBHOOK_WAIT_MS
        )
        expect(bank.locator(".badge")).to_have_text("Connected")
        expect(renew_by).to_be_visible()
        first = bank_connection(stack, company_id)
        assert first["status"] == "Linked"
        expect(renew_by).to_have_attribute("datetime", first["renewBy"])
        expect(bank.locator(".renew-by")).to_have_text(
            re.compile(rf"^Renew by {readable_day(first['renewBy']).pattern}\.$")
        )
        expect(banking.locator(".tile.connected", has_text=BANK)).to_contain_text(readable_day(first["renewBy"]))
        # and renewal is not open yet: no Renew button
        expect(renew).to_have_count(0)
        steps.shot("linked")

        # When she moves the stack's time on 70 days, from the panel
        for button, ahead in [
            ("+30 days", "30 days"),
            ("+30 days", "60 days"),
            ("+7 days", "67 days"),
            ("+1 day", "68 days"),
            ("+1 day", "69 days"),
            ("+1 day", "70 days"),
        ]:
            rehearse.get_by_role("button", name=button).click()
            expect(rehearse).to_contain_text(f"({ahead} ahead of real time)")
            settled(page)

        # Then the renewal window is open (14 days before renewBy, 13 days away): the page offers to renew
        expect(renew).to_be_visible()
        expect(bank.locator(".renew-by")).to_contain_text("Your consent runs out soon")
        steps.shot("time-moved")

        # When the reminders are sent, with the history open
        page.get_by_role("button", name="Show history").click()
        expect(history).to_be_visible()
        rehearse.get_by_role("button", name="Send reminders now").click()
        expect(rehearse.get_by_role("status")).to_have_text("Reminders run: 1 sent.")
        settled(page)

        # Then the history shows the reminder, with its date and lead time
        reminder = history.locator("li", has_text="Reminder: renew by")
        expect(reminder).to_have_count(1)
        expect(reminder.locator(".event")).to_have_text(
            re.compile(rf"^Reminder: renew by {readable_day(first['renewBy']).pattern} \(14 days left\)$")
        )
        expect(reminder).to_contain_text("by consent-clock")
        steps.shot("reminder")

        # When the API refuses a renewal (a deployment whose window opens later): its detail is what she reads
        detail = "Connection x to this platform is already Linked. Its renewal opens at 2030-01-01T00:00:00Z."

        def refuse(route: Any) -> None:
            if route.request.method != "POST":
                route.continue_()
                return
            problem = {"type": "about:blank", "title": "Conflict", "status": 409, "code": "connection_already_linked"}
            body = json.dumps({**problem, "detail": detail})
            route.fulfill(status=409, content_type="application/problem+json", body=body)

        page.route("**/companies/*/connections", refuse)
        renew.click()
        alert = page.get_by_role("alert").filter(has_text="cannot be renewed yet")
        expect(alert).to_contain_text(detail)
        expect(alert).to_be_focused()
        settled(page)
        page.unroute("**/companies/*/connections")
        steps.shot("renew-refused")

        # When she renews: a fresh link for the same connection, opened as when connecting
        renew.click()
        expect(page.get_by_role("link", name=f"Authorize {BANK} at Codat")).to_be_focused()
        expect(bank.locator(".badge")).to_have_text("Connected")  # it stays Linked meanwhile
        steps.shot("renew-link")
        authorize_on_codat(page, steps, BANK, "renew")

        # Then the connection's renewBy moves on about 90 days, and the page shows the later date
        expect(renew_by).not_to_have_attribute("datetime", first["renewBy"], timeout=WEBHOOK_WAIT_MS)
        second = bank_connection(stack, company_id)
        assert instant(second["renewBy"]) - instant(first["renewBy"]) > timedelta(days=69), (first, second)
        expect(renew_by).to_have_attribute("datetime", second["renewBy"])
        expect(bank.locator(".renew-by")).to_contain_text(readable_day(second["renewBy"]))
        expect(renew).to_have_count(0)  # the new period's window is months away

        # And the history tells the renewal: started by her, then confirmed, with when access now lasts until
        page.get_by_role("button", name="Refresh history").click()
        renewed = history.locator("li", has_text="You renewed access")
        expect(renewed.locator(".event")).to_have_text(
            re.compile(rf"^You renewed access \(until {readable_day(second['consentExpiresAt']).pattern}\)$")
        )
        started = history.locator("li", has_text="Renewal started")
        expect(started).to_have_count(1)
        expect(started).to_contain_text("by you")
        expect(started).not_to_contain_text("her consent")  # the API's detail is for developers
        labels = history.locator(".event").all_inner_texts()
        assert labels.index("Renewal started") < next(i for i, x in enumerate(labels) if x.startswith("You renewed")), (
            labels
        )
        steps.shot("renewed")
        assert page_errors == []
    finally:
        context.close()


def test_without_make_dev_s_clock_there_is_no_rehearsal_panel(stack: DevStack, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page = open_demo(stack, browser)
    steps = Steps(page, prefix="renewal-deployed")
    asked: list[str] = []

    def absent(route: Any) -> None:  # as a deployed API answers a path it does not have
        asked.append(route.request.url)
        route.fulfill(status=404, content_type="application/json", body='{"message":"Not Found"}')

    try:
        # Given an API without /_dev/ (a deployed one)
        page.route("**/_dev/**", absent)
        page.reload()

        # When a customer opens her company
        sign_in(page, "customer-deployed")
        page.get_by_label("Business name").fill("Harbour Lights Ltd")
        page.get_by_role("button", name="Create company").click()
        expect(page.get_by_role("heading", name="Harbour Lights Ltd", level=1)).to_be_visible()
        with page.expect_request(re.compile(r"/companies/[^/]+$")):  # a poll, after the page asked once
            pass

        # Then no rehearsal panel, and the page asked only once (its own time from then on)
        expect(page.get_by_role("region", name="Rehearse: move time forward")).to_have_count(0)
        expect(page.locator("#rehearse")).to_be_hidden()
        assert len(asked) == 1, asked
        steps.shot("no-rehearsal")
    finally:
        context.close()
