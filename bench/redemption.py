"""Redemption saga benchmark, with the bare saga (bench/bare_saga.py) as its same-run baseline.

    .venv/bin/python bench/redemption.py --sagas 200 --concurrency 4

Starts its own stack in a temporary folder (embedded PostgreSQL, the Temporal dev server,
localstripe, the API under uvicorn and our worker, each a process of its own, like in
production) and stops it all at the end. Then, on the same Temporal server:

- bare:  C loops, each: update-with-start (hold = one trivial local activity), then the `paid`
         signal; the saga completes.
- ours:  C loops, each: POST /wallets/{user}/redeem (update-with-start; hold and PaymentIntent),
         then the customer pays the remainder in localstripe with the stripe SDK (a saved card,
         named in the confirm); localstripe posts the signed webhook to the API, which signals
         the saga; the saga captures.

A loop starts its next checkout as soon as the customer side is done (the hold answered and the
payment made); the sagas finish on their own. Throughput is sagas / (last close time - start);
hold latency is what the booking service waits for (the redeem call, or the update-with-start).
Each run prints the CPU time per saga of every process, sampled while its sagas run (not while
the bench looks up their close times afterwards), and the CPU ceiling that gives on this
machine's cores (bench/kit.py). Levers: --tune (worker options), --db-pool, --bare-remote (the
hold as a remote activity in the baseline), --webhook-delay, --sandbox (both workers in
temporalio's workflow sandbox), --payload-encryption off (our payloads in plain JSON, to
measure the codec), --sa-refresh-on-read (the dev server's own search-attribute
handling; the bench caches them, as production servers do), --localstripe-pickle (localstripe
as shipped), --profile (cProfile of the API and the worker), --perf (where the Temporal server's
CPU goes, by area, and the worker's, by object and thread: bench/server_profile.py).
LOYALTY_EVENT_LOOP=asyncio runs this process and both workers on asyncio's loop.

    .venv/bin/python bench/redemption.py --sagas 100 --telemetry off --telemetry metrics \
        --telemetry tracing --rounds 2

measures what telemetry costs instead (no bare saga): for each mode in turn (bench/telemetry.py:
off, metrics scraped every 5 s, tracing exported over OTLP to a stand-in collector), the API and
our worker are started afresh with that mode's settings on the same stack, and run the sagas;
rounds alternate the order. It prints CPU ms per saga by mode and the cost against `off`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import json
import os
import signal
import sys

import httpx

import devstack
from bench import bare_saga, kit, server_profile, telemetry
from bench.redemption_clients import BARE_QUEUE, Checkouts, check_ledger, make_wallets
from loyalty.core import db, event_loop
from loyalty.core.payload_encryption import generate_key_line
from loyalty.core.settings import Settings
from loyalty.core.temporal import connect

OUR_QUEUE = "bench-redemption"
THROUGHPUT_TARGET = 0.80  # of the bare saga's sagas per second


# --- the stack -------------------------------------------------------------------------------


def start_stack(stack: kit.Stack, args: argparse.Namespace) -> tuple[Settings, str]:
    """PostgreSQL, the dev server, localstripe, the API (as scripts/serve_api.py serves it:
    uvicorn, uvloop and httptools), our worker and the bare saga's; the settings they share and
    the API's URL."""
    settings, env = start_shared(stack, args)
    api = start_service(stack, settings, env, args)
    bare = [bare_saga.__file__, "worker", "--address", settings.temporal_address or "",
            "--task-queue", BARE_QUEUE]  # fmt: skip
    stack.worker("bare worker", bare, env)
    return settings, api


def start_shared(stack: kit.Stack, args: argparse.Namespace) -> tuple[Settings, dict[str, str]]:
    """PostgreSQL, the dev server and localstripe; the service's settings and environment."""
    database_url = stack.postgres()
    temporal = stack.temporal(
        queue_reads_per_second=None if args.dev_server_defaults else 1000,
        search_attribute_cache=not args.sa_refresh_on_read,
    )
    if args.localstripe_pickle:  # as shipped: pickles its whole store to a file on every write
        port = devstack.free_port()
        cmd = [devstack.venv_bin("localstripe"), "--port", str(port)]
        proc = stack.start("localstripe", cmd)
        devstack.wait_for_port("127.0.0.1", port, timeout=30, proc=proc, name="localstripe")
    else:  # in memory (devstack.localstripe_server)
        port, log = devstack.free_port(), stack.root / "localstripe.log"
        proc = devstack.start_localstripe(port=port, log_file=log, webhook_delay=args.webhook_delay)
        stack.own("localstripe", proc)
    return kit.settings_and_env(
        environment="test",
        database_url=database_url,
        temporal_address=temporal,
        temporal_task_queue=OUR_QUEUE,
        stripe_api_key="sk_test_bench",
        stripe_api_base=f"http://127.0.0.1:{port}",
        db_pool_size=args.db_pool,
        redemption_saga_version=args.saga_version,
        workflow_sandbox=args.sandbox,  # both workers
        # Our API and worker encrypt every Temporal payload (as shipped) with a key of this run;
        # the bare saga never does. --payload-encryption off measures the codec's cost.
        temporal_payload_encryption=args.payload_encryption == "on",
        temporal_payload_keys=generate_key_line("bench"),
    )


