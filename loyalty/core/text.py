"""What PostgreSQL's text and jsonb can store, as constraints for the API's free-text inputs.

Neither type holds U+0000: a NUL in a reason, a name or a tier's benefits would fail at the
INSERT (a 500). These constraints refuse it at the edge instead, as a 422 naming the field, and
the pattern documents the rule in the OpenAPI schema."""

from __future__ import annotations

NO_NUL = r"^[^\x00]*$"
