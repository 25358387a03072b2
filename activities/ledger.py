"""The ledger's own activity: the invariant check, run by InvariantCheckWorkflow."""

from __future__ import annotations

from sqlalchemy import text
from temporalio import activity

from activities import Dependencies
from loyalty.ledger.contracts import InvariantCheckInput, InvariantReport, InvariantViolation
from loyalty.ledger.invariants import CHECKS, find_violations

_COUNTS = """
    SELECT (SELECT count(*) FROM wallets),
           (SELECT count(*) FROM wallet_transactions),
           (SELECT count(*) FROM holds WHERE status = 'open')"""


class LedgerActivities:
    def __init__(self, deps: Dependencies) -> None:
        self._engine = deps.engine

    @activity.defn(name="check_ledger_invariants")
    async def check_invariants(self, params: InvariantCheckInput) -> InvariantReport:
        async with self._engine.connect() as conn:
            # One snapshot for every check, so postings in flight cannot show as violations.
            await conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            violations = await find_violations(conn, limit=params.max_violations_per_check)
            wallets, transactions, open_holds = (await conn.execute(text(_COUNTS))).one()
        for v in violations:
            activity.logger.warning("ledger invariant violated: %s", v)
        return InvariantReport(
            checks=list(CHECKS),
            wallets=wallets,
            transactions=transactions,
            open_holds=open_holds,
            violations=[
                InvariantViolation(
                    check=v.check, subject=v.subject, actual=str(v.actual), expected=str(v.expected)
                )
                for v in violations
            ],
        )
