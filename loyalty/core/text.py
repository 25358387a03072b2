"""What PostgreSQL's text and jsonb can store, as constraints for the API's free-text inputs.

Neither type holds U+0000: a NUL in a reason, a name or a tier's benefits would fail at the
INSERT (a 500). These constraints refuse it at the edge instead, as a 422 naming the field, and
the pattern documents the rule in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

NO_NUL = r"^[^\x00]*$"


def without_nul(value: Any) -> Any:
    """A JSON value (for a jsonb column) unchanged, or ValueError if any key or string has NUL."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("text must not contain the NUL character (U+0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            without_nul(key)
            without_nul(item)
    elif isinstance(value, list):
        for item in value:
            without_nul(item)
    return value
