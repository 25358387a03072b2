"""The JSON Schema of the intake's messages (the body of POST /booking-events), kept in
docs/events/in/ for producers: `python -m streams.schemas` writes it again after a change to
loyalty.earning.events (tests/streams/test_schemas.py says when)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loyalty.core.settings import PROJECT_ROOT
from loyalty.earning.events import BookingEventIn

INTAKE_SCHEMA = Path("docs/events/in/booking-event.schema.json")


def intake_schema() -> dict[str, Any]:
    schema = BookingEventIn.model_json_schema()
    schema.pop("title", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://loyalty-wallet.example/events/in/booking-event.schema.json",
        "title": "Booking event: a message of booking.events and payment.events, keyed by "
        "booking id (the body of POST /booking-events)",
        **schema,
    }


if __name__ == "__main__":
    path = PROJECT_ROOT / INTAKE_SCHEMA
    path.write_text(json.dumps(intake_schema(), indent=2) + "\n")
    print(f"wrote {path}")
