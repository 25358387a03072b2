"""The fingerprint of a request, stored beside its idempotency key: a retry under the same key
with the same request is a replay, with another request a conflict."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def request_hash(request: Mapping[str, Any]) -> str:
    """SHA-256 of the request as canonical JSON (sorted keys, no spaces, str() for the rest).
    Stored hashes depend on this exact form: changing it turns every retry into a conflict."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
