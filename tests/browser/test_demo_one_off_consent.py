"""One-off consent and retention in the demo bank app (`/demo` on `make dev`), in a real, headless Chromium: a credit
check says where it is chosen that access ends once the data is read and the data goes 30 days later; once both
first reads are done the lifecycle run ends her consent (the connections show access ended, her one-off consent used,
nothing offered to connect again), and 31 days on the next run deletes the data at Codat, then the company: her
history tells each step in plain words. Screenshots in `.artifacts/screenshots/one-off-*.png`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_consent_renewal import settled
from test_demo import WEBHOOK_WAIT_MS, Steps, authorize_on_codat, open_demo, sign_in

from consent_dev.devserver import DevStack

pytestmark = pytest.mark.browser

CUSTOMER = "customer-credit-check"
BANK = "Codat Banking Sandbox"
ACCOUNTING = "Codat Sandbox"


@pytest.fixture(scope="module")
def stack() -> Iterator[DevStack]:
    # Its own stack: the test moves its clock, which never goes back. environ={}: the simulator.
    with DevStack(port=0, codat_port=0, environ={}) as running:
        yield running


def history(stack: DevStack, company_id: str, entry_type: str) -> list[dict[str, Any]]:
    """The company's history entries of one type, as the API gives them."""
    answer = httpx.get(
        f"{stack.api_url}/companies/{company_id}/events",
        params={"limit": "100"},
        headers={"Authorization": f"Bearer {stack.token(CUSTOMER)}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return [entry for entry in answer.json()["items"] if entry["type"] == entry_type]


def test_a_credit_check_ends_access_once_read_and_its_data_is_deleted_30_days_later_in_the_demo_app(
    stack: DevStack, browser: Any
) -> None:
    from playwright.sync_api import expect  # noqa: PLC0415

    context, page = open_demo(stack, browser, timezone_id="UTC")
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    steps = Steps(page, prefix="one-off")
    journey = page.locator("#journeys .journey").first
    connections = page.locator("#connections .connection")
    rehearse = page.get_by_role("region", name="Rehearse: move time forward")
    nothing_to_connect = page.locator("#nothing-to-connect")
    entries = page.locator("#history li")
    try:
        # Given a customer choosing a credit check: its one-off nature is said where she chooses it
        sign_in(page, CUSTOMER)
        credit_check = page.get_by_role("radio", name="Credit check")
        expect(credit_check).to_have_accessible_description(
            "A one-off check of your books and your bank for a credit decision: access ends once they are read. "
            "You connect: your accounting software and bank. "
            "One-off: access ends once your data is read; it is deleted 30 days later."
        )
        steps.shot("choose")
        page.get_by_label("Business name").fill("Harbour Chandlery")
        credit_check.check()
        page.get_by_role("button", name="Create company").click()
        expect(page.get_by_role("heading", name="Harbour Chandlery", level=1)).to_be_visible()
        expect(journey.locator(".terms")).to_have_text(
            "One-off: access ends once your data is read; it is deleted 30 days later."
        )
        company_id = page.locator("#company").get_attribute("data-company-id")
        assert company_id

        # When she connects her bank and her accounting software, and both first reads complete
        banking = page.locator("#integrations section", has=page.get_by_role("heading", name="Bank accounts"))
        banking.get_by_role("button", name=BANK).click()
        authorize_on_codat(page, steps, BANK, "bank")
        accounting = page.locator("#integrations section", has=page.get_by_role("heading", name="Accounting software"))
        accounting.get_by_role("button", name=ACCOUNTING).click()
        authorize_on_codat(page, steps, ACCOUNTING, "accounting")
        expect(journey.locator(".data-state .data-line")).to_contain_text(
            "Your data: ready for review", timeout=WEBHOOK_WAIT_MS
        )
        expect(journey.locator(".badge")).to_have_text("Complete")
        expect(connections.locator(".badge")).to_have_text(["Connected", "Connected"])
        steps.shot("read")

        # When the lifecycle runs (the panel's button), with her history open
        page.get_by_role("button", name="Show history").click()
        expect(page.locator("#history")).to_be_visible()
        rehearse.get_by_role("button", name="Send reminders now").click()
        expect(rehearse.get_by_role("status")).to_have_text("Reminders run: 0 sent. 2 one-off consents ended.")
        settled(page)

        # Then both connections are Unlinked, and say why: her one-off consent was used, nothing to re-authorize
        expect(connections).to_have_count(2)
        for name in (BANK, ACCOUNTING):
            card = connections.filter(has=page.get_by_role("heading", name=name, exact=True))
            expect(card).to_have_attribute("data-status", "Unlinked")
            expect(card.locator(".badge")).to_have_text("Access ended")
            expect(card.locator(".message")).to_have_text(
                "Your one-off consent was used: the bank read your data for the credit check, and its access to "
                f"{name} ended as you agreed. The data read is deleted 30 days after access ended."
            )
            expect(card.locator(".actions button, .actions a")).to_have_count(0)
        expect(journey.locator(".badge")).to_have_text("Done")
        expect(journey.locator(".advice")).to_have_text(
            "The bank read what it needed, and access ended as you agreed: nothing more to connect."
        )
        expect(journey.locator(".data-state")).to_contain_text("Your data: read, and access has ended")
        expect(journey.locator(".data-state")).to_contain_text("It is deleted at Codat 30 days after access ended.")
        # nothing offered that the next run would undo
        expect(nothing_to_connect).to_have_text(
            "Nothing more to connect: the bank read what it needed, and access ends as you agreed."
        )
        expect(page.locator("#integrations")).to_be_hidden()
        expect(page.get_by_role("button", name=f"Re-authorize {BANK}")).to_have_count(0)
        for name in (BANK, ACCOUNTING):
            fulfilled = entries.filter(has_text=f"Access to {name} ended")
            expect(fulfilled).to_have_count(1)
            expect(fulfilled.locator(".event")).to_have_text(
                f"Access to {name} ended: your one-off consent for the credit check was used"
            )
            expect(fulfilled).to_contain_text("on your behalf, as agreed")
        fulfilled_entries = history(stack, company_id, "consent.fulfilled")
        assert {e["actor"] for e in fulfilled_entries} == {f"customer:{CUSTOMER}"}
        assert len(fulfilled_entries) == 2
        steps.shot("access-ended")

        # When 31 days pass (from the panel) and the lifecycle runs again
        for button, ahead in [("+30 days", "30 days"), ("+1 day", "31 days")]:
            rehearse.get_by_role("button", name=button).click()
            expect(rehearse).to_contain_text(f"({ahead} ahead of real time)")
            settled(page)
        rehearse.get_by_role("button", name="Send reminders now").click()
        expect(rehearse.get_by_role("status")).to_have_text(
            "Reminders run: 0 sent. 2 connections' data deleted, 1 company deleted at Codat."
        )
        settled(page)

        # Then her history says each connection's data was deleted 30 days after access ended, then the company
        for name in (BANK, ACCOUNTING):
            purged = entries.filter(has_text=f"{name}'s data deleted")
            expect(purged).to_have_count(1)
            expect(purged.locator(".event")).to_have_text(f"{name}'s data deleted, 30 days after access ended")
            expect(purged).to_contain_text("by consent-clock")
        erased = entries.filter(has_text="Nothing left")
        expect(erased).to_have_count(1)
        expect(erased.locator(".event")).to_have_text(
            "Nothing left: this company was deleted at Codat; its history stays here"
        )
        assert len(history(stack, company_id, "data.purged")) == 3
        labels = entries.locator(".event").all_inner_texts()
        assert not [label for label in labels if label.startswith(("consent.", "data."))], labels
        # and the page offers nothing the API would refuse: no connection left, nothing to connect
        expect(connections).to_have_count(0)
        expect(page.locator("#no-connections")).to_have_text("No connections left: their data was deleted at Codat.")
        expect(nothing_to_connect).to_contain_text("Nothing left to connect")
        expect(journey.locator(".data-state .data-line")).to_have_text("Your data: deleted at Codat")
        expect(page.get_by_role("button", name="Manage connections at Codat")).to_be_hidden()
        steps.shot("data-deleted")
        assert page_errors == []
    finally:
        context.close()
