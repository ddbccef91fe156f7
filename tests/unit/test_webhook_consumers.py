"""Codat's webhook consumer for our receiver, checked and made right against the simulator: created when missing,
replaced (new first, then the old deleted) when disabled, short of event types or filtered, left alone when
healthy, consumers of other URLs never touched, and Codat failing part-way leaving what a re-run finishes."""

from __future__ import annotations

from typing import Any

import pytest

from consent.codat.client import CodatClient
from consent.codat.errors import CodatRateLimited, CodatUnavailable
from consent.usecases.webhook_consumers import ConsumerStatus, check, ensure
from consent.usecases.webhooks import HANDLED_EVENT_TYPES
from consent_dev.codat_simulator import CodatSimulator, Fault, WebhookConsumer

pytestmark = pytest.mark.unit

URL = "https://a1b2c3d4e5.execute-api.eu-west-2.amazonaws.com/webhooks/codat"
HANDLED = sorted(HANDLED_EVENT_TYPES)


@pytest.fixture
def others(simulator: CodatSimulator) -> list[WebhookConsumer]:
    """The bank's other consumers, at other URLs (one of them ours but for a trailing slash): never ours to touch."""
    return [
        simulator.add_webhook_consumer("https://crm.bank.example/codat", ["read.completed"], disabled=True),
        simulator.add_webhook_consumer(URL + "/", HANDLED[:2]),
        simulator.add_webhook_consumer("https://old.bank.example/codat", HANDLED),
    ]


def sent(simulator: CodatSimulator) -> list[str | None]:
    return [r.operation for r in simulator.requests]


def ours(simulator: CodatSimulator) -> list[WebhookConsumer]:
    return [c for c in simulator.webhook_consumers if c.url == URL]


def assert_untouched(simulator: CodatSimulator, others: list[WebhookConsumer]) -> None:
    assert [c for c in simulator.webhook_consumers if c.url != URL] == others


def test_a_missing_consumer_is_created_with_exactly_the_event_types_the_receiver_handles(
    codat: CodatClient, simulator: CodatSimulator, others: list[WebhookConsumer]
) -> None:
    # Given no consumer for our URL
    assert check(codat, URL).status is ConsumerStatus.MISSING

    # When it is ensured
    setup = ensure(codat, URL)

    # Then one consumer was created: enabled, unfiltered, for every handled type and no other
    assert setup.done
    assert setup.found is not None
    assert setup.found.missing
    [consumer] = ours(simulator)
    assert setup.created is not None
    assert setup.created.id == consumer.id
    assert (sorted(consumer.event_types), consumer.disabled, consumer.company_tags) == (HANDLED, False, None)
    assert setup.deleted == []
    assert check(codat, URL).status is ConsumerStatus.HEALTHY
    assert_untouched(simulator, others)


@pytest.mark.parametrize(
    ("event_types", "given", "status"),
    [
        (HANDLED, {"disabled": True}, ConsumerStatus.DISABLED),
        (HANDLED[1:], {}, ConsumerStatus.SHORT_OF_EVENT_TYPES),
        ([], {}, ConsumerStatus.SHORT_OF_EVENT_TYPES),  # empty is not taken to mean "every event"
        (HANDLED, {"company_tags": ["region:uk"]}, ConsumerStatus.FILTERED),
    ],
    ids=["disabled", "short-of-a-type", "no-types", "filtered-by-company-tags"],
)
def test_an_unhealthy_consumer_is_replaced_new_first_then_the_old_deleted(
    codat: CodatClient,
    simulator: CodatSimulator,
    others: list[WebhookConsumer],
    event_types: list[str],
    given: dict[str, Any],
    status: ConsumerStatus,
) -> None:
    # Given our URL's consumer is unhealthy
    old = simulator.add_webhook_consumer(URL, event_types, **given)
    assert check(codat, URL).status is status
    start = len(simulator.requests)

    # When it is ensured
    setup = ensure(codat, URL)

    # Then a healthy one was created before the old one was deleted, so deliveries never stopped
    assert setup.done
    assert sent(simulator)[start:] == ["GET /webhooks", "POST /webhooks", "DELETE /webhooks/{webhookId}"]
    [new] = ours(simulator)
    assert new.id != old.id
    assert setup.created is not None
    assert new.id == setup.created.id
    assert sorted(new.event_types) == HANDLED
    assert [c.id for c in setup.deleted] == [old.id]
    assert_untouched(simulator, others)


def test_a_healthy_consumer_is_left_alone_and_a_second_run_sends_no_change(
    codat: CodatClient, simulator: CodatSimulator, others: list[WebhookConsumer]
) -> None:
    # Given a healthy consumer (its types in another order, and one more we do not handle)
    healthy = simulator.add_webhook_consumer(URL, [*reversed(HANDLED), "company.product.added"])
    start = len(simulator.requests)

    # When it is ensured, twice
    first, second = ensure(codat, URL), ensure(codat, URL)

    # Then only the listing was sent: no POST, no DELETE
    assert sent(simulator)[start:] == ["GET /webhooks", "GET /webhooks"]
    assert (first.changed, second.changed) == (False, False)
    assert ours(simulator) == [healthy]
    assert_untouched(simulator, others)


