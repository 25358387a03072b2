"""The ledger's own activity: the invariant check, run by InvariantCheckWorkflow."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text
from temporalio import activity

from activities import Dependencies
from loyalty.ledger import stuck_checkouts
from loyalty.ledger.contracts import InvariantCheckInput, InvariantReport, InvariantViolation
from loyalty.ledger.invariants import Violation, check_names, find_violations

_COUNTS = """
    SELECT (SELECT count(*) FROM wallets),
           (SELECT count(*) FROM wallet_transactions),
           (SELECT count(*) FROM holds WHERE status = 'open')"""


class LedgerActivities:
    def __init__(self, deps: Dependencies) -> None:
        self._engine = deps.engine
        self._settings = deps.settings

    @activity.defn(name="check_ledger_invariants")
    async def check_invariants(self, params: InvariantCheckInput) -> InvariantReport:
        limit = params.max_violations_per_check
        grace_seconds = params.hold_expiry_grace_seconds
        if grace_seconds is None:
            grace_seconds = self._settings.hold_expiry_grace_seconds
        grace = timedelta(seconds=grace_seconds) if params.stuck_money else None
        async with self._engine.connect() as conn:
            # One snapshot for every check, so postings in flight cannot show as violations.
            await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            violations = await find_violations(conn, limit=limit, hold_grace=grace)
            wallets, transactions, open_holds = (await conn.execute(text(_COUNTS))).one()
        checks = check_names(stuck_holds=grace is not None)
        held_checkouts = 0
        if grace is not None:
            # Needs Temporal's visibility too: a separate check, on a connection of its own (the
            # snapshot above is older than the list of running checkouts).
            async with self._engine.connect() as conn:
                held_checkouts, stuck = await stuck_checkouts.find_checkouts_on_resolved_holds(
                    activity.client(), conn, grace=grace, limit=limit
                )
            violations += stuck
            checks.append(stuck_checkouts.CHECK)
        for v in violations:
            activity.logger.warning("ledger invariant violated: %s", v)
        return InvariantReport(
            checks=checks,
            wallets=wallets,
            transactions=transactions,
            open_holds=open_holds,
            held_checkouts=held_checkouts,
            violations=[_as_contract(v) for v in violations],
        )


def _as_contract(v: Violation) -> InvariantViolation:
    return InvariantViolation(
        check=v.check, subject=v.subject, actual=str(v.actual), expected=str(v.expected)
    )
