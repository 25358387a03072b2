"""Tier rules: plain functions, no I/O, safe to import from workflows.

- A ladder is a list of tiers ordered by rank. The lowest tier has threshold 0 (every wallet
  has a tier); each higher tier needs strictly more points than the one below it, so no two
  tiers overlap. Each tier counts points on its own basis: `lifetime` (`wallets.lifetime_points`)
  or `trailing_12m` (the same count over the trailing window).
- Both bases count the points kept, not the points touched: earn rows plus clawback rows (which
  are negative) minus debt entries (`points_debt_entries`). A refund takes back the tier credit
  of every point it is due at once, from the balance or owed as a debt (a debt counts when it
  is recorded); a later repayment moves points, not tier credit (its clawback row and its
  negative debt entry cancel). So book, earn, refund, repeat climbs nothing. Lifetime points
  never go below zero; the posting functions keep the column (migration 0015).
- A refund never downgrades at once: a wallet it leaves short of its tier is found by the next
  evaluation, which starts the grace below.
- A wallet earns the highest tier whose threshold its points on that tier's basis reach.
- The trailing window of an evaluation at `as_of` is `(as_of - 12 months, as_of]`: an earn
  counts for exactly one calendar year after it was posted (so one posted 366 days ago never
  counts, one posted 364 days ago does). Months are calendar months in UTC.
- Upgrades apply at once. A downgrade waits for the grace period, counted from the first
  evaluation that found the wallet short of its tier; re-qualifying in between cancels it.
  With a grace of zero the downgrade is immediate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict

from loyalty.core.errors import ValidationFailed

Basis = Literal["lifetime", "trailing_12m"]
BASES: tuple[Basis, ...] = ("lifetime", "trailing_12m")
# Ledger rows that count towards either basis: points earned, less points clawed back (a
# refund must not leave the customer the tier its money paid for) ...
QUALIFYING_TYPES = ("earn", "clawback")
# ... less the entries of this table: points a refund could not take, owed (positive), and
# their repayments (negative, cancelling the repayment's clawback row).
DEBT_TABLE = "points_debt_entries"
TRAILING_MONTHS = 12


class InvalidLadder(ValidationFailed):
    code = "invalid_tier_ladder"


class TierStep(BaseModel):
    """What classification needs of a tier (carried in workflow inputs, hence pydantic)."""

    model_config = ConfigDict(frozen=True)

    code: str
    rank: int
    threshold: int
    basis: Basis


@dataclass(frozen=True)
class Ladder:
    """A validated ladder, lowest rank first."""

    steps: tuple[TierStep, ...]

    @classmethod
    def of(cls, steps: Sequence[TierStep]) -> Ladder:
        validate_ladder(steps)
        return cls(tuple(sorted(steps, key=lambda s: s.rank)))

    @classmethod
    def of_rows(cls, rows: Iterable[Mapping[Any, Any]]) -> Ladder:
        """The ladder of `loyalty_tiers` rows (or any rows with code, rank, threshold, basis)."""
        return cls.of(
            [
                TierStep(code=r["code"], rank=r["rank"], threshold=r["threshold"], basis=r["basis"])
                for r in rows
            ]
        )

    @property
    def lowest(self) -> TierStep:
        return self.steps[0]

    def get(self, code: str) -> TierStep | None:
        return next((s for s in self.steps if s.code == code), None)

    def earned(self, *, lifetime: int, trailing: int) -> TierStep:
        """The highest tier these points reach (the lowest tier whatever the points)."""
        best = self.lowest
        for step in self.steps[1:]:
            if basis_points(step.basis, lifetime=lifetime, trailing=trailing) >= step.threshold:
                best = step
        return best

    @property
    def counts_trailing(self) -> bool:
        """Whether any tier counts the trailing window (else its points need not be read)."""
        return any(s.basis == "trailing_12m" for s in self.steps)

    def above(self, code: str) -> TierStep | None:
        """The tier ranked directly above `code`, None at the top (or for an unknown code)."""
        current = self.get(code)
        if current is None:
            return None
        return next((s for s in self.steps if s.rank > current.rank), None)


def basis_points(basis: str, *, lifetime: int, trailing: int) -> int:
    return lifetime if basis == "lifetime" else trailing


def validate_ladder(steps: Sequence[TierStep]) -> None:
    """Reject a ladder that could put a wallet in two tiers, or in none."""
    if not steps:
        raise InvalidLadder("a tier ladder needs at least one tier")
    for field in ("code", "rank"):
        seen: set[object] = set()
        for step in steps:
            value = getattr(step, field)
            if value in seen:
                raise InvalidLadder(f"two tiers share the {field} {value!r}", **{field: value})
            seen.add(value)
    ordered = sorted(steps, key=lambda s: s.rank)
    for step in ordered:
        if step.basis not in BASES:
            raise InvalidLadder(f"tier {step.code!r} has an unknown basis {step.basis!r}")
        if step.threshold < 0:
            raise InvalidLadder(f"tier {step.code!r} has a negative threshold")
    if ordered[0].threshold != 0:
        raise InvalidLadder(
            f"the lowest tier {ordered[0].code!r} must have threshold 0 (every wallet has a tier)",
            tier=ordered[0].code,
            threshold=ordered[0].threshold,
        )
    for lower, upper in pairwise(ordered):
        if upper.threshold == lower.threshold:
            raise InvalidLadder(
                f"tiers {lower.code!r} and {upper.code!r} overlap: both start at "
                f"{upper.threshold} points; each tier needs more points than the one below",
                tiers=[lower.code, upper.code],
                threshold=upper.threshold,
            )
        if upper.threshold < lower.threshold:
            raise InvalidLadder(
                f"thresholds are out of order: {upper.code!r} (rank {upper.rank}) needs "
                f"{upper.threshold} points, fewer than {lower.code!r} (rank {lower.rank}) "
                f"with {lower.threshold}",
                tiers=[lower.code, upper.code],
            )


def trailing_window_start(as_of: datetime) -> datetime:
    """Exclusive start of the trailing window: `as_of` minus 12 calendar months (UTC).

    29 February minus a year is 28 February, as in PostgreSQL's interval arithmetic."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    utc = as_of.astimezone(UTC)
    year, month = divmod(utc.year * 12 + (utc.month - 1) - TRAILING_MONTHS, 12)
    month += 1
    day = min(utc.day, _days_in_month(year, month))
    return utc.replace(year=year, month=month, day=day)


