"""Earn and tier arithmetic: plain integer functions, no I/O, safe to import from workflows.

Points are integers and always round down: a customer never earns a fraction of a point, and
the service never issues a point it cannot account for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PERCENT = 100


def _require_int(name: str, value: int, *, minimum: int) -> None:
    # bool is an int subclass; True as an amount is a caller bug, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")


def earn_points(amount_paid: int, *, earn_multiplier_pct: int, currency_per_point: int) -> int:
    """Points earned on `amount_paid` minor units: amount * multiplier% / rate, rounded down.

    With the defaults (1 point per 1,000 VND, Bronze 100 %): 149,999 VND earns 149 points; at
    Silver (125 %) the same payment earns 187.
    """
    _require_int("amount_paid", amount_paid, minimum=0)
    _require_int("earn_multiplier_pct", earn_multiplier_pct, minimum=1)
    _require_int("currency_per_point", currency_per_point, minimum=1)
    return amount_paid * earn_multiplier_pct // (currency_per_point * PERCENT)


@dataclass(frozen=True)
class Tier:
    code: str
    name: str
    rank: int
    threshold: int
    basis: str  # "lifetime" or "trailing_12m": which points count towards the threshold
    earn_multiplier_pct: int


def next_tier(tiers: Sequence[Tier], current_code: str) -> Tier | None:
    """The tier ranked directly above `current_code`, or None at the top."""
    current = next((t for t in tiers if t.code == current_code), None)
    if current is None:
        raise ValueError(f"unknown tier {current_code!r}")
    above = [t for t in tiers if t.rank > current.rank]
    return min(above, key=lambda t: t.rank) if above else None


def points_to_threshold(threshold: int, basis_points: int) -> int:
    """Points still needed to reach `threshold`; 0 once it is reached."""
    _require_int("threshold", threshold, minimum=0)
    if not isinstance(basis_points, int) or isinstance(basis_points, bool):
        raise TypeError("basis_points must be an integer")
    return max(0, threshold - basis_points)