def start_service(
    stack: kit.Stack, settings: Settings, env: dict[str, str], args: argparse.Namespace
) -> str:
    """The API (localstripe's webhooks pointed at it) and our worker; the API's URL."""
    api = stack.api(env, profile=stack.root / "api.prof" if args.profile else None)
    webhooks = devstack.localstripe_webhook_fields(
        f"{api}/webhooks/stripe", settings.stripe_webhook_secret
    )
    httpx.post(
        f"{settings.stripe_api_base}/_config/webhooks/bench", data=webhooks
    ).raise_for_status()
    profile = {"BENCH_WORKER_PROFILE": str(stack.root / "worker.prof")} if args.profile else {}
    tune = json.dumps(dict(kv.split("=", 1) for kv in args.tune))
    stack.worker("worker", [__file__, "serve-worker", "--tune", tune], {**env, **profile})
    return api


async def serve_worker(tune: dict[str, str], profile: str | None) -> None:
    """Our worker (worker.build_worker) with temporalio Worker options `tune`, optionally
    under cProfile, until SIGINT or SIGTERM."""
    import activities
    from loyalty.core.stripe_client import async_stripe_client
    from loyalty.observability import tracing
    from worker import build_worker, sdk_runtime, start_metrics

    settings = Settings()
    engine = db.make_engine(settings.database_url or "", pool_size=settings.db_pool_size)
    # Telemetry as worker.py's main sets it up (all off unless the settings turn it on).
    start_metrics(settings)
    tracing.configure(settings, "loyalty-worker")
    client = await connect(
        settings, interceptors=tracing.temporal_interceptors(), runtime=sdk_runtime(settings)
    )
    ratio = "nonsticky_to_sticky_poll_ratio"  # the one option that is not a count
    tuning = {k: float(v) if k == ratio else int(v) for k, v in tune.items()}
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    profiler = cProfile.Profile() if profile else None
    async with async_stripe_client(settings) as stripe_client:
        deps = activities.Dependencies(settings=settings, engine=engine, stripe=stripe_client)
        async with build_worker(client, deps, settings.temporal_task_queue, **tuning):
            print(f"worker started on task queue {settings.temporal_task_queue!r}", file=sys.stderr)
            sys.stderr.flush()
            if profiler is not None:
                profiler.enable()
            await stop.wait()
            if profiler is not None and profile:
                profiler.disable()
                profiler.dump_stats(profile)
    await engine.dispose()


# --- the run ---------------------------------------------------------------------------------


def print_run(phase: kit.Phase) -> None:
    """The run's sagas, throughput and hold latency; then its CPU per saga by process."""
    p50, p99 = (phase.percentile(p) * 1000 for p in (50, 99))
    print(
        f"{phase.name:<11} {len(phase.latencies):>5} sagas in {phase.seconds:6.2f} s = "
        f"{phase.rate:7.2f} sagas/s   hold p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
    )
    used = {k: v for k, v in phase.cpu_ms().items() if v >= 0.5}
    parts = ", ".join(f"{k} {v:.1f}" for k, v in used.items())
    print(f"{'':<11} CPU ms per saga {sum(phase.cpu_ms().values()):.1f}: {parts}", flush=True)


def compare(results: list[tuple[kit.Phase, kit.Phase]]) -> None:
    """Ours as a share of the bare saga, round by round (the figure the target is about)."""
    print("\nsame-run comparison (ours / bare; rounds 2, 4, ... ran ours first):")
    for i, (bare, ours) in enumerate(results):
        p50, bare_p50 = ours.percentile(50) * 1000, bare.percentile(50) * 1000
        print(
            f"  round {i + 1}: throughput {ours.rate / bare.rate:6.1%} "
            f"(target >= {THROUGHPUT_TARGET:.0%}), "
            f"hold p99 {ours.percentile(99) / bare.percentile(99):5.2f}x (target <= 2x), "
            f"hold p50 {p50:.1f} ms vs bare {bare_p50:.1f} ms (target < 100 ms at concurrency 4)"
        )
        used = sum(ours.cpu_ms().values())
        if used > 0:
            ceiling = kit.Ceiling(kit.cores(), used, THROUGHPUT_TARGET * bare.rate)
            print(f"           ours' {ceiling.line(bare.rate, 'saga')}")
    if len(results) > 1:
        mean = sum(ours.rate / bare.rate for bare, ours in results) / len(results)
        print(f"  mean of the rounds: throughput {mean:6.1%}")


