"""The clients of the ledger benchmark (bench/ledger.py): earn postings through the ledger module,
in this process or in processes of their own, and through the API over HTTP; and the SQL
statements of one posting each way.

    python -m bench.ledger_clients LOOP RUN I,J,...

is one process of the module phase (bench/ledger.py starts them): RUN is the run as JSON, I,J,...
its client numbers. It prints `ready` once connected, reads the start time (epoch seconds) from
stdin, runs its clients, then prints the latencies of its postings as JSON."""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import dataclasses
import functools
import json
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import kit
from loyalty import ledger
from loyalty.core import db, event_loop
from loyalty.core.settings import PROJECT_ROOT, Settings

MODULE_PHASE = "ledger.earn (module)"
HTTP_PHASE = "HTTP POST /wallets/{userId}/earn"
FLOOR_PHASE = "HTTP earn refused, no SQL (floor)"
AMOUNT_PAID = 1000  # one point at the default rate (1 point per 1,000 VND), any tier >= 1x

Loop = Coroutine[Any, Any, None]


@dataclass(frozen=True)
class Window:
    """The clients' time (perf_counter): they run until `until`; what starts from `start` on
    is measured."""

    start: float
    until: float

    @classmethod
    def after(cls, warmup: float, seconds: float, now: float | None = None) -> Window:
        start = (time.perf_counter() if now is None else now) + warmup
        return cls(start, start + seconds)

    async def repeat(self, op: Callable[[int], Awaitable[object]], latencies: list[float]) -> None:
        """`op(n)` for n = 0, 1, ... until the end; the latency of each one started inside."""
        n = 0
        while (started := time.perf_counter()) < self.until:
            await op(n)
            if started >= self.start:
                latencies.append(time.perf_counter() - started)
            n += 1


@dataclass(frozen=True)
class Run:
    """What every phase of one run shares. By default each client posts to a wallet of its own;
    with fewer wallets than clients, they take turns over the pool."""

    url: str
    run_id: str
    clients: int
    wallets: int
    seconds: int
    warmup: float

    def users(self, kind: str) -> list[str]:
        return [f"bench-{self.run_id}-{kind}{i}" for i in range(self.wallets)]

    def wallet(self, users: list[str], client: int, n: int) -> str:
        # Round robin over the pool: with one wallet per client, each client keeps its own.
        return users[(client + n * self.clients) % len(users)]

    def module_loops(
        self, engine: AsyncEngine, numbers: list[int], window: Window, latencies: list[float]
    ) -> list[Loop]:
        """Clients `numbers`: one-point earns, each on its own in `db.autocommit`."""
        users = self.users("m")

        async def post(client: int, n: int) -> None:
            async with db.autocommit(engine) as conn:
                await ledger.earn(
                    conn,
                    user_id=self.wallet(users, client, n),
                    points=1,
                    idempotency_key=f"bench:{self.run_id}:m:{client}:{n}",
                )

        return [window.repeat(functools.partial(post, i), latencies) for i in numbers]


async def measured(
    loops: list[Loop], warmup: float, groups: kit.Groups, profiler: cProfile.Profile | None = None
) -> dict[str, float]:
    """Run the client loops; their CPU (and profile) from the end of the warm-up until they end.
    The first failure cancels the other loops."""
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        await asyncio.sleep(warmup)
        with kit.CpuSampler(groups) as cpu:
            if profiler is not None:
                profiler.enable()
            await asyncio.gather(*tasks)
            if profiler is not None:
                profiler.disable()
    finally:
        for task in tasks:
            task.cancel()
    return cpu.totals()


# --- earn through the ledger module ----------------------------------------------------------


async def open_wallets(engine: AsyncEngine, users: list[str]) -> None:
    async with db.transaction(engine) as conn:
        for user in users:
            await ledger.open_wallet(conn, user)


async def run_module(
    engine: AsyncEngine, run: Run, groups: kit.Groups, profiler: cProfile.Profile | None
) -> kit.Phase:
    """The module phase in this process: its clients share one event loop."""
    await open_wallets(engine, run.users("m"))
    latencies: list[float] = []
    loops = run.module_loops(
        engine, list(range(run.clients)), Window.after(run.warmup, run.seconds), latencies
    )
    cpu = await measured(loops, run.warmup, groups, profiler)
    return kit.Phase(MODULE_PHASE, run.seconds, latencies, cpu=cpu)


