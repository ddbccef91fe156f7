"""Data readiness in the demo bank app (`/demo` on `make dev`), in a real, headless Chromium: a loan application
says in plain words whether the data the bank reads is ready — not ready while a data type was never read (which
ones), ready once the simulator's first reads completed (until when), out of date once the stack's time moved past
that. Screenshots in `.artifacts/screenshots/data-readiness-*.png`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_consent_renewal import instant, readable_day, settled
from test_demo import WEBHOOK_WAIT_MS, Steps, authorize_on_codat, open_demo, sign_in

from consent_dev.devserver import DevStack

pytestmark = pytest.mark.browser

CUSTOMER = "customer-data-readiness"
BANK = "Codat Banking Sandbox"
ACCOUNTING = "Codat Sandbox"


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    # Its own stack: the test moves its clock, which never goes back. environ={}: the simulator.
    with DevStack(port=0, codat_port=0, environ={}) as running:
        yield running


def journey_data(stack: DevStack, company_id: str) -> dict[str, Any]:
    """The loan application's `data` as the API gives it."""
    answer = httpx.get(
        f"{stack.api_url}/companies/{company_id}",
        headers={"Authorization": f"Bearer {stack.token(CUSTOMER)}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    [journey] = answer.json()["journeys"]
    return dict(journey["data"])


def data_entries(stack: DevStack, company_id: str, entry_type: str) -> list[dict[str, Any]]:
    """The company's history entries of one type, as the API gives them."""
    answer = httpx.get(
        f"{stack.api_url}/companies/{company_id}/events",
        params={"limit": "100"},
        headers={"Authorization": f"Bearer {stack.token(CUSTOMER)}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return [entry for entry in answer.json()["items"] if entry["type"] == entry_type]


def test_a_loan_application_says_whether_its_data_is_ready_in_the_demo_app(stack: DevStack, browser: Any) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page = open_demo(stack, browser, timezone_id="UTC")
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    steps = Steps(page, prefix="data-readiness")
    journey = page.locator("#journeys .journey").first
    data_line = journey.locator(".data-state .data-line")
    rehearse = page.get_by_role("region", name="Rehearse: move time forward")
    try:
        # Given a customer applying for a loan: nothing read yet, every type the bank needs is awaited
        sign_in(page, CUSTOMER)
        page.get_by_label("Business name").fill("Mill Lane Joinery")
        page.get_by_role("radio", name="Loan application").check()
        page.get_by_role("button", name="Create company").click()
        expect(page.get_by_role("heading", name="Mill Lane Joinery", level=1)).to_be_visible()
        expect(data_line).to_have_text(
            "Your data: not ready yet — waiting for Balance sheet, Profit and loss, Bank accounts, Bank transactions"
        )
        expect(data_line.locator("time")).to_have_count(0)  # never read: no date
        company_id = page.locator("#company").get_attribute("data-company-id")
        assert company_id

        # When she connects her bank and authorizes it on Codat's page
        banking = page.locator("#integrations section", has=page.get_by_role("heading", name="Bank accounts"))
        banking.get_by_role("button", name=BANK).click()
        authorize_on_codat(page, steps, BANK, "bank")

        # Then, the bank's first read done, the page still waits for the accounting data, by name
        expect(data_line).to_have_text(
            "Your data: not ready yet — waiting for Balance sheet, Profit and loss", timeout=WEBHOOK_WAIT_MS
        )
        assert journey_data(stack, company_id)["status"] == "stale"
        steps.shot("not-ready")

        # When she connects her accounting software and authorizes it
        accounting = page.locator("#integrations section", has=page.get_by_role("heading", name="Accounting software"))
        accounting.get_by_role("button", name=ACCOUNTING).click()
        authorize_on_codat(page, steps, ACCOUNTING, "accounting")

        # Then her data is ready for review, fresh until the API's freshUntil (its own date, not a guess)
        expect(data_line).to_contain_text("Your data: ready for review", timeout=WEBHOOK_WAIT_MS)
        ready = journey_data(stack, company_id)
        assert ready["status"] == "ready", ready
        expect(data_line.locator("time")).to_have_attribute("datetime", ready["freshUntil"])
        expect(data_line).to_have_text(
            re.compile(rf"^Your data: ready for review \(fresh until {readable_day(ready['freshUntil']).pattern}\)$")
        )
        expect(journey.locator(".advice")).to_have_text("Everything the bank needs is connected.")
        steps.shot("ready")

        # When she moves the stack's time on 30 days, from the panel
        rehearse.get_by_role("button", name="+30 days").click()
        expect(rehearse).to_contain_text("(30 days ahead of real time)")
        settled(page)

        # Then her data is out of date: the oldest read's date, and the rule it broke
        expect(data_line).to_contain_text("Your data: out of date")
        stale = journey_data(stack, company_id)
        assert stale["status"] == "stale", stale
        oldest = min((t["lastReadAt"] for t in stale["types"]), key=lambda at: at.replace("Z", "+00:00"))
        expect(data_line.locator("time")).to_have_attribute("datetime", oldest)
        expect(data_line).to_have_text(
            re.compile(rf"^Your data: out of date — last read {readable_day(oldest).pattern}$")
        )
        expect(journey.locator(".data-state")).to_contain_text("The bank needs it read within the last 30 days.")
        steps.shot("out-of-date")

        # When the lifecycle runs (the panel's button runs the scheduled function), with the history open
        page.get_by_role("button", name="Show history").click()
        history = page.locator("#history")
        expect(history).to_be_visible()
        rehearse.get_by_role("button", name="Send reminders now").click()
        expect(rehearse.get_by_role("status")).to_have_text("Reminders run: 0 sent.")
        settled(page)

        # Then her history tells both transitions in plain words: ready until when, then out of date as time passed
        became_ready = history.locator("li", has_text="data ready for review")
        expect(became_ready).to_have_count(1)
        until = readable_day(ready["freshUntil"]).pattern
        expect(became_ready.locator(".event")).to_have_text(
            re.compile(rf"^Loan application: data ready for review \(fresh until {until}\)$")
        )
        expect(became_ready.locator(".event time")).to_have_attribute("datetime", ready["freshUntil"])
        expect(became_ready).to_contain_text("by codat")
        # (the run announced it when it happened, at freshUntil, naming the types read first: the bank's)
        [entry] = data_entries(stack, company_id, "journey.data_stale")
        assert (instant(entry["at"]), entry["actor"]) == (instant(ready["freshUntil"]), "consent-clock"), entry
        assert entry["staleTypes"] == ["banking-accounts", "banking-transactions"], entry
        became_stale = history.locator("li", has_text="data out of date")
        expect(became_stale).to_have_count(1)
        expect(became_stale.locator(".event")).to_have_text(
            "Loan application: data out of date — Bank accounts, Bank transactions last read more than 30 days ago"
        )
        expect(became_stale).to_contain_text("by consent-clock")
        expect(became_stale.locator("time").first).to_have_attribute("datetime", entry["at"])
        labels = history.locator(".event").all_inner_texts()
        assert not [label for label in labels if label.startswith("journey.")], labels  # no raw entry types
        steps.shot("history")
        assert page_errors == []
    finally:
        context.close()
