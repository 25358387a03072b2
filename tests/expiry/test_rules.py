"""The expiry's rules as plain functions: pages, phases, continue-as-new, wallets counted once,
and the reminders' grouping and content."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from loyalty.expiry import rules
from loyalty.expiry.contracts import ExpiryProgress, Keyset, ReminderLot
from loyalty.notifications.models import NotificationKind

T0 = datetime(2026, 12, 3, 3, 0, tzinfo=UTC)


@dataclass(frozen=True)
class L:
    lot_id: int
    expires_at: datetime | None


def test_a_page_is_the_first_lots_in_walk_order_of_both_lists() -> None:
    due = [L(5, T0), L(9, T0 + timedelta(days=1)), L(3, T0 + timedelta(days=2))]
    done = [L(7, T0), L(2, T0 + timedelta(days=3))]  # expired by an earlier attempt
    assert [lot.lot_id for lot in rules.page(due, done, 3)] == [5, 7, 9]
    assert [lot.lot_id for lot in rules.page(due, done, 10)] == [5, 7, 9, 3, 2]
    # A lot in both (read while the earlier attempt posted) is visited once.
    assert [lot.lot_id for lot in rules.page(due, [L(5, T0)], 10)] == [5, 9, 3]
    assert rules.page([], [], 5) == []


def test_keyset_is_the_last_lot_visited() -> None:
    assert rules.keyset(L(4, T0)) == Keyset(expires_at=T0, lot_id=4)
    with pytest.raises(AssertionError):
        rules.keyset(L(4, None))  # never due, never visited


@pytest.mark.parametrize(
    ("phase", "fetched", "reminder_days", "expected"),
    [
        ("expiring", 10, 30, "expiring"),  # a full page: more may follow
        ("expiring", 9, 30, "reminding"),  # the last page of due lots
        ("expiring", 0, 30, "reminding"),
        ("expiring", 3, 0, "done"),  # reminders off
        ("reminding", 10, 30, "reminding"),
        ("reminding", 4, 30, "done"),
        ("done", 0, 30, "done"),
    ],
)
def test_next_phase(phase: str, fetched: int, reminder_days: int, expected: str) -> None:
    assert rules.next_phase(phase, fetched, 10, reminder_days) == expected  # type: ignore[arg-type]


def test_continue_as_new_after_the_batches_per_run_or_when_suggested() -> None:
    assert not rules.continue_as_new(199, 200, suggested=False)
    assert rules.continue_as_new(200, 200, suggested=False)
    assert rules.continue_as_new(1, 200, suggested=True)


def test_reminder_window() -> None:
    assert rules.reminder_until(T0, 30) == T0 + timedelta(days=30)
    assert rules.reminder_until(T0, 0) is None


def test_a_wallet_counts_in_the_batch_of_its_first_expired_lot_only() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert rules.new_wallets([a, b, a], touched_before=[]) == 2
    assert rules.new_wallets([a, b, c], touched_before=[b]) == 2
    assert rules.new_wallets([], touched_before=[a]) == 0


def _lot(lot_id: int, user: str, points: int, days: float) -> ReminderLot:
    return ReminderLot(
        lot_id=lot_id,
        wallet_id=uuid.UUID(int=hash(user) & (2**128 - 1)),
        user_id=user,
        remaining=points,
        expires_at=T0 + timedelta(days=days),
    )


def test_one_reminder_per_customer_with_their_points_and_first_date() -> None:
    lots = [
        _lot(3, "ann", 300, 20),
        _lot(1, "bob", 80, 5),
        _lot(2, "ann", 200, 12.5),
        _lot(4, "ann", 1, 29),
    ]
    found = {r.notification.user_id: r for r in rules.reminders(lots, "run-1")}
    assert set(found) == {"ann", "bob"}
    ann = found["ann"]
    assert ann.notification.kind == NotificationKind.POINTS_EXPIRING
    assert ann.notification.idempotency_key == "points_expiring:ann:run-1"
    assert ann.notification.payload == {
        "points": 501,
        "expires_at": (T0 + timedelta(days=12.5)).isoformat(),
        "lots": 3,
    }
    assert [lot.lot_id for lot in ann.lots] == [2, 3, 4]  # recorded as reminded, all of them
    assert found["bob"].notification.payload["points"] == 80
    assert rules.reminders([], "run-1") == []


def test_a_reminder_key_is_per_customer_and_run() -> None:
    assert rules.reminder_key("ann", "r1") != rules.reminder_key("ann", "r2")
    assert rules.reminder_key("ann", "r1") != rules.reminder_key("bob", "r1")
    assert len(rules.reminder_key("u" * 128, str(uuid.uuid4()))) <= 255


def test_the_progress_line_names_the_current_phase_and_its_cursor() -> None:
    progress = ExpiryProgress(
        expiry_id="r", as_of=T0, started_at=T0, tx_watermark=7, due_estimate=40, lots_expired=12
    )
    progress.cursor = Keyset(expires_at=T0, lot_id=9)
    assert progress.line().startswith("running (expiring): 12 of ~40 lots expired")
    assert "after lot 9 (" in progress.line()
    progress.phase, progress.reminder_cursor = "reminding", Keyset(expires_at=T0, lot_id=31)
    assert "after lot 31 (" in progress.line()