async def bench(
    args: argparse.Namespace, stack: kit.Stack, settings: Settings, api_url: str
) -> int:
    """Warm-up checkouts, then each round the bare saga's run and ours, measured."""
    assert settings.database_url
    n, c, warm = args.sagas, args.concurrency, max(2 * args.concurrency, 8)
    users = await make_wallets(settings.database_url, (n + warm) * args.rounds)
    kit.header(
        "redemption benchmark",
        f"{n} sagas per run at concurrency {c}, {args.rounds} round(s)",
        f"worker options {args.tune or 'default'}, DB pool {args.db_pool}, saga version "
        f"{args.saga_version}",
        f"localstripe {'pickling every write' if args.localstripe_pickle else 'in memory'}, "
        f"webhooks after {args.webhook_delay} s",
        f"dev server task-queue reads {'20/s (default)' if args.dev_server_defaults else '1000/s'}"
        f", search attributes "
        f"{'re-read on every use (dev default)' if args.sa_refresh_on_read else 'cached'}, "
        f"workflow sandbox {'on' if args.sandbox else 'off (as shipped)'} in both workers",
        f"event loop {event_loop.chosen()}, payload encryption {args.payload_encryption}",
    )
    results: list[tuple[kit.Phase, kit.Phase]] = []
    async with Checkouts.open(settings, api_url, c, bare_remote=args.bare_remote) as checkouts:
        for r in range(args.rounds):
            mine = users[r * (n + warm) : (r + 1) * (n + warm)]
            await checkouts.bare(warm, f"warm{r}")
            await checkouts.ours(mine[:warm], f"warm{r}")
            runs = {
                "bare": functools.partial(checkouts.bare, n, f"r{r}"),
                "ours": functools.partial(checkouts.ours, mine[warm:], f"r{r}"),
            }
            # The dev server's CPU per saga grows as its in-memory store fills (for both sagas
            # alike), so the one run second pays more: rounds 2, 4, ... run ours first.
            measured: dict[str, kit.Phase] = {}
            for name in ("ours", "bare") if r % 2 else ("bare", "ours"):
                perf_data = {
                    process: stack.root / f"perf-{name}-{r + 1}-{process.replace(' ', '-')}.data"
                    for process in ("temporal", "worker" if name == "ours" else "bare worker")
                }
                cpu = kit.CpuSampler(stack.cpu_groups())
                perf = perf_data if args.perf else {}
                phase = await runs[name](
                    window=functools.partial(server_profile.measuring, cpu, perf, stack.named)
                )
                phase.cpu = cpu.totals()
                print_run(phase)
                if args.perf:
                    server_profile.print_profiles(perf_data, phase.cpu_ms().get("temporal", 0.0))
                measured[name] = phase
            results.append((measured["bare"], measured["ours"]))
    problems = await check_ledger(settings.database_url, users)
    compare(results)
    print(f"ledger after the run: {'OK' if not problems else problems[:5]}")
    return 0 if not problems else 1


async def bench_telemetry(
    args: argparse.Namespace, stack: kit.Stack, settings: Settings, env: dict[str, str]
) -> int:
    """Our sagas under each telemetry mode in turn, the API and worker started afresh for each
    run with the mode's settings; rounds alternate the order of the modes."""
    assert settings.database_url
    modes: list[str] = args.telemetry
    sink = telemetry.start_sink(stack) if {"tracing", "sampled"} & set(modes) else None
    n, c, warm = args.sagas, args.concurrency, max(2 * args.concurrency, 8)
    users = await make_wallets(settings.database_url, (n + warm) * args.rounds * len(modes))
    everyone = list(users)
    kit.header(
        "redemption benchmark: telemetry",
        f"{n} sagas per run at concurrency {c}, {args.rounds} round(s) of {', '.join(modes)}",
        f"metrics scraped every {telemetry.SCRAPE_SECONDS:g} s; spans exported over OTLP/HTTP "
        f"to a stand-in collector (its CPU not counted)",
        f"event loop {event_loop.chosen()}",
    )
    runs: dict[str, list[kit.Phase]] = {mode: [] for mode in modes}
    for r in range(args.rounds):
        for mode in modes if r % 2 == 0 else modes[::-1]:
            mine, users = users[: n + warm], users[n + warm :]
            extra, urls = telemetry.env_for(mode, sink)
            with kit.Stack(stack.root) as service:
                api = start_service(service, settings, {**env, **extra}, args)
                scrape = [f"{api}/metrics", *urls] if urls else []
                async with Checkouts.open(settings, api, c, bare_remote=False) as checkouts:
                    await checkouts.ours(mine[:warm], f"warm-{mode}{r}")
                    groups = {**service.cpu_groups(), **stack.cpu_groups()}
                    groups.pop(telemetry.SINK, None)
                    cpu = kit.CpuSampler(groups)
                    async with telemetry.scraping(scrape):
                        phase = await checkouts.ours(
                            mine[warm:],
                            f"{mode}{r}",
                            window=functools.partial(server_profile.measuring, cpu, {}, {}),
                        )
                    phase.cpu = cpu.totals()
                    phase.name = f"{mode} [{r + 1}]"
                    print_run(phase)
                    runs[mode].append(phase)
    problems = await check_ledger(settings.database_url, everyone)
    telemetry.report(runs, "saga", service=("API", "worker"))
    print(f"ledger after the run: {'OK' if not problems else problems[:5]}")
    return 0 if not problems else 1