def _days_in_month(year: int, month: int) -> int:
    following = datetime(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def in_trailing_window(created_at: datetime, as_of: datetime) -> bool:
    return trailing_window_start(as_of) < created_at <= as_of


@dataclass(frozen=True)
class Decision:
    tier: str  # the wallet's tier after this evaluation
    downgrade_pending_since: datetime | None  # set while a downgrade waits out the grace
    direction: Literal["upgrade", "downgrade"] | None = None


def decide(
    ladder: Ladder,
    *,
    current: str,
    lifetime: int,
    trailing: int,
    pending_since: datetime | None,
    as_of: datetime,
    grace: timedelta,
) -> Decision:
    """Where one wallet stands after an evaluation at `as_of` (the batch SQL does the same)."""
    now = ladder.get(current)
    if now is None:  # a tier newer than this ladder: leave the wallet alone
        return Decision(current, pending_since)
    earned = ladder.earned(lifetime=lifetime, trailing=trailing)
    if earned.rank > now.rank:
        return Decision(earned.code, None, "upgrade")
    if earned.rank == now.rank:
        return Decision(current, None)
    since = pending_since or as_of
    if downgrade_due_at(since, grace) <= as_of:
        return Decision(earned.code, None, "downgrade")
    return Decision(current, since)


def downgrade_due_at(pending_since: datetime, grace: timedelta) -> datetime:
    """The first evaluation at or after this instant downgrades a wallet still short of its tier."""
    return pending_since + grace


@dataclass(frozen=True)
class RealtimeDecision:
    """What a wallet's tier does at once after an earn (evaluations do the rest)."""

    upgrade_to: str | None  # the higher tier its points reach now, if any
    clear_pending: bool  # its points keep at least its tier: a pending downgrade is cleared


def realtime(ladder: Ladder, tier: str, *, lifetime: int, trailing: int) -> RealtimeDecision:
    """Upgrades apply at once, never downgrades. A tier newer than the ladder is left alone."""
    current = ladder.get(tier)
    if current is None:
        return RealtimeDecision(None, clear_pending=False)
    earned = ladder.earned(lifetime=lifetime, trailing=trailing)
    return RealtimeDecision(
        earned.code if earned.rank > current.rank else None,
        clear_pending=earned.rank >= current.rank,
    )


@dataclass(frozen=True)
class Progress:
    """How far a wallet is from the tier above its own."""

    next_tier: TierStep | None
    basis_points: int  # the wallet's points on the next tier's basis (0 at the top)
    points_to_next: int  # 0 at the top or once reached (the next evaluation moves it up)


def progress(ladder: Ladder, current: str, *, lifetime: int, trailing: int) -> Progress:
    upcoming = ladder.above(current)
    if upcoming is None:
        return Progress(None, 0, 0)
    points = basis_points(upcoming.basis, lifetime=lifetime, trailing=trailing)
    return Progress(upcoming, points, max(0, upcoming.threshold - points))


def notification_key(wallet_id: object, source: str, new_tier: str) -> str:
    """Idempotency key of a tier-change notification: one per wallet, source and tier. The source
    is the evaluation id for an evaluation (whose batch SQL, loyalty.tiers.evaluation, builds
    the same string) and `realtime_source(...)` for a real-time upgrade."""
    return f"tier:{wallet_id}:{source}:{new_tier}"


# A caller's key as a source at most this long keeps a notification key within the outbox's
# 255 characters; a longer one is replaced by its SHA-256.
MAX_SOURCE = 100


def realtime_source(earn_key: str | None, history_id: int) -> str:
    """The source of a real-time upgrade's notification key: the earn's idempotency key (one
    notification however often the earn is replayed), else the tier history row's id."""
    if earn_key is None:
        return f"realtime-{history_id}"
    if len(earn_key) <= MAX_SOURCE:
        return earn_key
    return hashlib.sha256(earn_key.encode()).hexdigest()


def next_evaluation_at(now: datetime, at: str, timezone: str) -> datetime:
    """The next daily evaluation after `now`, at local time `at` ("HH:MM") in `timezone`."""
    zone = ZoneInfo(timezone)
    hour, minute = (int(part) for part in at.split(":"))
    local_now = now.astimezone(zone)
    candidate = datetime.combine(local_now.date(), time(hour, minute), tzinfo=zone)
    if candidate <= local_now:
        candidate = datetime.combine(
            local_now.date() + timedelta(days=1), time(hour, minute), tzinfo=zone
        )
    return candidate.astimezone(UTC)
