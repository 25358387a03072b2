"""Every table of the database as SQLAlchemy Core metadata. The Alembic migrations create the
schema; this mirrors it as Alembic's autogenerate target (and for queries that want it), and
tests/test_schema_matches_tables.py proves the two agree. Functions, triggers and composite types
live only in the migrations."""

from loyalty.core.tables import earning, events, expiry, ledger, reconciliation, tiers, vouchers
from loyalty.core.tables.base import AUTOGENERATE_OPTIONS, NAMING_CONVENTION, metadata

__all__ = [
    "AUTOGENERATE_OPTIONS",
    "NAMING_CONVENTION",
    "earning",
    "events",
    "expiry",
    "ledger",
    "metadata",
    "reconciliation",
    "tiers",
    "vouchers",
]
