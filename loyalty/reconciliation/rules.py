"""What counts as a mismatch, given the ledger's facts and the outside world's (Stripe,
Temporal). Pure functions over plain facts, so every rule is tested without a database.

Checkout: the capture posting carries the discount (currency_amount) and the PaymentIntent id;
the hold posting carries the order amount. A captured checkout was charged exactly the order
minus the discount, on a PaymentIntent that succeeded (none at all when the points covered the
whole order); a released one has no PaymentIntent that succeeded. An open checkout hold has a
running saga. A purchase whose points were burned and not refunded has its voucher, and a
voucher's purchase burned its points and kept them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loyalty.reconciliation.contracts import FindingKind


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    # Unique per run and kind: the row a retried batch finds again and records once.
    subject: str
    details: dict[str, Any]
    booking_id: str | None = None
    hold_id: str | None = None
    payment_intent_id: str | None = None
    purchase_id: str | None = None


@dataclass(frozen=True)
class SettledCheckout:
    """A checkout hold's resolution posting, with what the hold posting recorded."""

    tx_id: int
    captured: bool  # False: released
    hold_id: str
    booking_id: str
    payment_intent_id: str | None
    order_amount: int
    discount_minor: int | None  # the capture's currency_amount; None for a release
    currency: str | None


@dataclass(frozen=True)
class IntentFacts:
    """A PaymentIntent as Stripe reports it; `missing` when Stripe does not know the id."""

    payment_intent_id: str
    status: str | None = None
    amount: int | None = None
    amount_received: int | None = None
    currency: str | None = None
    missing: bool = False


@dataclass(frozen=True)
class OpenHold:
    hold_id: str
    booking_id: str
    workflow_id: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class PurchaseFacts:
    purchase_id: str
    status: str
    burned: bool  # burn_tx_id set
    refunded: bool  # refund_tx_id set
    has_voucher: bool
    settled: bool  # last changed before the grace: no step of it is still in flight
    voucher_id: str | None = None


def expected_charge(checkout: SettledCheckout) -> int:
    """What Stripe should have charged for a captured checkout: the order minus the discount."""
    return checkout.order_amount - (checkout.discount_minor or 0)


def _charged(intent: IntentFacts) -> int | None:
    # Stripe's amount_received is what was actually charged; localstripe may leave it out.
    if intent.status == "succeeded" and intent.amount_received is not None:
        return intent.amount_received
    return intent.amount


def payment_findings(checkout: SettledCheckout, intent: IntentFacts | None) -> list[Finding]:
    """The mismatches between a settled checkout and its PaymentIntent (None: the checkout
    names none, or it was not looked up)."""
    ids: dict[str, Any] = {
        "booking_id": checkout.booking_id,
        "hold_id": checkout.hold_id,
        "payment_intent_id": checkout.payment_intent_id,
    }
    subject = checkout.hold_id
    if not checkout.captured:
        if intent is not None and not intent.missing and intent.status == "succeeded":
            details: dict[str, Any] = {
                "expected": {"status": "not succeeded"},
                "actual": _intent(intent),
            }
            return [Finding("payment_succeeded_not_captured", subject, details, **ids)]
        return []
    expected = expected_charge(checkout)
    if checkout.payment_intent_id is None or intent is None or intent.missing:
        if expected == 0 and checkout.payment_intent_id is None:
            return []  # the points paid for the whole order: nothing to charge
        details = {
            "expected": {"amount": expected, "currency": _lower(checkout.currency)},
            "actual": None if intent is None else {"missing": True},
        }
        return [Finding("payment_intent_missing", subject, details, **ids)]
    found: list[Finding] = []
    if intent.status != "succeeded":
        details = {"expected": {"status": "succeeded"}, "actual": _intent(intent)}
        found.append(Finding("payment_not_succeeded", subject, details, **ids))
    charged = _charged(intent)
    currency = _lower(checkout.currency)
    if charged != expected or (currency is not None and _lower(intent.currency) != currency):
        details = {
            "expected": {
                "amount": expected,
                "currency": currency,
                "order_amount": checkout.order_amount,
                "discount": checkout.discount_minor,
            },
            "actual": _intent(intent),
        }
        found.append(Finding("payment_amount_mismatch", subject, details, **ids))
    return found


def hold_finding(hold: OpenHold, saga_running: bool) -> Finding | None:
    """An open checkout hold whose saga does not run: nothing will capture or release it."""
    if saga_running:
        return None
    return Finding(
        "hold_without_saga",
        hold.hold_id,
        {
            "expected": {"saga": hold.workflow_id, "status": "running"},
            "actual": {"saga": "not running"},
            "hold_created_at": hold.created_at.isoformat(),
            "hold_expires_at": hold.expires_at.isoformat(),
        },
        booking_id=hold.booking_id,
        hold_id=hold.hold_id,
    )


def voucher_findings(purchase: PurchaseFacts) -> list[Finding]:
    """A purchase's points and its voucher disagree. A purchase still in flight (changed within
    the grace) is left alone: its code may be on its way, its refund too."""
    if not purchase.settled:
        return []
    kept_points = purchase.burned and not purchase.refunded
    state = {
        "status": purchase.status,
        "burned": purchase.burned,
        "refunded": purchase.refunded,
        "voucher_id": purchase.voucher_id,
    }
    if kept_points and purchase.status in ("paid", "completed") and not purchase.has_voucher:
        details = {"expected": {"voucher": "issued"}, "actual": state}
        return [
            Finding(
                "voucher_without_code",
                purchase.purchase_id,
                details,
                purchase_id=purchase.purchase_id,
            )
        ]
    if purchase.has_voucher and not kept_points:
        details = {"expected": {"burned": True, "refunded": False}, "actual": state}
        return [
            Finding(
                "voucher_code_without_burn",
                purchase.purchase_id,
                details,
                purchase_id=purchase.purchase_id,
            )
        ]
    return []


def count(findings: list[Finding]) -> dict[str, int]:
    """Findings per kind."""
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    return counts


def _lower(currency: str | None) -> str | None:
    return currency.lower() if currency else None


def _intent(intent: IntentFacts) -> dict[str, Any]:
    return {
        "status": intent.status,
        "amount": intent.amount,
        "amount_received": intent.amount_received,
        "currency": intent.currency,
    }