def test_ensuring_twice_creates_once(codat: CodatClient, simulator: CodatSimulator) -> None:
    simulator.add_webhook_consumer(URL, HANDLED, disabled=True)

    first = ensure(codat, URL)
    start = len(simulator.requests)
    second = ensure(codat, URL)

    assert first.changed
    assert not second.changed
    assert sent(simulator)[start:] == ["GET /webhooks"]
    assert len(ours(simulator)) == 1


def test_several_healthy_consumers_are_reported_and_none_deleted(codat: CodatClient, simulator: CodatSimulator) -> None:
    # Any of them may be the one whose signing secret the stack holds: an operator chooses in Codat's Portal.
    both = [simulator.add_webhook_consumer(URL, HANDLED), simulator.add_webhook_consumer(URL, HANDLED)]
    stale = simulator.add_webhook_consumer(URL, HANDLED[:1])

    found = check(codat, URL)
    setup = ensure(codat, URL)

    assert (found.status, found.several, [c.id for c in found.healthy]) == (
        ConsumerStatus.HEALTHY,
        True,
        [c.id for c in both],
    )
    assert setup.created is None
    assert [c.id for c in setup.deleted] == [stale.id]
    assert ours(simulator) == both


def test_the_check_names_what_the_best_consumer_lacks_and_which_are_disabled(
    codat: CodatClient, simulator: CodatSimulator
) -> None:
    disabled = simulator.add_webhook_consumer(URL, HANDLED, disabled=True)
    simulator.add_webhook_consumer(URL, HANDLED[:1])
    simulator.add_webhook_consumer(URL, HANDLED[:-2])

    found = check(codat, URL)

    assert found.status is ConsumerStatus.SHORT_OF_EVENT_TYPES
    assert found.short_of == set(HANDLED[-2:])
    assert found.disabled == (disabled.id,)
    assert found.to_dict() == {
        "url": URL,
        "status": "short_of_event_types",
        "consumers": [c.id for c in ours(simulator)],
        "healthy": [],
        "disabled": [disabled.id],
        "short_of": HANDLED[-2:],
        "several": True,
    }


# -- Codat failing: a clear outcome, nothing half-done that a re-run cannot finish ------------------------------


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(kind="status", status=503, times=None), CodatUnavailable),
        (Fault(kind="status", status=429, retry_after=600, times=None), CodatRateLimited),
    ],
    ids=["5xx", "429"],
)
def test_codat_refusing_the_listing_changes_nothing_and_the_next_run_does_it(
    codat: CodatClient, simulator: CodatSimulator, fault: Fault, error: type[Exception]
) -> None:
    old = simulator.add_webhook_consumer(URL, HANDLED, disabled=True)
    simulator.inject(fault)

    failed = ensure(codat, URL)

    assert isinstance(failed.failure, error)
    assert (failed.found, failed.created, failed.deleted, failed.changed) == (None, None, [], False)
    assert {r.operation for r in simulator.requests} == {"GET /webhooks"}
    assert ours(simulator) == [old]

    simulator.clear_faults()
    again = ensure(codat, URL)
    assert again.done
    assert [c.id for c in again.deleted] == [old.id]
    assert check(codat, URL).is_healthy


def test_codat_refusing_the_new_consumer_deletes_nothing(codat: CodatClient, simulator: CodatSimulator) -> None:
    old = simulator.add_webhook_consumer(URL, HANDLED[1:])
    simulator.inject(Fault(kind="status", status=500, method="POST", path="^/webhooks$", times=None))

    failed = ensure(codat, URL)

    assert isinstance(failed.failure, CodatUnavailable)
    assert (failed.created, failed.deleted) == (None, [])
    assert ours(simulator) == [old]  # the old consumer keeps delivering what it did
    assert simulator.count("DELETE", "/webhooks/{webhookId}") == 0

    simulator.clear_faults()
    again = ensure(codat, URL)
    assert again.created is not None
    assert [c.id for c in again.deleted] == [old.id]


def test_codat_refusing_the_deletion_leaves_the_new_consumer_and_the_next_run_deletes_the_old(
    codat: CodatClient, simulator: CodatSimulator
) -> None:
    old = simulator.add_webhook_consumer(URL, HANDLED, disabled=True)
    simulator.inject(Fault(kind="status", status=503, method="DELETE", times=None))

    failed = ensure(codat, URL)

    # Then the outcome says what was done (created) and what stopped it
    assert isinstance(failed.failure, CodatUnavailable)
    assert failed.created is not None
    assert failed.deleted == []
    assert check(codat, URL).is_healthy  # already: the new consumer delivers

    # When Codat is back and it runs again: no second consumer, the stale one deleted
    simulator.clear_faults()
    start = len(simulator.requests)
    again = ensure(codat, URL)
    assert again.done
    assert again.created is None
    assert [c.id for c in again.deleted] == [old.id]
    assert sent(simulator)[start:] == ["GET /webhooks", "DELETE /webhooks/{webhookId}"]
    assert [c.id for c in ours(simulator)] == [failed.created.id]


def test_a_stale_consumer_deleted_meanwhile_counts_as_deleted(codat: CodatClient, simulator: CodatSimulator) -> None:
    old = simulator.add_webhook_consumer(URL, HANDLED, disabled=True)
    # Someone deletes it in the Portal between our listing and our DELETE
    simulator.inject(Fault(kind="status", status=404, method="DELETE"))

    setup = ensure(codat, URL)

    assert setup.done
    assert [c.id for c in setup.deleted] == [old.id]
