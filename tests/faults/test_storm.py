"""A storm: 200 checkouts on 20 wallets at once (bounded to 16 in flight), each with a random
outcome from a seeded generator: paid, declined, released, confirmed, expired, or a redeem the
tier's cap refuses. Afterwards the invariant command passes and every wallet's balance is what a
plain model of the same operations says.

Everything is real: redeem, release and confirm over HTTP, payments through localstripe with its
signed webhooks, `python worker.py` as a process. Expiring checkouts, and declined ones (a declined
card leaves the checkout waiting for another until its hold expires), are redeemed through a
second API whose hold TTL is 6 seconds (the TTL is the API's setting)."""

from __future__ import annotations

import asyncio
import random
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from loyalty.core.settings import PROJECT_ROOT, Settings
from tests.faults.conftest import running_api, unique
from tests.harness.api import Api
from tests.harness.workers import WorkerProcess
from tests.redemption.helpers import DECLINED_CARD, pay, postings, wait_for_end, wallet

MakeWallet = Callable[..., Awaitable[str]]
SEED = 20261125
CHECKOUTS, WALLETS, IN_FLIGHT = 200, 20, 16
OUTCOMES = ["paid", "declined", "released", "confirmed", "expired", "refused"]
WEIGHTS = [30, 15, 20, 15, 12, 8]
CAPTURING = {"paid", "confirmed"}


@dataclass(frozen=True)
class Checkout:
    booking_id: str
    wallet: int
    order: int
    points: int
    outcome: str


def plan(rng: random.Random) -> list[Checkout]:
    checkouts = []
    for i in range(CHECKOUTS):
        outcome = rng.choices(OUTCOMES, WEIGHTS)[0]
        order = rng.randrange(10_000, 200_000, 1_000)
        cap = order * 30 // 100  # bronze redeems at most 30% of the order
        points = cap + rng.randint(1, 5_000) if outcome == "refused" else rng.randint(1_000, cap)
        checkouts.append(Checkout(f"bk-storm-{i}-{unique('s')}", rng.randrange(WALLETS), order,
                                  points, outcome))  # fmt: skip
    return checkouts


async def run_checkout(
    c: Checkout, user: str, api: Api, short_api: Api, customer: stripe.StripeClient
) -> int:
    body = {"booking_id": c.booking_id, "order_amount": c.order, "currency": "VND",
            "points": c.points}  # fmt: skip
    via = short_api if c.outcome in ("expired", "declined") else api
    answer = await via.http.post(f"/wallets/{user}/redeem", json=body, headers=api.service)
    if c.outcome == "refused":
        assert (answer.status_code, answer.json()["code"]) == (422, "redemption_cap_exceeded")
        return answer.status_code
    assert answer.status_code == 200, (c, answer.text)
    hold = answer.json()
    assert hold["points_held"] == c.points
    if c.outcome == "paid":
        assert await pay(customer, hold["payment_intent_id"]) == "succeeded"
    elif c.outcome == "declined":
        await pay(customer, hold["payment_intent_id"], DECLINED_CARD)
    elif c.outcome in ("released", "confirmed"):
        action = "release" if c.outcome == "released" else "confirm"
        decided = await api.http.post(
            f"/wallets/{user}/{action}",
            json={"booking_id": c.booking_id},
            headers=api.service,
        )
        assert decided.status_code == 202, decided.text
    return answer.status_code


@pytest.mark.slow
async def test_storm_of_checkouts_matches_the_model(
    live_api: Api,
    settings: Settings,
    worker_process: WorkerProcess,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet: MakeWallet,
    database_url: str,
) -> None:
    checkouts = plan(random.Random(SEED))
    assert set(Counter(c.outcome for c in checkouts)) == set(OUTCOMES)
    # Every wallet can cover all its checkouts at once: refusals come from the cap alone, so
    # the model does not depend on the order in which concurrent holds land.
    needed: Counter[int] = Counter()
    for c in checkouts:
        needed[c.wallet] += c.points if c.outcome != "refused" else 0
    seeds = [needed[w] + 1_000 * (w + 1) for w in range(WALLETS)]
    users = [await make_wallet(seed) for seed in seeds]
    await worker_process.start()

    short = settings.model_copy(update={"hold_ttl_seconds": 6})
    async with running_api(short, webhooks=False) as short_api:
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def bounded(c: Checkout) -> int:
            async with gate:
                return await run_checkout(c, users[c.wallet], live_api, short_api, stripe_client)

        statuses = await asyncio.gather(*(bounded(c) for c in checkouts))
        assert Counter(statuses) == Counter(
            422 if c.outcome == "refused" else 200 for c in checkouts
        )
        finals = {
            c.booking_id: await wait_for_end(temporal_client, c.booking_id, within=120)
            for c in checkouts
            if c.outcome != "refused"
        }

    # The model: a wallet loses exactly the points of its captured checkouts; nothing stays held.
    expected = list(seeds)
    for c in checkouts:
        if c.outcome in CAPTURING:
            expected[c.wallet] -= c.points
    actual = [await wallet(engine, user) for user in users]
    assert [(w.balance, w.held) for w in actual] == [(e, 0) for e in expected]

    decisions = {"paid": "payment_succeeded", "declined": "expired", "released": "released",
                 "confirmed": "confirmed", "expired": "expired"}  # fmt: skip
    for c in checkouts:
        rows = await postings(engine, c.booking_id)
        if c.outcome == "refused":
            assert rows == [], c
            continue
        final = finals[c.booking_id]
        captured = c.outcome in CAPTURING
        assert (final.status, final.decision) == (
            "captured" if captured else "released",
            decisions[c.outcome],
        ), c
        settled = ("capture", -c.points, -c.points, c.points) if captured else (
            "release", 0, -c.points, None)  # fmt: skip
        assert rows == [("hold", 0, c.points, None), settled], c

    # The whole database's invariants. The storm's own holds are all settled (above); the grace
    # of a day keeps out the holds other tests placed on this database with no saga to settle
    # them (due 5 to 15 minutes after they ran), which the stuck-hold check would otherwise
    # report once this test runs long enough after them.
    check = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loyalty.ledger.invariants", "--database-url", database_url,
        "--hold-grace-seconds", str(24 * 3600),
        cwd=PROJECT_ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out = (await asyncio.wait_for(check.communicate(), 60))[0].decode()
    assert check.returncode == 0, out
    assert out.strip().endswith("OK"), out
