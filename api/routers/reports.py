"""Reports for finance (admin): the points liability as of any moment, as JSON or CSV."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import PlainValidator, TypeAdapter, ValidationError, WithJsonSchema

from api.deps import Admin, AppSettings, Connection
from api.errors import error_responses
from loyalty.core.errors import ValidationFailed
from loyalty.core.fields import Instant
from loyalty.ledger import liability

router = APIRouter(prefix="/reports", tags=["reports"])

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_INSTANT: TypeAdapter[datetime] = TypeAdapter(Instant)


def _instant_or_day(value: Any) -> datetime | date:
    """A date (YYYY-MM-DD) or an instant with its offset, one error either way (a union would
    report each alternative's)."""
    if isinstance(value, str) and _DAY.fullmatch(value):
        return date.fromisoformat(value)  # a ValueError names the bad day
    try:
        return _INSTANT.validate_python(value)
    except ValidationError as exc:
        raise ValueError(
            "as_of is a date (YYYY-MM-DD) or an instant with its offset: "
            + "; ".join(str(error["msg"]) for error in exc.errors())
        ) from None


AsOf = Annotated[
    datetime | date | None,
    PlainValidator(_instant_or_day),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "string", "format": "date"},
            ],
            "examples": ["2026-11-30", "2026-11-30T17:00:00+07:00"],
        }
    ),
    Query(
        description="the moment the figures are of: an instant with its offset, or a date "
        "(YYYY-MM-DD), meaning the close of that day in UTC (the next day's 00:00); not in "
        "the future. Left out: now.",
    ),
]

Format = Annotated[Literal["json", "csv"], Query(description="csv: a file of the same figures")]


def as_of_moment(as_of: datetime | date | None, now: datetime) -> datetime | None:
    """The instant the report is of; a date is its close in UTC. A moment not reached yet
    is refused: its figures would still change."""
    if as_of is None:
        return None
    if isinstance(as_of, datetime):
        moment = as_of
    elif as_of >= now.date():  # its close has not come yet (and 9999-12-31 has none)
        moment = now + timedelta(days=1)
    else:
        moment = datetime.combine(as_of + timedelta(days=1), time(), tzinfo=UTC)
    if moment > now:
        raise ValidationFailed(
            "as_of is in the future: leave it out for the figures of now", as_of=str(as_of)
        )
    return moment


@router.get(
    "/liability",
    response_model=liability.LiabilityReport,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **error_responses(),
    },
)
async def liability_report(
    conn: Connection,
    settings: AppSettings,
    principal: Admin,
    as_of: AsOf = None,
    format: Format = "json",
) -> Any:
    """The points liability as of a moment: by counter account, held, pending, expiring."""
    moment = as_of_moment(as_of, datetime.now(UTC))
    valuation = liability.Valuation(settings.currency, settings.point_value_minor)
    report = await liability.liability_report(conn, valuation, moment)
    if format == "csv":
        name = f"liability-{report.as_of.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}.csv"
        return Response(
            liability.report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return report