# The switches of the run: (option, help).
LEVERS = [
    ("--bare-remote", "the bare saga's hold as a remote activity"),
    ("--localstripe-pickle", "localstripe as shipped: its whole store pickled on every write"),
    ("--dev-server-defaults", "keep the dev server's 20 task-queue reads per second"),
    ("--sandbox", "run both workers' workflows in temporalio's sandbox (WORKFLOW_SANDBOX)"),
    (
        "--sa-refresh-on-read",
        "the dev server re-reads search attributes on every use (its "
        "default; the bench caches them, as a production server does)",
    ),
    (
        "--perf",
        "perf-record the Temporal dev server (its CPU by area) and the run's worker (by "
        "object and thread) in each run",
    ),
    ("--profile", "cProfile the API and the worker"),
]


def main() -> None:
    parser = kit.parser(__doc__)
    option = parser.add_argument
    option("command", nargs="?", choices=["serve-worker"], help=argparse.SUPPRESS)
    option("--sagas", type=int, default=200, help="sagas per run")
    option("--concurrency", type=int, default=4, help="checkout loops")
    option("--rounds", type=int, default=1, help="bare then ours, this many times")
    option(
        "--tune",
        action="append",
        default=[],
        metavar="OPTION=VALUE",
        help="temporalio Worker option of our worker, e.g. max_concurrent_workflow_tasks=50",
    )
    option("--db-pool", type=int, default=10, help="DB_POOL_SIZE of the API and the worker")
    option(
        "--webhook-delay",
        type=float,
        default=0.0,
        help="seconds localstripe waits before each webhook (as shipped: 1)",
    )
    shipped = Settings.model_fields["redemption_saga_version"].default
    option(
        "--saga-version",
        type=int,
        default=shipped,
        choices=(1, 2, 3),
        help=f"REDEMPTION_SAGA_VERSION (as shipped: {shipped})",
    )
    option(
        "--payload-encryption",
        choices=("on", "off"),
        default="on",
        help="encrypt our API's and worker's Temporal payloads (as shipped: on)",
    )
    option("--profile-top", type=int, default=25, help="functions listed by --profile")
    option(
        "--telemetry",
        action="append",
        choices=telemetry.MODES,
        help="measure telemetry's cost instead: run our sagas under each mode given, in turn",
    )
    for lever, help_ in LEVERS:
        option(lever, action="store_true", help=help_)
    args = parser.parse_args()
    if args.command == "serve-worker":
        tune = json.loads(args.tune[0]) if args.tune else {}
        event_loop.run(serve_worker(tune, os.environ.get("BENCH_WORKER_PROFILE")))
        kit.finish(0)
    if args.perf and (problem := server_profile.unavailable()):
        print(f"--perf: {problem}", file=sys.stderr)
        kit.finish(2)
    status = 130
    with kit.workdir("saga", keep=args.keep) as root:
        with contextlib.suppress(KeyboardInterrupt), kit.Stack(root) as stack:
            if args.telemetry:
                settings, env = start_shared(stack, args)  # the migrations run their own loop
                status = event_loop.run(bench_telemetry(args, stack, settings, env))
            else:
                settings, api_url = start_stack(stack, args)
                status = event_loop.run(bench(args, stack, settings, api_url))
        for name, title in (("api.prof", "API (uvicorn)"), ("worker.prof", "worker")):
            if args.profile:
                server_profile.print_profile(title, root / name, args.profile_top)
    kit.finish(status)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
