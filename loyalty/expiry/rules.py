"""The points expiry's rules, as plain functions: which lots a run visits and in what pages,
when the run moves on to reminders and when it continues as new, which lots get a reminder and
what it says.

A run expires every lot due at its `as_of` (the workflow's start), each once (the ledger's key
`expire:lot:{id}`), and then reminds each customer once per run of the lots due within
POINTS_EXPIRY_REMINDER_DAYS after `as_of` that no run has reminded them of yet."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from loyalty.expiry.contracts import Keyset, Phase, ReminderLot
from loyalty.notifications.models import Notification, NotificationKind


class Keyed(Protocol):
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def lot_id(self) -> int: ...


L = TypeVar("L", bound=Keyed)


def keyset(lot: Keyed) -> Keyset:
    """Where the walk stands after `lot` (only lots with an expiry date are visited)."""
    assert lot.expires_at is not None, "a lot without expiry is never due"
    return Keyset(expires_at=lot.expires_at, lot_id=lot.lot_id)


def sort_key(lot: Keyed) -> tuple[datetime, int]:
    assert lot.expires_at is not None
    return lot.expires_at, lot.lot_id


def page(still_due: Iterable[L], expired_by_this_run: Iterable[L], limit: int) -> list[L]:
    """A batch's lots: the first `limit` in walk order of those still holding points and, when
    the batch is retried, those an earlier attempt of it already expired. Both lists start after
    the same keyset, so the retried batch covers the same lots the first attempt saw and counts
    them again (their postings replay), instead of skipping past them uncounted."""
    merged = {lot.lot_id: lot for lot in [*expired_by_this_run, *still_due]}
    return sorted(merged.values(), key=sort_key)[:limit]


def last_page(fetched: int, limit: int) -> bool:
    """A page shorter than asked for is the walk's last."""
    return fetched < limit


def next_phase(phase: Phase, fetched: int, limit: int, reminder_days: int) -> Phase:
    """After a batch of `phase` that found `fetched` lots: expiring until its last page, then
    reminding (unless reminders are off) until its last page, then done."""
    if phase == "done" or not last_page(fetched, limit):
        return phase
    if phase == "expiring" and reminder_days > 0:
        return "reminding"
    return "done"


def continue_as_new(batches_this_run: int, batches_per_run: int, suggested: bool) -> bool:
    """Hand the progress to a fresh run after `batches_per_run` batches, or when Temporal
    suggests it (the history grows by a few events per batch)."""
    return suggested or batches_this_run >= batches_per_run


def reminder_until(as_of: datetime, days: int) -> datetime | None:
    """The end of the reminder window (lots due in (as_of, until]); None when reminders are
    off."""
    return as_of + timedelta(days=days) if days > 0 else None


def new_wallets(page_wallets: Iterable[uuid.UUID], touched_before: Iterable[uuid.UUID]) -> int:
    """Wallets of a batch the run had not expired a lot of before it: summed over the batches,
    the distinct wallets the run touched."""
    return len(set(page_wallets) - set(touched_before))


def reminder_key(user_id: str, expiry_id: str) -> str:
    """One reminder per customer per run: the outbox keeps the first written under this key."""
    return f"points_expiring:{user_id}:{expiry_id}"


@dataclass(frozen=True)
class Reminder:
    notification: Notification
    lots: Sequence[ReminderLot]  # recorded as reminded with it, so never reminded again


def reminders(lots: Iterable[ReminderLot], expiry_id: str) -> list[Reminder]:
    """One reminder per customer of all their lots given: the points left in them and the
    earliest date one of them expires (the first points they lose)."""
    by_user: dict[str, list[ReminderLot]] = {}
    for lot in lots:
        by_user.setdefault(lot.user_id, []).append(lot)
    found = []
    for user_id, theirs in by_user.items():
        theirs.sort(key=sort_key)
        payload = {
            "points": sum(lot.remaining for lot in theirs),
            "expires_at": theirs[0].expires_at.isoformat(),
            "lots": len(theirs),
        }
        note = Notification(
            idempotency_key=reminder_key(user_id, expiry_id),
            kind=NotificationKind.POINTS_EXPIRING,
            user_id=user_id,
            payload=payload,
        )
        found.append(Reminder(note, theirs))
    return found
