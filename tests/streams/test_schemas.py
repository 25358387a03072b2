"""The intake message's JSON Schema in docs/events/in/ is the intake's own model's: producers may
rely on it, and a change to the model shows up here until the file is written again
(`python -m streams.schemas`)."""

from __future__ import annotations

import json

from loyalty.core.settings import PROJECT_ROOT
from streams.schemas import INTAKE_SCHEMA, intake_schema


def test_the_intake_schema_in_the_docs_is_the_models() -> None:
    assert json.loads((PROJECT_ROOT / INTAKE_SCHEMA).read_text()) == intake_schema()
