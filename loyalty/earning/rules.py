"""Earn rules: base rate per tier, campaigns, and the breakdown that explains an earn.

Plain integer functions, no I/O, safe to import from workflows. Rules:

- Points are earned on the money actually paid (the part of the order paid with points earns
  nothing). The caller passes that amount in minor units.
- Base: `amount_paid * tier_multiplier_pct // (currency_per_point * 100)`: with the defaults
  (1 point per 1,000 VND) Bronze at 100 % earns 149 points on 149,999 VND, Silver at 125 % 187.
  The breakdown shows this as a `base` line (the 100 % part) and a `tier` line (the rest).
- A multiplier campaign adds `amount_paid * (multiplier_pct - 100) // (currency_per_point * 100)`
  on top (a 200 % campaign doubles the base points; it does not multiply the tier bonus).
  A bonus campaign adds a fixed number of points. Campaigns stack additively.
- A campaign applies when `starts_at <= paid_at < ends_at` and, if it names product types or
  categories, the booking matches one of them. Its cap limits what that campaign adds to one
  booking.
- Every step rounds down, separately, so the total is never more than the exact value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

PERCENT = 100


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    name: str
    starts_at: datetime
    ends_at: datetime
    kind: Literal["multiplier", "bonus"]
    multiplier_pct: int = PERCENT  # for kind == "multiplier": 200 means the base counts twice
    bonus_points: int = 0  # for kind == "bonus"
    product_types: frozenset[str] = field(default_factory=frozenset)  # empty: any
    categories: frozenset[str] = field(default_factory=frozenset)  # empty: any
    cap_points_per_booking: int | None = None
    validity_months: int | None = None  # how long the points of its earns last; None: default

    def __post_init__(self) -> None:
        if self.ends_at <= self.starts_at:
            raise ValueError("a campaign must end after it starts")
        if self.kind == "multiplier" and self.multiplier_pct <= PERCENT:
            raise ValueError("a multiplier campaign needs multiplier_pct above 100")
        if self.kind == "bonus" and self.bonus_points <= 0:
            raise ValueError("a bonus campaign needs positive bonus_points")
        if self.cap_points_per_booking is not None and self.cap_points_per_booking < 0:
            raise ValueError("cap_points_per_booking must not be negative")

    def applies_to(self, booking: BookingFacts) -> bool:
        if not self.starts_at <= booking.paid_at < self.ends_at:
            return False
        if self.product_types and booking.product_type not in self.product_types:
            return False
        return not (self.categories and booking.category not in self.categories)


@dataclass(frozen=True)
class BookingFacts:
    amount_paid: int  # money actually paid, minor units; never the part paid with points
    paid_at: datetime
    product_type: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class EarnLine:
    rule: str  # "base", "tier:<code>", "campaign:<id>"
    points: int
    detail: str


@dataclass(frozen=True)
class EarnBreakdown:
    lines: tuple[EarnLine, ...]

    @property
    def total(self) -> int:
        return sum(line.points for line in self.lines)

    def as_metadata(self) -> dict[str, object]:
        return {
            "rules": [
                {"rule": line.rule, "points": line.points, "detail": line.detail}
                for line in self.lines
            ],
            "total": self.total,
        }


def _check_int(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def scaled_points(amount_paid: int, pct: int, currency_per_point: int) -> int:
    """`amount_paid * pct% / currency_per_point`, rounded down."""
    return amount_paid * pct // (currency_per_point * PERCENT)


def compute_earn(
    booking: BookingFacts,
    *,
    currency_per_point: int,
    tier_code: str,
    tier_multiplier_pct: int,
    campaigns: Iterable[Campaign] = (),
) -> EarnBreakdown:
    """The points a paid booking earns, line by line. Lines with no points are left out (a
    tier multiplier below 100 % never takes points off the base)."""
    _check_int("amount_paid", booking.amount_paid, 0)
    _check_int("currency_per_point", currency_per_point, 1)
    _check_int("tier_multiplier_pct", tier_multiplier_pct, 1)
    amount = booking.amount_paid
    base = scaled_points(amount, PERCENT, currency_per_point)
    with_tier = scaled_points(amount, tier_multiplier_pct, currency_per_point)
    lines = [
        EarnLine("base", base, f"{amount} paid at 1 point per {currency_per_point}"),
        EarnLine(f"tier:{tier_code}", with_tier - base, f"tier {tier_multiplier_pct}%"),
    ]
    for campaign in sorted(campaigns, key=lambda c: c.campaign_id):
        if not campaign.applies_to(booking):
            continue
        if campaign.kind == "multiplier":
            extra = scaled_points(amount, campaign.multiplier_pct - PERCENT, currency_per_point)
            detail = f"{campaign.name}: {campaign.multiplier_pct}% of base"
        else:
            extra = campaign.bonus_points
            detail = f"{campaign.name}: bonus"
        if campaign.cap_points_per_booking is not None and extra > campaign.cap_points_per_booking:
            extra = campaign.cap_points_per_booking
            detail += f", capped at {campaign.cap_points_per_booking}"
        lines.append(EarnLine(f"campaign:{campaign.campaign_id}", extra, detail))
    return EarnBreakdown(tuple(line for line in lines if line.points > 0))


def prorata(points: int, part: int, whole: int) -> int:
    """Points attributable to `part` of `whole` (e.g. a partial refund), rounded down.

    Rounding down favours the customer on clawbacks; repeated partial refunds must be computed
    on the cumulative refunded amount (see `clawback_due`) so rounding never adds up."""
    _check_int("points", points, 0)
    _check_int("whole", whole, 1)
    _check_int("part", part, 0)
    if part > whole:
        raise ValueError("part must not exceed whole")
    return points * part // whole


def clawback_due(earned: int, paid: int, refunded_total: int, already_clawed: int) -> int:
    """Points to claw back now, after refunds totalling `refunded_total` of `paid`, given
    `already_clawed` points taken back by earlier refunds. A full refund claws back all."""
    target = earned if refunded_total >= paid else prorata(earned, refunded_total, paid)
    return max(0, target - already_clawed)


def clawback_target(earned: int, paid: int, refunded_total: int, full: bool) -> int:
    """Points that the refunds of a booking so far take off its earn, in total (the caller
    subtracts what it already took). A full refund, or refunds reaching the amount paid, take
    everything; a booking paid with no money (`paid == 0`) only loses points on a full refund."""
    if full or (paid > 0 and refunded_total >= paid):
        return earned
    if paid == 0:
        return 0
    return prorata(earned, refunded_total, paid)


# --- accrual of one paid booking ---------------------------------------------------------------

AccrualStatus = Literal["posted", "pending", "voided"]
CAMPAIGN_ACCOUNT = "issuance:campaign"
BASE_ACCOUNT = "issuance:base"


def earn_key(booking_id: str, payment_id: str | None) -> str:
    """The earn's idempotency key: the payment when known, else the booking. A booking earns
    once, whichever path (HTTP earn or booking events) reports its payment."""
    return f"earn:{payment_id}" if payment_id else f"earn:{booking_id}"


@dataclass(frozen=True)
class AccrualPlan:
    """What a payment earns now that refunds reported so far are known."""

    points: int  # what the payment earns, before refunds
    net: int  # what is posted (or stays pending) after refunds so far
    status: AccrualStatus
    pending_until: datetime | None


def plan_accrual(
    points: int,
    *,
    amount_paid: int,
    refunded: int,
    full_refund: bool,
    pending_until: datetime | None,
    now: datetime,
) -> AccrualPlan:
    """Refunds that arrived before the payment was processed are taken off at once; what is left
    waits until `pending_until` when that is still ahead; all of it refunded voids the earn."""
    net = points - clawback_target(points, amount_paid, refunded, full_refund)
    if net == 0 and points > 0:
        return AccrualPlan(points, 0, "voided", None)
    if net > 0 and pending_until is not None and pending_until > now:
        return AccrualPlan(points, net, "pending", pending_until)
    return AccrualPlan(points, net, "posted", None)


def counter_account_of(trace: Mapping[str, object]) -> str:
    """Where an earn's points are issued from, by its rule trace: a campaign when one added
    points, else the base."""
    return CAMPAIGN_ACCOUNT if trace.get("rule") == "campaign" else BASE_ACCOUNT


def lot_validity(campaigns: Iterable[Campaign], breakdown: EarnBreakdown) -> int | None:
    """How many months the earn's points last (its lot's validity): the longest validity of the
    campaigns that added to it and set one (0, never, is the longest); None (the service's
    default) when none did. An earn is one posting and one lot, so the most generous campaign
    sets it for the whole earn."""
    applied = {line.rule.removeprefix("campaign:") for line in breakdown.lines}
    set_ = [
        c.validity_months
        for c in campaigns
        if c.campaign_id in applied and c.validity_months is not None
    ]
    if not set_:
        return None
    return 0 if 0 in set_ else max(set_)


def validity_of(trace: Mapping[str, object]) -> int | None:
    """The lot validity an earn's rule trace carries (lot_validity), if any."""
    months = trace.get("lot_validity_months")
    return months if isinstance(months, int) else None


def rule_trace(
    breakdown: EarnBreakdown,
    *,
    tier: str,
    earn_multiplier_pct: int,
    currency_per_point: int,
    amount_paid: int,
    lot_validity_months: int | None = None,
) -> dict[str, object]:
    """The earn's explanation, kept in its ledger row's metadata: every rule line with its
    points, the tier and rate it was computed at, and a campaign's validity for its points."""
    validity = {} if lot_validity_months is None else {"lot_validity_months": lot_validity_months}
    return {
        **validity,
        "rule": "campaign"
        if any(line.rule.startswith("campaign:") for line in breakdown.lines)
        else "base",
        "earn_rate_currency_per_point": currency_per_point,
        "tier": tier,
        "earn_multiplier_pct": earn_multiplier_pct,
        "amount_paid": amount_paid,
        **breakdown.as_metadata(),
    }


def debt_repayment(debt: int, earned: int) -> int:
    """Points of a fresh earn that repay what the customer owes after an earlier refund."""
    return max(0, min(debt, earned))