async def run_module_processes(
    engine: AsyncEngine, run: Run, groups: kit.Groups, *, processes: int, loop: str
) -> kit.Phase:
    """The module phase in `processes` processes of this module, the clients dealt round robin,
    as pgbench deals its clients to its threads. Each process says when it is connected; then
    all start together, and their CPU counts as the bench client's."""
    await open_wallets(engine, run.users("m"))
    spec = json.dumps(dataclasses.asdict(run))
    children = [
        await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", __name__, loop, spec],
            ",".join(str(i) for i in range(k, run.clients, processes)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for k in range(processes)
    ]
    try:
        async with asyncio.timeout(60):
            for child in children:
                assert child.stdout is not None
                if (await child.stdout.readline()).strip() != b"ready":
                    raise RuntimeError("a module client process did not start (see its stderr)")
        start_at = time.time() + 0.1
        for child in children:
            assert child.stdin is not None
            child.stdin.write(f"{start_at}\n".encode())
            await child.stdin.drain()
        await asyncio.sleep(start_at + run.warmup - time.time())
        pids = [child.pid for child in children]
        own = groups["bench client"]
        clients = lambda: [*own(), *(p for pid in pids for p in kit.tree(pid))]  # noqa: E731
        with kit.CpuSampler({**groups, "bench client": clients}) as cpu:
            async with asyncio.timeout(run.seconds + 120):  # a stuck process ends the bench
                outputs = [await child.communicate() for child in children]
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    if any(child.returncode for child in children):
        raise RuntimeError(f"module client processes failed: {[c.returncode for c in children]}")
    latencies = [x for out, _ in outputs for x in json.loads(out)]
    return kit.Phase(MODULE_PHASE, run.seconds, latencies, cpu=cpu.totals())


async def _module_process(spec: str, mine: str) -> None:
    run = Run(**json.loads(spec))
    numbers = [int(i) for i in mine.split(",")]
    engine = db.make_engine(run.url, pool_size=len(numbers))
    try:
        async with engine.connect() as conn:  # connected before the clock starts
            await conn.execute(text("SELECT 1"))
        print("ready", flush=True)
        start_at = float(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
        window = Window.after(run.warmup, run.seconds, time.perf_counter() + start_at - time.time())
        latencies: list[float] = []
        await asyncio.gather(*run.module_loops(engine, numbers, window, latencies))
        print(json.dumps(latencies), flush=True)
    finally:
        await engine.dispose()


# --- earn through HTTP -----------------------------------------------------------------------


async def run_http(
    base_url: str,
    run: Run,
    groups: kit.Groups,
    *,
    http_client: str,
    label: str = "",
    refused: bool = False,
) -> kit.Phase:
    """Earns over HTTP, each a new booking worth one point (201). With `refused`, the same
    requests in a currency the service does not keep, which the endpoint refuses (422) before any
    SQL: the API's cost for routing, auth, validation and the request's transaction alone."""
    settings = Settings(_env_file=PROJECT_ROOT / ".env")  # what the API process reads
    headers = {"Authorization": f"Bearer {kit.service_token(settings)}"}
    tag = re.sub(r"[^0-9a-z]", "", label)  # ids: printable ASCII, no spaces
    users = run.users(f"h{tag}-")
    latencies: list[float] = []
    window = Window.after(run.warmup, run.seconds)
    limits = httpx.Limits(max_connections=run.clients, max_keepalive_connections=run.clients)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=30
    ) as shared:
        raws = [kit.RawHttpConnection(base_url, headers) for _ in range(run.clients)]

        async def earn(i: int, n: int) -> None:
            path = f"/wallets/{run.wallet(users, i, n)}/earn"
            body = {
                "booking_id": f"bench-{run.run_id}{tag}-{i}-{n}",
                "amount_paid": AMOUNT_PAID,
                "currency": "USD" if refused else "VND",
            }
            if http_client == "raw":
                status, content = await raws[i].post(path, json.dumps(body).encode())
            else:
                response = await shared.post(path, json=body)
                status, content = response.status_code, response.content
            if status != (422 if refused else 201):  # every booking is new: one point each
                raise RuntimeError(f"HTTP earn failed: {status} {content[:300]!r}")

        try:
            loops = [
                window.repeat(functools.partial(earn, i), latencies) for i in range(run.clients)
            ]
            cpu = await measured(loops, run.warmup, groups)
        finally:
            for raw in raws:
                await raw.close()
    name = FLOOR_PHASE if refused else f"{HTTP_PHASE}{label}"
    return kit.Phase(name, run.seconds, latencies, cpu=cpu)


# --- the statements of one posting -----------------------------------------------------------


@contextlib.contextmanager
def _statements_of(engine: AsyncEngine, into: list[str]) -> Iterator[None]:
    """The SQL the engine sends while the block runs (SQLAlchemy's cursor event), into `into`."""

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        into.append(" ".join(statement.split())[:100])

    into.clear()
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def count_statements(engine: AsyncEngine, run: Run) -> dict[str, list[str]]:
    """The SQL statements of one earn posting on a wallet that exists: through the ledger, and
    through the HTTP endpoint (the app in this process, its engine watched)."""
    from api.app import create_app

    user = f"bench-{run.run_id}-count"
    sent: dict[str, list[str]] = {"ledger.earn": [], "HTTP earn": []}
    for n in range(2):  # the first opens the wallet
        async with db.autocommit(engine) as conn:
            # A lone posting travels on the driver connection (loyalty.ledger.calls): watch
            # both it (asyncpg's query logger) and SQLAlchemy.
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None

            def logged(record: Any, into: list[str] = sent["ledger.earn"]) -> None:
                into.append(" ".join(record.query.split())[:100])

            with _statements_of(engine, sent["ledger.earn"]):
                driver.add_query_logger(logged)
                try:
                    await ledger.earn(
                        conn, user_id=user, points=1, idempotency_key=f"c:{run.run_id}:{n}"
                    )
                finally:
                    driver.remove_query_logger(logged)
    settings = Settings(environment="test", database_url=run.url, db_pool_size=1)
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {kit.service_token(settings)}"}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers) as http,
    ):
        for n in range(2):
            body = {
                "booking_id": f"bench-{run.run_id}-c{n}",
                "amount_paid": AMOUNT_PAID,
                "currency": "VND",
            }
            with _statements_of(app.state.engine, sent["HTTP earn"]):
                response = await http.post(f"/wallets/{user}/earn", json=body)
            assert response.status_code == 201, response.text
    return sent


if __name__ == "__main__":
    event_loop.run(_module_process(sys.argv[2], sys.argv[3]), sys.argv[1])
