"""Earn campaigns in the database: admin create / list / update / end, and a campaign row as the
earn rules' own type (loyalty.earning.rules.Campaign; the accrual reads the running ones with
its other facts, loyalty.earning.facts).

Ending a campaign sets its end to now (when it is still running) and records `ended_at`; it
stays listed for history. A campaign applies to a payment made in `[starts_at, ends_at)`.
Functions take the caller's connection and never commit."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.errors import IdempotencyConflict, NotFound, ValidationFailed
from loyalty.core.fields import point_value_text
from loyalty.earning import rules as earning
from loyalty.earning.schemas import CampaignIn, CampaignOut, CampaignPatch, check_shape

_COLUMNS = (
    "campaign_id, name, kind, multiplier_pct, bonus_points, product_types, categories, "
    "cap_points_per_booking, starts_at, ends_at, ended_at, points_validity_months, "
    "point_value_minor, created_by, "
    "created_at, updated_at, "
    "CASE WHEN now() < starts_at THEN 'scheduled' WHEN now() < ends_at THEN 'running' "
    "ELSE 'finished' END AS status"
)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else point_value_text(value)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _out(row: RowMapping) -> CampaignOut:
    data: dict[str, Any] = dict(row)
    if data["kind"] == "multiplier":
        data["bonus_points"] = None
    else:
        data["multiplier_pct"] = None
    return CampaignOut(**data)


def _stored(body: CampaignIn) -> dict[str, Any]:
    return {
        "id": body.campaign_id,
        "name": body.name,
        "kind": body.kind,
        "multiplier_pct": body.multiplier_pct or earning.PERCENT,
        "bonus_points": body.bonus_points or 0,
        "product_types": sorted(set(body.product_types)),
        "categories": sorted(set(body.categories)),
        "cap": body.cap_points_per_booking,
        "starts_at": body.starts_at,
        "ends_at": body.ends_at,
        "point_value": body.point_value_minor,
        "validity": body.points_validity_months,
    }


async def create(
    conn: AsyncConnection, body: CampaignIn, *, actor: str
) -> tuple[CampaignOut, bool]:
    """Create the campaign; repeating the same body answers the stored one (created=False),
    another body under the same id is a conflict."""
    values = _stored(body)
    row = (
        (
            await conn.execute(
                text(
                    "INSERT INTO campaigns (campaign_id, name, kind, multiplier_pct, bonus_points, "
                    "product_types, categories, cap_points_per_booking, starts_at, ends_at, "
                    "point_value_minor, points_validity_months, created_by) VALUES (:id, :name, "
                    ":kind, :multiplier_pct, :bonus_points, :product_types, :categories, :cap, "
                    ":starts_at, :ends_at, :point_value, :validity, :actor) "
                    f"ON CONFLICT (campaign_id) DO NOTHING RETURNING {_COLUMNS}"
                ),
                {**values, "actor": actor},
            )
        )
        .mappings()
        .first()
    )
    if row is not None:
        return _out(row), True
    existing = await get(conn, body.campaign_id)
    same = CampaignIn(
        campaign_id=existing.campaign_id,
        name=existing.name,
        kind=existing.kind,
        multiplier_pct=existing.multiplier_pct,
        bonus_points=existing.bonus_points,
        product_types=existing.product_types,
        categories=existing.categories,
        cap_points_per_booking=existing.cap_points_per_booking,
        starts_at=existing.starts_at,
        ends_at=existing.ends_at,
        point_value_minor=_text(existing.point_value_minor),
        points_validity_months=existing.points_validity_months,
    )
    if _stored(same) != values or existing.ended_at is not None:
        raise IdempotencyConflict(
            f"campaign {body.campaign_id!r} already exists with other settings",
            campaign_id=body.campaign_id,
        )
    return existing, False


async def get(conn: AsyncConnection, campaign_id: str) -> CampaignOut:
    row = (
        (
            await conn.execute(
                text(f"SELECT {_COLUMNS} FROM campaigns WHERE campaign_id = :id"),
                {"id": campaign_id},
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"no campaign {campaign_id!r}", campaign_id=campaign_id)
    return _out(row)


async def list_campaigns(
    conn: AsyncConnection, *, status: Literal["scheduled", "running", "finished"] | None = None
) -> list[CampaignOut]:
    rows = (
        (
            await conn.execute(
                text(f"SELECT {_COLUMNS} FROM campaigns ORDER BY starts_at, campaign_id")
            )
        )
        .mappings()
        .all()
    )
    found = [_out(r) for r in rows]
    return [c for c in found if status is None or c.status == status]


async def update(conn: AsyncConnection, campaign_id: str, patch: CampaignPatch) -> CampaignOut:
    """Change a campaign that has not finished. Earns already posted keep what they got, and
    the value they were booked at (each ledger row holds its own rate)."""
    current = await get(conn, campaign_id)
    if current.status == "finished":
        raise ValidationFailed("a finished campaign cannot change", campaign_id=campaign_id)
    changes = patch.model_dump(exclude_unset=True)
    merged = {**current.model_dump(), **changes}
    try:
        check_shape(merged["kind"], merged["multiplier_pct"], merged["bonus_points"])
    except ValueError as err:
        raise ValidationFailed(str(err), campaign_id=campaign_id) from err
    if merged["ends_at"] <= merged["starts_at"]:
        raise ValidationFailed("ends_at must be after starts_at", campaign_id=campaign_id)
    row = (
        (
            await conn.execute(
                text(
                    "UPDATE campaigns SET name = :name, multiplier_pct = :multiplier_pct, "
                    "bonus_points = :bonus_points, product_types = :product_types, "
                    "categories = :categories, cap_points_per_booking = :cap, "
                    "starts_at = :starts_at, ends_at = :ends_at, "
                    "point_value_minor = :point_value, "
                    "points_validity_months = :validity, updated_at = now() "
                    f"WHERE campaign_id = :id RETURNING {_COLUMNS}"
                ),
                {
                    "id": campaign_id,
                    "name": merged["name"],
                    "multiplier_pct": merged["multiplier_pct"] or earning.PERCENT,
                    "bonus_points": merged["bonus_points"] or 0,
                    "product_types": sorted(set(merged["product_types"])),
                    "categories": sorted(set(merged["categories"])),
                    "cap": merged["cap_points_per_booking"],
                    "starts_at": merged["starts_at"],
                    "ends_at": merged["ends_at"],
                    # model_dump writes a rate as its text
                    "point_value": _decimal(merged["point_value_minor"]),
                    "validity": merged["points_validity_months"],
                },
            )
        )
        .mappings()
        .one()
    )
    return _out(row)


async def end(conn: AsyncConnection, campaign_id: str) -> CampaignOut:
    """Stop the campaign now (a no-op for one already finished). A scheduled campaign that has
    not started is ended by moving its window to start and end now."""
    await get(conn, campaign_id)
    row = (
        (
            await conn.execute(
                text(
                    "UPDATE campaigns SET ended_at = COALESCE(ended_at, now()), "
                    "starts_at = LEAST(starts_at, now()), "
                    "ends_at = GREATEST(LEAST(ends_at, now()), LEAST(starts_at, now()) "
                    "+ interval '1 microsecond'), updated_at = now() "
                    f"WHERE campaign_id = :id RETURNING {_COLUMNS}"
                ),
                {"id": campaign_id},
            )
        )
        .mappings()
        .one()
    )
    return _out(row)


def campaign_of(row: Mapping[Any, Any]) -> earning.Campaign:
    """A campaign row as the earn rules' own type."""
    return earning.Campaign(
        campaign_id=row["campaign_id"],
        name=row["name"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        kind=row["kind"],
        multiplier_pct=row["multiplier_pct"],
        bonus_points=row["bonus_points"],
        product_types=frozenset(row["product_types"]),
        categories=frozenset(row["categories"]),
        cap_points_per_booking=row["cap_points_per_booking"],
        validity_months=row.get("points_validity_months"),
    )
