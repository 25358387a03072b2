"""Form handling shared by the backoffice pages: the CSRF check, and errors put next to the
field they concern (pydantic's validation errors by field, domain refusals by code)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic import ValidationError

from api.pages.session import CSRF_FIELD, check_csrf
from loyalty.core.errors import LoyaltyError

# The form field a domain refusal is about.
FIELD_OF_CODE = {
    "invalid_tier_ladder": "threshold",
    "insufficient_points": "points",
    "idempotency_conflict": "points",
    "wallet_not_found": "user_id",
}


async def read_form(request: Request) -> dict[str, str]:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    check_csrf(request, fields.pop(CSRF_FIELD, None))
    return fields


def field_errors(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
        field = loc[0] if loc else "form"
        message = str(error["msg"]).removeprefix("Value error, ")
        errors.setdefault(field, message)
    return errors


def refusal_errors(exc: LoyaltyError) -> dict[str, str]:
    return {FIELD_OF_CODE.get(exc.code, "form"): exc.message}


def integer(value: str | None) -> int | str | None:
    """A form's integer: an int when it reads as one, else the text (the model refuses it),
    None when empty."""
    if value is None or not value.strip():
        return None
    try:
        return int(value.strip().replace(",", "").replace("_", ""))
    except ValueError:
        return value


def present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}
