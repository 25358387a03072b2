"""The tier ladder as admins edit it: list, create, update, reorder.

Every change is checked against the whole resulting ladder (loyalty.tiers.rules.validate_ladder)
before it is written, under a lock that serialises ladder edits, so two concurrent edits can
never combine into an invalid ladder. Changes apply to the next evaluation (which snapshots the
ladder when it starts) and to real-time upgrades at once. Tiers are not deleted: wallets and
history refer to them by code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.errors import IdempotencyConflict, NotFound, ValidationFailed
from loyalty.tiers.rules import TierStep, validate_ladder
from loyalty.tiers.schemas import TierIn, TierOut, TierPatch

_COLUMNS = (
    "code, name, rank, threshold, basis, earn_multiplier_pct, redemption_cap_pct, "
    "redemption_cap_points, benefits"
)


class TierExists(IdempotencyConflict):
    code = "tier_exists"


async def list_tiers(conn: AsyncConnection) -> list[TierOut]:
    rows = await conn.execute(text(f"SELECT {_COLUMNS} FROM loyalty_tiers ORDER BY rank"))
    return [TierOut.model_validate(dict(r)) for r in rows.mappings()]


async def _locked(conn: AsyncConnection) -> list[TierOut]:
    await conn.execute(text("LOCK TABLE loyalty_tiers IN SHARE ROW EXCLUSIVE MODE"))
    return await list_tiers(conn)


def _check(tiers: Sequence[TierOut | TierIn]) -> None:
    validate_ladder(
        [TierStep(code=t.code, rank=t.rank, threshold=t.threshold, basis=t.basis) for t in tiers]
    )


def _values(tier: TierIn | TierOut) -> dict[str, Any]:
    values = tier.model_dump()
    values["benefits"] = json.dumps(values["benefits"])
    return values


async def create_tier(conn: AsyncConnection, tier: TierIn) -> TierOut:
    current = await _locked(conn)
    if any(t.code == tier.code for t in current):
        raise TierExists(f"tier {tier.code!r} already exists", code=tier.code)
    _check([*current, tier])
    await conn.execute(
        text(
            f"INSERT INTO loyalty_tiers ({_COLUMNS}) VALUES (:code, :name, :rank, :threshold, "
            ":basis, :earn_multiplier_pct, :redemption_cap_pct, :redemption_cap_points, "
            "CAST(:benefits AS jsonb))"
        ),
        _values(tier),
    )
    return TierOut.model_validate(tier.model_dump())


async def update_tier(conn: AsyncConnection, code: str, patch: TierPatch) -> TierOut:
    current = await _locked(conn)
    existing = next((t for t in current if t.code == code), None)
    if existing is None:
        raise NotFound(f"no tier {code!r}", code=code)
    updated = existing.model_copy(update=patch.model_dump(exclude_unset=True))
    _check([updated if t.code == code else t for t in current])
    await conn.execute(
        text(
            "UPDATE loyalty_tiers SET name = :name, rank = :rank, threshold = :threshold, "
            "basis = :basis, earn_multiplier_pct = :earn_multiplier_pct, "
            "redemption_cap_pct = :redemption_cap_pct, "
            "redemption_cap_points = :redemption_cap_points, "
            "benefits = CAST(:benefits AS jsonb), updated_at = now() "
            "WHERE code = :code"
        ),
        _values(updated),
    )
    return updated


async def reorder_tiers(conn: AsyncConnection, codes: Sequence[str]) -> list[TierOut]:
    """Give the tiers ranks 1..n in the order of `codes` (lowest first); every tier once."""
    current = await _locked(conn)
    known = {t.code for t in current}
    if len(set(codes)) != len(codes) or set(codes) != known:
        raise ValidationFailed(
            "list every tier exactly once, lowest first",
            expected=sorted(known),
            got=list(codes),
        )
    rank = {code: i + 1 for i, code in enumerate(codes)}
    reordered = [t.model_copy(update={"rank": rank[t.code]}) for t in current]
    _check(reordered)
    # Two steps: ranks are unique, and a swap would collide half way through one UPDATE.
    await conn.execute(text("UPDATE loyalty_tiers SET rank = -rank"))
    await conn.execute(
        text(
            "UPDATE loyalty_tiers t SET rank = n.rank, updated_at = now() "
            "FROM unnest(CAST(:codes AS text[])) WITH ORDINALITY AS n(code, rank) "
            "WHERE t.code = n.code"
        ),
        {"codes": list(codes)},
    )
    return sorted(reordered, key=lambda t: t.rank)
