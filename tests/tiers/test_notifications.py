"""An evaluation's tier-change notifications reach the notification service once each, through
retries of a service that fails at first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from loyalty.tiers.rules import Ladder, notification_key
from tests.harness.receiver import Receiver
from tests.tiers.helpers import Evaluate, SeedWallet, seed


@pytest.fixture
def settings_overrides(receiver: Receiver) -> dict[str, Any]:
    return {"notify_url": receiver.url}


async def test_each_change_is_notified_once_through_a_flaky_receiver(
    owner_engine: AsyncEngine, ladder: Ladder, receiver: Receiver, evaluate: Evaluate
) -> None:
    receiver.fail_first = 2
    as_of = datetime.now(UTC)
    movers = [SeedWallet("bronze", [(5000 + i, as_of - timedelta(days=1))]) for i in range(5)]
    ids = await seed(owner_engine, movers)

    result, _ = await evaluate(as_of=as_of, downgrade_grace_days=30)

    evaluation = result.progress.evaluation_id
    mine = {notification_key(ids[w.user_id], evaluation, "silver") for w in movers}
    got = [r["key"] for r in receiver.received if r["key"] in mine]
    assert sorted(got) == sorted(mine)  # every change once, none twice
    assert receiver.attempts > len(receiver.received)  # the failures were retried
    changes = result.progress.upgraded + result.progress.downgraded
    assert result.progress.notifications_delivered == changes == len(receiver.received)
    assert result.progress.notifications_undelivered == 0
