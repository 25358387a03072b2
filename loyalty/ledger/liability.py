"""The points liability: what the wallets hold as of a moment, and where it came from.

Everything is computed from the ledger, so a past moment gives the figures of that moment:
a row counts when its `created_at` (the start of the transaction that posted it; every row,
lot and lot movement of one posting shares it) is at or before `as_of`.

- by counter account (issuance:*, adjustment, redemption, voucher_sales, breakage ...): the
  points each put into wallets (credited) and took out (debited); their net sums to
- outstanding: every posted point, the sum of the wallet balances then (the invariant command
  checks it against the wallets table), of which
- held: reserved by open holds then (the sum of the hold rows' held deltas), and available;
- lots: the available points by when they expire (each lot's points less its movements up to
  `as_of`): overdue (due, not yet expired by the expiry run) and within 30, 90 and 365 days,
  each figure including the shorter ones, and never;
- pending: earned on a paid booking but not posted yet (`booking_accruals` waiting for the end
  of their pending period, EARN_PENDING_SECONDS); not in any balance.

Values: an account's (and so the outstanding total's) is the sum of its rows' book values, each
row valued when it was posted at the rate then in force or its campaign's (migration 0013,
`value_amount`). Held, available, pending and lot figures are points not yet booked to an
account, valued at the base rate (POINT_VALUE_MINOR minor units a point) by `value_of`.
The whole report is one statement, so one snapshot, one round trip (docs/finance.md says how
to read it)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

EXPIRY_WINDOWS_DAYS = (30, 90, 365)  # the windows _REPORT sums (d30, d90, d365)


def value_of(points: int, point_value_minor: int) -> int:
    """What `points` are worth in minor units of the currency: the one place points are
    valued (the base rate, POINT_VALUE_MINOR)."""
    return points * point_value_minor


def kind_of(counter_account: str) -> str:
    """The account's family, by the names the postings use (issuance:base, issuance:campaign,
    issuance:*clawback / debt-repayment, adjustment, redemption, voucher_sales, breakage)."""
    family = counter_account.split(":", 1)[0]
    return family if family in _KINDS else "other"


_KINDS = frozenset({"issuance", "adjustment", "redemption", "voucher_sales", "breakage"})

# `{upto_tx}` and `{upto_lot}` are the cutoff on a table's created_at (TRUE when the report is
# of now: everything the snapshot sees, so the total is exactly the wallets' balances then).
# Lots: a lot's points at the cutoff are what it holds now less what moved in or out of it
# since, so only the lots still holding points and the movements after the cutoff are read,
# not the whole history of movements.
_REPORT = """
WITH asof AS (SELECT COALESCE(CAST(:as_of AS timestamptz), now()) AS t),
ledger AS (
    SELECT counter_account,
           COALESCE(SUM(amount) FILTER (WHERE amount > 0), 0)::bigint AS credited,
           COALESCE(-SUM(amount) FILTER (WHERE amount < 0), 0)::bigint AS debited,
           COALESCE(SUM(held_delta), 0)::bigint AS held,
           -- Each row's book value (migration 0013); hold and release rows value held points,
           -- which move no posted points.
           COALESCE(SUM(value_amount) FILTER (WHERE type NOT IN ('hold', 'release')),
                    0)::bigint AS value
    FROM wallet_transactions WHERE {upto_tx}
    GROUP BY counter_account
), standing AS (
    SELECT expires_at, remaining AS points FROM point_lots WHERE remaining > 0 AND {upto_lot}
    {since}
), lots AS (
    SELECT COALESCE(SUM(s.points), 0)::bigint AS in_lots,
           COALESCE(SUM(s.points) FILTER (WHERE s.expires_at <= a.t), 0)::bigint AS overdue,
           COALESCE(SUM(s.points) FILTER (WHERE s.expires_at <= a.t + interval '30 days'),
                    0)::bigint AS d30,
           COALESCE(SUM(s.points) FILTER (WHERE s.expires_at <= a.t + interval '90 days'),
                    0)::bigint AS d90,
           COALESCE(SUM(s.points) FILTER (WHERE s.expires_at <= a.t + interval '365 days'),
                    0)::bigint AS d365,
           COALESCE(SUM(s.points) FILTER (WHERE s.expires_at IS NULL), 0)::bigint AS never
    FROM standing s, asof a
), pending AS (
    {pending}
)
SELECT a.t AS as_of,
       (SELECT array_agg(counter_account ORDER BY counter_account) FROM ledger) AS accounts,
       (SELECT array_agg(credited ORDER BY counter_account) FROM ledger) AS credited,
       (SELECT array_agg(debited ORDER BY counter_account) FROM ledger) AS debited,
       (SELECT array_agg(value ORDER BY counter_account) FROM ledger) AS booked,
       (SELECT COALESCE(SUM(held), 0)::bigint FROM ledger) AS held,
       l.in_lots, l.overdue, l.d30, l.d90, l.d365, l.never, p.pending
