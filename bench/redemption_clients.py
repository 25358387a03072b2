"""The clients of the saga benchmark (bench/redemption.py): the booking service and the customer
of a checkout against our API and localstripe, the same calls against the bare saga
(bench/bare_saga.py), and the loop that times them; the wallets they spend and the check of the
ledger afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import stripe
from sqlalchemy import text
from temporalio.client import Client

from bench import bare_saga, kit
from loyalty import ledger
from loyalty.core import db
from loyalty.core.settings import Settings
from loyalty.core.temporal import connect
from loyalty.ledger.invariants import find_violations

BARE_QUEUE = "bench-bare"
ORDER, POINTS = 100_000, 30_000  # bronze may redeem 30% of the order

Window = Callable[[], contextlib.AbstractContextManager[object]]
One = Callable[[int], Awaitable[float]]  # checkout i -> its hold latency (seconds)


class ApiConnections:
    """The booking service's side: keep-alive connections to the API, one per loop at a time, on
    the lean client of bench/kit.py (httpx cost about 1.4 ms of CPU per call on the same cores)."""

    def __init__(self, url: str, headers: dict[str, str], size: int) -> None:
        self._idle: asyncio.Queue[kit.RawHttpConnection] = asyncio.Queue()
        self._all = [kit.RawHttpConnection(url, headers) for _ in range(size)]
        for conn in self._all:
            self._idle.put_nowait(conn)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        conn = await self._idle.get()
        try:
            try:
                return await conn.post(path, body)
            except (asyncio.IncompleteReadError, ConnectionError):
                # uvicorn closes a connection idle for 5 s (between runs); the redeem is
                # idempotent by booking, so sending it again on a new connection is safe.
                await conn.close()
                return await conn.post(path, body)
        finally:
            self._idle.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()


@dataclass
class Checkouts:
    """Checkouts on one Temporal server, `concurrency` loops at a time: ours through the API and
    localstripe, or the bare saga's straight on Temporal."""

    client: Client
    concurrency: int
    api: ApiConnections
    customer: stripe.StripeClient  # the customer's Stripe calls
    bare_remote: bool = False  # the bare saga's hold as an ordinary (remote) activity

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, settings: Settings, api_url: str, concurrency: int, *, bare_remote: bool
    ) -> AsyncIterator[Checkouts]:
        # The customer's side, on aiohttp: about 0.6 ms of CPU per call against httpx's 1.4.
        customer_http = stripe.AIOHTTPClient()
        customer = stripe.StripeClient(
            "sk_test_bench",
            base_addresses={"api": settings.stripe_api_base},
            http_client=customer_http,
        )
        headers = {"Authorization": f"Bearer {kit.service_token(settings)}"}
        api = ApiConnections(api_url, headers, size=concurrency)
        try:
            client = await connect(settings)
            yield cls(client, concurrency, api, customer, bare_remote)
        finally:
            await api.close()
            await customer_http.close_async()

    async def bare(self, n: int, tag: str, window: Window = contextlib.nullcontext) -> kit.Phase:
        """Update-with-start (the hold), then the `paid` signal."""
        ids = [f"{tag}-{uuid.uuid4().hex[:10]}" for _ in range(n)]

        async def one(i: int) -> float:
            t0 = time.perf_counter()
            await bare_saga.hold(self.client, BARE_QUEUE, ids[i], remote=self.bare_remote)
            held = time.perf_counter() - t0
            await bare_saga.pay(self.client, ids[i])
            return held

        name = "bare" + (" (remote)" if self.bare_remote else "")
        return await self._run(name, [f"bare-{b}" for b in ids], one, window)

    async def ours(
        self, users: list[str], tag: str, window: Window = contextlib.nullcontext
    ) -> kit.Phase:
        """One checkout per user: the redeem call, then the customer pays the remainder."""
        ids = [f"{tag}-{uuid.uuid4().hex[:10]}" for _ in users]
        # The customers pay with a saved card (one PaymentMethod, made before the clock
        # starts): one confirm naming it, as Stripe.js's confirmCardPayment sends it for a
        # returning customer.
        card = await self.customer.v1.payment_methods.create_async(
            {
                "type": "card",
                "card": {
                    "number": "4242424242424242",
                    "exp_month": 12,
                    "exp_year": 2030,
                    "cvc": "123",
                },
            }
        )

        async def one(i: int) -> float:
            body = {
                "booking_id": ids[i],
                "order_amount": ORDER,
                "currency": "VND",
                "points": POINTS,
            }
            t0 = time.perf_counter()
            status, answer = await self.api.post(
                f"/wallets/{users[i]}/redeem", json.dumps(body).encode()
            )
            held = time.perf_counter() - t0
            if status != 200:
                raise RuntimeError(f"redeem failed: {status} {answer!r}")
            intent = json.loads(answer)["payment_intent_id"]
            await self.customer.v1.payment_intents.confirm_async(
                intent, {"payment_method": card.id}
            )
            return held

        return await self._run("ours", [f"redemption-{b}" for b in ids], one, window)

    async def _run(self, name: str, workflow_ids: list[str], one: One, window: Window) -> kit.Phase:
        """The checkouts on the loops, each loop starting its next as soon as `one` returns.
        The window closes when the last sagas started have completed, so it holds every saga's
        work but not the close-time lookups (two calls to Temporal a saga). Throughput is the
        sagas over the time from the start to the last close (server clock, same machine)."""
        counter = iter(range(len(workflow_ids)))
        holds: list[float] = []

        async def loop() -> None:
            for i in counter:
                holds.append(await one(i))

        with window():
            started = time.time()
            await asyncio.gather(*(loop() for _ in range(self.concurrency)))
            for wid in workflow_ids[-self.concurrency :]:
                await self.client.get_workflow_handle(wid).result()
        last = 0.0
        async with asyncio.timeout(600):
            for wid in workflow_ids:
                handle = self.client.get_workflow_handle(wid)
                await handle.result()
                closed = (await handle.describe()).close_time
                assert closed is not None
                last = max(last, closed.timestamp())
        return kit.Phase(name, last - started, holds)


async def make_wallets(database_url: str, count: int) -> list[str]:
    """Wallets with the points of one checkout each."""
    engine = db.make_engine(database_url, pool_size=2)
    users = [f"bench-{uuid.uuid4().hex[:12]}" for _ in range(count)]
    async with db.transaction(engine) as conn:
        for user in users:
            await ledger.earn(conn, user_id=user, points=POINTS, idempotency_key=f"seed:{user}")
    await engine.dispose()
    return users


async def check_ledger(database_url: str, users: list[str]) -> list[str]:
    """Every wallet of the run captured its checkout; the invariants hold."""
    engine = db.make_engine(database_url, pool_size=1)
    async with engine.connect() as conn:
        problems = [str(v) for v in await find_violations(conn)]
        rows = await conn.execute(
            text("SELECT user_id, balance, held FROM wallets WHERE user_id = ANY(:u)"),
            {"u": users},
        )
        problems += [f"{u}: balance {b} held {h}" for u, b, h in rows if (b, h) != (0, 0)]
    await engine.dispose()
    return problems
