"""Constrained field types shared by the API's inputs: ids from other systems, currency codes,
tags, and the bounds on points and money. Every string and number an input takes is bounded."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

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
