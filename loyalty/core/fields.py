"""Constrained field types shared by the API's inputs: ids from other systems, currency codes,
tags, free text, instants, and the bounds on points and money. Every string and number an input
takes is bounded, and every value an input accepts can be stored and read back: PostgreSQL's
text holds no NUL, its timestamps start and end where Python's calendar does once shifted to
UTC, and a field an update may leave out is not thereby one that may be set to null."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
)

from loyalty.core.text import NO_NUL

MAX_POINTS = 10**12  # far above any real balance; the ledger's posting functions refuse more
MAX_AMOUNT_MINOR = 10**15  # far above any single payment, far below bigint overflow

# Ids that come from other systems: printable ASCII without spaces, bounded.
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[!-~]+$")]
# Booking ids end up in workflow ids and idempotency keys: keep them plain.
BOOKING_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
BookingId = Annotated[str, StringConstraints(pattern=BOOKING_ID_PATTERN)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# Product types, categories: what campaigns filter on.
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[!-~]+$")]

# Free text a person writes: names, reasons, descriptions. Surrounding blanks are dropped, so a
# blank name is an empty one. The blanks are Unicode's White_Space, which pydantic strips; the
# pattern says in the schema that a name needs something else (and no NUL), spelled out rather
# than `\s`, which means more characters in some regex dialects than in others.
_BLANK = r"\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK = rf"^[^\x00]*[^\x00{_BLANK}][^\x00]*$"
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True, pattern=NOT_BLANK)
]
Reason = Annotated[
    str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True, pattern=NOT_BLANK)
]
Description = Annotated[str, StringConstraints(max_length=4000, pattern=NO_NUL)]


def _in_utc(value: datetime) -> datetime:
    """The instant in UTC; an instant that has no UTC date in the calendar is refused."""
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+14:00 is in year 0 in UTC
        raise ValueError("the instant is outside the years 1 to 9999 in UTC") from exc


_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _written_out(value: Any) -> Any:
    """An instant is ISO 8601 text, as its schema (`format: date-time`) says: pydantic would
    also read a number, or a string of one, as seconds since 1970 (`until=0.5`)."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("an instant is ISO 8601 text with an offset, e.g. 2026-12-01T00:00:00Z")
    return value


# A point in time with its offset, as every instant the API takes, normalised to UTC.
Instant = Annotated[AwareDatetime, BeforeValidator(_written_out), AfterValidator(_in_utc)]


T = TypeVar("T")


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("leave the field out to keep it; it cannot be null")
    return value


def _without_null(schema: dict[str, Any]) -> None:
    """The field's JSON schema without its null alternative, so clients see what is accepted."""
    alternatives = [s for s in schema.pop("anyOf", []) if s.get("type") != "null"]
    if len(alternatives) == 1:
        schema.update(alternatives[0])
    elif alternatives:
        schema["anyOf"] = alternatives
    if schema.get("default", ...) is None:
        del schema["default"]


# A field of a partial update (PATCH) that may be left out but never set to null: None is only
# the "not given" default, never a value a client can send. (For a field whose null means
# something, such as "no cap", declare `T | None` instead.)
Omittable = Annotated[
    T | None, AfterValidator(_not_null), Field(default=None, json_schema_extra=_without_null)
]


# The value of one point in minor units of the currency (a rate of the ledger's book values):
# a decimal written as a JSON string, never a float; positive, below 1,000,000 and with at most
# six decimals (what the database's numeric(12, 6) holds; times the ledger's bound on points it
# fits a bigint). The pattern says all of it, so the schema promises exactly what is taken.
# Below 1: six decimals at most, not all of them zeros (spelled out; no lookahead in schemas).
POINT_VALUE_PATTERN = (
    r"^([1-9][0-9]{0,5}(\.[0-9]{1,6})?|0\.([1-9][0-9]{0,5}|0[1-9][0-9]{0,4}|00[1-9][0-9]{0,3}"
    r"|000[1-9][0-9]{0,2}|0000[1-9][0-9]?|00000[1-9]))$"
)
_POINT_VALUE = re.compile(POINT_VALUE_PATTERN)


def _point_value(value: Any) -> Decimal:
    if not isinstance(value, str) or not _POINT_VALUE.fullmatch(value):
        raise ValueError(
            'a point\'s value is a decimal string such as "1" or "0.5": above 0, below 1000000, '
            "at most 6 decimals"
        )
    return Decimal(value)


def point_value_text(value: Decimal) -> str:
    """A rate as the API writes it: plain decimal text without trailing zeros ("1", "0.5")."""
    return format(value.normalize(), "f")


_POINT_VALUE_SCHEMA = {
    "type": "string",
    "pattern": POINT_VALUE_PATTERN,
    "description": "minor units of the currency per point, as decimal text",
    "examples": ["1", "0.5"],
}
PointValue = Annotated[
    Decimal,
    PlainValidator(_point_value),
    PlainSerializer(point_value_text, return_type=str),
    WithJsonSchema(_POINT_VALUE_SCHEMA),
]
# The same in an answer (read from the database as a Decimal).
PointValueOut = Annotated[
    Decimal,
    PlainSerializer(point_value_text, return_type=str),
    WithJsonSchema({"type": "string", "description": _POINT_VALUE_SCHEMA["description"]}),
]
