"""What counts as a mismatch: the reconciliation's rules over plain facts, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loyalty.reconciliation.rules import (
    IntentFacts,
    OpenHold,
    PurchaseFacts,
    SettledCheckout,
    count,
    expected_charge,
    hold_finding,
    payment_findings,
    voucher_findings,
)

PI = "pi_123"


def captured(
    *, order: int = 100_000, discount: int = 30_000, pi: str | None = PI, currency: str = "VND"
) -> SettledCheckout:
    return SettledCheckout(1, True, "hold-1", "bk-1", pi, order, discount, currency)


def released(pi: str | None = PI) -> SettledCheckout:
    return SettledCheckout(2, False, "hold-2", "bk-2", pi, 100_000, None, None)


def intent(
    status: str = "succeeded",
    amount: int = 70_000,
    currency: str = "vnd",
    received: int | None = None,
) -> IntentFacts:
    return IntentFacts(
        PI, status=status, amount=amount, amount_received=received, currency=currency
    )


def kinds(found: list) -> list[str]:  # type: ignore[type-arg]
    return [f.kind for f in found]


def test_expected_charge_is_the_order_minus_the_discount() -> None:
    assert expected_charge(captured(order=250_000, discount=40_000)) == 210_000


def test_a_captured_checkout_paid_in_full_is_no_finding() -> None:
    assert payment_findings(captured(), intent()) == []
    assert payment_findings(captured(), intent(received=70_000)) == []


def test_a_charge_of_another_amount_is_an_amount_mismatch() -> None:
    [finding] = payment_findings(captured(), intent(amount=65_000))
    assert finding.kind == "payment_amount_mismatch"
    assert finding.subject == "hold-1"
    assert (finding.booking_id, finding.hold_id, finding.payment_intent_id) == (
        "bk-1",
        "hold-1",
        PI,
    )
    assert finding.details["expected"]["amount"] == 70_000
    assert finding.details["actual"]["amount"] == 65_000


def test_the_amount_received_is_what_was_charged() -> None:
    assert kinds(payment_findings(captured(), intent(received=60_000))) == [
        "payment_amount_mismatch"
    ]


def test_another_currency_is_an_amount_mismatch() -> None:
    assert kinds(payment_findings(captured(), intent(currency="usd"))) == [
        "payment_amount_mismatch"
    ]


@pytest.mark.parametrize("status", ["requires_payment_method", "canceled", "processing"])
def test_a_captured_checkout_whose_payment_did_not_succeed(status: str) -> None:
    [finding] = payment_findings(captured(), intent(status=status))
    assert finding.kind == "payment_not_succeeded"
    assert finding.details["actual"]["status"] == status


def test_both_wrong_are_two_findings() -> None:
    found = payment_findings(captured(), intent(status="canceled", amount=1))
    assert kinds(found) == ["payment_not_succeeded", "payment_amount_mismatch"]


def test_points_covering_the_whole_order_need_no_payment_intent() -> None:
    assert payment_findings(captured(order=40_000, discount=40_000, pi=None), None) == []


def test_something_to_pay_and_no_payment_intent_is_missing() -> None:
    [finding] = payment_findings(captured(pi=None), None)
    assert finding.kind == "payment_intent_missing"
    assert finding.details["expected"] == {"amount": 70_000, "currency": "vnd"}


def test_a_payment_intent_stripe_does_not_know_is_missing() -> None:
    found = payment_findings(captured(), IntentFacts(PI, missing=True))
    assert kinds(found) == ["payment_intent_missing"]


def test_a_released_checkout_whose_payment_succeeded() -> None:
    [finding] = payment_findings(released(), intent())
    assert finding.kind == "payment_succeeded_not_captured"
    assert finding.subject == "hold-2"


@pytest.mark.parametrize("status", ["canceled", "requires_payment_method"])
def test_a_released_checkout_whose_payment_was_stopped_is_fine(status: str) -> None:
    assert payment_findings(released(), intent(status=status)) == []


def test_a_released_checkout_without_or_with_an_unknown_payment_intent_is_fine() -> None:
    assert payment_findings(released(pi=None), None) == []
    assert payment_findings(released(), IntentFacts(PI, missing=True)) == []


NOW = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)
HOLD = OpenHold(
    "hold-3", "bk-3", "redemption-bk-3", NOW - timedelta(minutes=10), NOW + timedelta(minutes=5)
)


def test_an_open_hold_needs_a_running_saga() -> None:
    assert hold_finding(HOLD, saga_running=True) is None
    finding = hold_finding(HOLD, saga_running=False)
    assert finding is not None and finding.kind == "hold_without_saga"
    assert (finding.subject, finding.booking_id, finding.hold_id) == ("hold-3", "bk-3", "hold-3")
    assert finding.details["expected"]["saga"] == "redemption-bk-3"


def purchase(
    status: str = "completed",
    *,
    burned: bool = True,
    refunded: bool = False,
    voucher: bool = True,
    settled: bool = True,
) -> PurchaseFacts:
    return PurchaseFacts(
        "p-1", status, burned, refunded, voucher, settled, "v-1" if voucher else None
    )


def test_a_completed_purchase_with_its_voucher_is_fine() -> None:
    assert voucher_findings(purchase()) == []


@pytest.mark.parametrize("status", ["completed", "paid"])
def test_points_burned_and_kept_without_a_voucher(status: str) -> None:
    [finding] = voucher_findings(purchase(status, voucher=False))
    assert (finding.kind, finding.subject, finding.purchase_id) == (
        "voucher_without_code",
        "p-1",
        "p-1",
    )


def test_a_purchase_in_flight_is_left_alone() -> None:
    assert voucher_findings(purchase("paid", voucher=False, settled=False)) == []


def test_an_undone_purchase_without_a_voucher_is_fine() -> None:
    assert voucher_findings(purchase("failed", refunded=True, voucher=False)) == []
    assert voucher_findings(purchase("failed", burned=False, voucher=False)) == []
    assert voucher_findings(purchase("reserved", burned=False, voucher=False)) == []


@pytest.mark.parametrize(
    ("burned", "refunded"), [(False, False), (True, True)], ids=["never_burned", "refunded"]
)
def test_a_voucher_whose_points_were_not_kept(burned: bool, refunded: bool) -> None:
    found = voucher_findings(purchase(burned=burned, refunded=refunded))
    assert kinds(found) == ["voucher_code_without_burn"]


def test_count_per_kind() -> None:
    found = payment_findings(captured(), intent(status="canceled", amount=1))
    found += payment_findings(captured(pi=None), None)
    found += payment_findings(released(), intent())
    assert count(found) == {
        "payment_not_succeeded": 1,
        "payment_amount_mismatch": 1,
        "payment_intent_missing": 1,
        "payment_succeeded_not_captured": 1,
    }