FROM asof a, lots l, pending p"""

# Movements after the cutoff, of lots opened by then, undone (a draw gives its points back).
_SINCE = """
    UNION ALL
    SELECT l.expires_at, -m.points FROM lot_movements m JOIN point_lots l ON l.lot_id = m.lot_id
    WHERE m.created_at > :as_of AND l.created_at <= :as_of"""

# Pending at the cutoff: accruals recorded by then and not posted or voided by then. Today's
# `pending_points` plus what refunds recorded after the cutoff took off it (a refund's
# reduction counts from the refund's record); an accrual posted after the cutoff was pending
# its earn's points. Accruals neither pending now nor changed since the cutoff add nothing.
_PENDING_AS_OF = """
    SELECT COALESCE(SUM(
        CASE WHEN a.status <> 'posted' THEN a.pending_points
             WHEN e.created_at > :as_of THEN e.amount ELSE 0 END
        + COALESCE((SELECT SUM(r.pending_reduced) FROM booking_refunds r
                    WHERE r.booking_id = a.booking_id AND r.created_at > :as_of), 0)
    ), 0)::bigint AS pending
    FROM booking_accruals a LEFT JOIN wallet_transactions e ON e.tx_id = a.earn_tx_id
    WHERE a.created_at <= :as_of AND (a.status = 'pending' OR a.updated_at > :as_of)"""
_PENDING_NOW = """
    SELECT COALESCE(SUM(pending_points), 0)::bigint AS pending
    FROM booking_accruals WHERE status = 'pending'"""


def _statement(bounded: bool) -> TextClause:
    if bounded:
        parts = {
            "upto_tx": "created_at <= :as_of",
            "upto_lot": "created_at <= :as_of",
            "since": _SINCE,
            "pending": _PENDING_AS_OF,
        }
    else:
        parts = {"upto_tx": "TRUE", "upto_lot": "TRUE", "since": "", "pending": _PENDING_NOW}
    return text(_REPORT.format(**parts))


_AS_OF = _statement(bounded=True)
_NOW = _statement(bounded=False)
# The report of now beside the wallets' own sums, in one statement: one snapshot, so postings
# committed meanwhile cannot show as a difference.
_RECONCILE = text(
    f"WITH report AS ({_NOW.text}) SELECT r.*, w.balance AS wallets_balance, "
    "w.held AS wallets_held FROM report r, (SELECT COALESCE(SUM(balance), 0)::bigint AS balance, "
    "COALESCE(SUM(held), 0)::bigint AS held FROM wallets) w"
)


class Figure(BaseModel):
    points: int
    value_minor: int = Field(description="the points' value in minor units of `currency`")


class AccountLine(BaseModel):
    counter_account: str
    kind: str = Field(
        description="issuance, adjustment, redemption, voucher_sales, breakage or other"
    )
    credited_points: int = Field(description="points this account put into wallets")
    debited_points: int = Field(description="points it took out of wallets")
    points: int = Field(description="credited - debited: its share of the outstanding points")
    value_minor: int


class ExpiringOut(BaseModel):
    """The available points by their lots' expiry, counted from `as_of`; each window includes
    the shorter ones and the overdue points."""

    overdue: Figure = Field(description="due by `as_of`, not yet taken by the expiry run")
    within_30_days: Figure
    within_90_days: Figure
    within_365_days: Figure
    never: Figure = Field(description="in lots that never expire")
    in_lots: Figure = Field(description="every point in lots: the available points")


class LiabilityReport(BaseModel):
    as_of: datetime = Field(description="the moment the figures are of")
    currency: str
    point_value_minor: int = Field(description="the value of one point, in minor units")
    accounts: list[AccountLine] = Field(description="by counter account, by name")
    outstanding: Figure = Field(description="every posted point: the sum of wallet balances")
    held: Figure = Field(description="reserved by open holds (part of outstanding)")
    available: Figure = Field(description="outstanding - held")
    pending: Figure = Field(description="earned on paid bookings, not posted yet; not in balances")
    expiring: ExpiringOut


@dataclass(frozen=True)
class Valuation:
    currency: str
    point_value_minor: int

    def figure(self, points: int) -> Figure:
        return Figure(points=points, value_minor=value_of(points, self.point_value_minor))


async def liability_report(
    conn: AsyncConnection, valuation: Valuation, as_of: datetime | None = None
) -> LiabilityReport:
    """The report as of `as_of` (None: now, every posting the snapshot sees)."""
    statement = _NOW if as_of is None else _AS_OF
    row = (await conn.execute(statement, {"as_of": as_of})).mappings().one()
    return _report_of(row, valuation)


@dataclass(frozen=True)
class Reconciliation:
    report: LiabilityReport
    wallets_balance: int  # the sum of the wallets' balances
    wallets_held: int


async def reconcile(conn: AsyncConnection, valuation: Valuation) -> Reconciliation:
    """The report of now and the sums of the wallets table, from one snapshot: the report's
    outstanding and held points must equal them, and its points in lots the available points
    (loyalty.ledger.invariants checks it)."""
    row = (await conn.execute(_RECONCILE, {"as_of": None})).mappings().one()
    return Reconciliation(_report_of(row, valuation), row["wallets_balance"], row["wallets_held"])


def _report_of(row: Any, valuation: Valuation) -> LiabilityReport:
    accounts = [
        AccountLine(
            counter_account=name,
            kind=kind_of(name),
            credited_points=credited,
            debited_points=debited,
            points=credited - debited,
            value_minor=booked,
        )
        for name, credited, debited, booked in zip(
            row["accounts"] or [],
            row["credited"] or [],
            row["debited"] or [],
            row["booked"] or [],
            strict=True,
        )
    ]
    outstanding = sum(line.points for line in accounts)
    booked_value = sum(line.value_minor for line in accounts)
    fig = valuation.figure
    return LiabilityReport(
        as_of=row["as_of"],
        currency=valuation.currency,
        point_value_minor=valuation.point_value_minor,
        accounts=accounts,
        outstanding=Figure(points=outstanding, value_minor=booked_value),
        held=fig(row["held"]),
        available=fig(outstanding - row["held"]),
        pending=fig(row["pending"]),
        expiring=ExpiringOut(
            overdue=fig(row["overdue"]),
            within_30_days=fig(row["d30"]),
            within_90_days=fig(row["d90"]),
            within_365_days=fig(row["d365"]),
            never=fig(row["never"]),
            in_lots=fig(row["in_lots"]),
        ),
    )


CSV_COLUMNS = (
    "as_of",
    "section",
    "item",
    "credited_points",
    "debited_points",
    "points",
    "value_minor",
    "currency",
)


def report_csv(report: LiabilityReport) -> str:
    """One line per account, then one per figure; the same numbers as the JSON."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    as_of, currency = report.as_of.isoformat(), report.currency
    for line in report.accounts:
        writer.writerow(
            (as_of, f"account:{line.kind}", line.counter_account, line.credited_points,
             line.debited_points, line.points, line.value_minor, currency)
        )  # fmt: skip
    totals = {"outstanding": report.outstanding, "held": report.held}
    totals |= {"available": report.available, "pending": report.pending}
    for name, figure in totals.items():
        writer.writerow((as_of, "total", name, "", "", figure.points, figure.value_minor, currency))
    for name, figure in report.expiring:
        writer.writerow(
            (as_of, "expiring", name, "", "", figure.points, figure.value_minor, currency)
        )
    return out.getvalue()
