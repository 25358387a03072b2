"""What the benchmarks share: the stack a run starts for itself (embedded PostgreSQL, the Temporal
dev server, localstripe, the API under uvicorn, workers: each a child process, stopped at the
end), the CPU time of those processes and the ceiling it sets, a lean HTTP/1.1 client for the
load, and how a run is started and printed.

The CPU ceiling: every process of a run shares the machine's cores, so no run can go faster than
`cores / (CPU seconds per operation, all processes together)`. It is optimistic (it ignores
other tenants of a shared box and any idle time), so a target above it cannot be met by more
concurrency or tuning, only by spending less CPU per operation; the budget says how little."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import shutil
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any, NoReturn
from urllib.parse import urlsplit

import psutil

import devstack
from loyalty.core.settings import PROJECT_ROOT, Settings

Groups = dict[str, Callable[[], list[psutil.Process]]]  # process group name -> its processes


# --- the run ---------------------------------------------------------------------------------


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A benchmark's options: its docstring's first line as the description, and `--keep`."""
    found = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    found.add_argument("--keep", action="store_true", help="keep the run's directory and logs")
    return found


@contextlib.contextmanager
def workdir(prefix: str, *, keep: bool = False) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=f"loyalty-bench-{prefix}-"))
    try:
        yield root
    finally:
        if keep:
            print(f"logs kept in {root}", flush=True)
        else:
            shutil.rmtree(root, ignore_errors=True)


def header(title: str, *facts: str) -> None:
    """The run's settings, then what it ran on, in one line."""
    machine = f"{cores()} CPUs, Python {platform.python_version()}"
    print(f"{title}: " + "; ".join([*facts, machine]), flush=True)


def table(heads: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Columns as wide as their widest cell; the first left-aligned, the others right-aligned."""
    cells = [[str(c) for c in row] for row in [heads, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(heads))]
    for row in cells:
        first, *rest = row
        line = f"{first:<{widths[0]}}" + "".join(
            f"  {c:>{w}}" for c, w in zip(rest, widths[1:], strict=True)
        )
        print(line.rstrip())


def finish(status: int) -> NoReturn:
    """Exit now: a process that used temporalio can abort at interpreter shutdown
    (temporalio/sdk-python#300), which would hide the run's status."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def settings_and_env(**values: Any) -> tuple[Settings, dict[str, str]]:
    """Settings for this process, and the same as environment variables for a child's."""
    env = {
        name.upper(): str(value).lower() if isinstance(value, bool) else str(value)
        for name, value in values.items()
    }
    return Settings(**values), env


def service_token(settings: Settings) -> str:
    """A bearer token with the booking service's scope, valid for an hour."""
    from api.auth import SCOPE_SERVICE
    from api.tokens import mint_token

    return mint_token(settings, sub="bench", scopes=[SCOPE_SERVICE], ttl=3600)


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Phase:
    """Operations measured in one window: their latencies (seconds), and the CPU seconds each
    group of processes used meanwhile."""

    name: str
    seconds: float
    latencies: list[float]
    count: float | None = None  # operations done, when the tool counted them (pgbench's rate)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return (len(self.latencies) if self.count is None else self.count) / self.seconds

    def percentile(self, p: float) -> float:
        """Nearest rank; NaN without latencies."""
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    def cpu_ms(self) -> dict[str, float]:
        """CPU ms per operation, by process group."""
        ops = self.rate * self.seconds
        return {group: used * 1000 / ops for group, used in self.cpu.items()} if ops else {}


# --- CPU -------------------------------------------------------------------------------------


def cores() -> int:
    """The cores this process may run on (what the benchmark's processes share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Ceiling:
    cores: int
    used_ms: float  # CPU ms per operation, every process of the run together
    target_rate: float  # operations per second the target asks for

    def __post_init__(self) -> None:
        if self.cores < 1 or self.used_ms <= 0 or self.target_rate <= 0:
            raise ValueError("cores, CPU per operation and target rate must be positive")

    @property
    def rate(self) -> float:
        """The highest rate the measured CPU per operation allows on these cores."""
        return self.cores * 1000 / self.used_ms

    @property
    def budget_ms(self) -> float:
        """The CPU per operation, all processes together, that the target's rate allows."""
        return self.cores * 1000 / self.target_rate

    @property
    def reachable(self) -> bool:
        return self.rate >= self.target_rate

    def line(self, baseline_rate: float, unit: str) -> str:
        return (
            f"CPU ceiling: {self.cores} cores / {self.used_ms:.3g} ms per {unit} = "
            f"{self.rate:.1f} {unit}s/s = {self.rate / baseline_rate:.1%} of the baseline; "
            f"the target ({self.target_rate:.1f}/s) allows {self.budget_ms:.3g} ms per {unit}"
            + ("" if self.reachable else ": out of reach at this CPU per operation")
        )


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (none when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class CpuSampler:
    """CPU seconds used by groups of processes while the block runs, sampled in a thread so
    processes that exit before it ends (pgbench's backends) still count, to within one
    sampling interval."""

    def __init__(self, groups: Groups) -> None:
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
                    key = (name, proc.pid)
                    if key not in self._start:  # a process born inside the block counts from 0
                        before = first or proc.create_time() < self._began
                        self._start[key] = times.user + times.system if before else 0.0
                    self._last[key] = times.user + times.system

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
        for (name, pid), used in self._last.items():
            out[name] += used - self._start[(name, pid)]
        return out


# --- the stack -------------------------------------------------------------------------------

# The API server process: uvicorn on the app of a source tree (this one, or another checkout, to
# compare code in one run), optionally under cProfile. uvicorn re-raises the SIGTERM it handled
# once it has shut down; a Python handler keeps the process alive to write the profile.
_SERVE = """
import cProfile, os, signal, sys
sys.path.insert(0, {source!r})
os.chdir({source!r})  # the service reads a .env file in its working directory
import uvicorn
from api.app import create_app
signal.signal(signal.SIGTERM, lambda *_: None)
options = dict(host="127.0.0.1", port={port}, access_log=False, log_level="warning",
               loop={loop!r}, http={http!r})
if {workers} > 1:  # uvicorn's supervisor and worker processes, each with the app and its pool
    uvicorn.run("api.app:create_app", factory=True, workers={workers}, **options)
    sys.exit(0)
server = uvicorn.Server(uvicorn.Config(create_app(), **options))
profiler = cProfile.Profile() if {profile!r} else None
if profiler is not None:
    profiler.enable()
server.run()
if profiler is not None:
    profiler.disable()
    profiler.dump_stats({profile!r})
sys.exit(0 if server.started else 1)
"""


class Stack(contextlib.ExitStack):
    """The child processes of one run, their files in `root`. Leaving the block stops them,
    the last started first; `named` keeps each one's pid for the CPU accounting."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.named: dict[str, int] = {}
        # Set by `postgres`: the migration owner's URL (for seeding what the service may not
        # write) and an administrator's (for creating databases beside it).
        self.owner_url = ""
        self.admin_url = ""

    def cpu_groups(self) -> Groups:
        me = psutil.Process()
        groups: Groups = {"bench client": lambda: [me]}
        for name, pid in self.named.items():
            groups[name] = lambda pid=pid: tree(pid)  # type: ignore[misc]
        return groups

    def postgres(self, database: str = "loyalty_bench", *, from_env: bool = False) -> str:
        """A migrated database, and the URL the service uses for it (the application role's):
        embedded PostgreSQL's (its roles made by the superuser, migrated as the owner), or with
        `from_env` DATABASE_URL's, migrated as MIGRATION_DATABASE_URL (default DATABASE_URL),
        which also seeds and creates databases."""
        url = os.environ.get("DATABASE_URL") if from_env else None
        if url is None:
            warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")  # harmless here
            pg = devstack.EmbeddedPostgres(self.root / "pg", delete_on_stop=True)
            self.callback(pg.stop)
            service = pg.service_database(database)
            pid_file = self.root / "pg" / "postmaster.pid"
            self.named["postgres"] = int(pid_file.read_text().split()[0])
            self.owner_url, self.admin_url = service.owner_url, pg.uri(database)
            return service.app_url
        self.owner_url = self.admin_url = os.environ.get("MIGRATION_DATABASE_URL") or url
        devstack.run_migrations(self.owner_url)
        return url

    def temporal(self, *, from_env: bool = False, **options: Any) -> str:
        """The address of a headless in-memory dev server (or TEMPORAL_ADDRESS's, `from_env`)."""
        address = os.environ.get("TEMPORAL_ADDRESS") if from_env else None
        if address is None:
            port, log = devstack.free_port(), self.root / "temporal.log"
            proc = devstack.start_temporal(
                port=port, ui_port=None, db_file=None, log_file=log, **options
            )
            self.own("temporal", proc)
            address = f"127.0.0.1:{port}"
        return address

    def api(
        self,
        env: dict[str, str],
        *,
        source: Path = PROJECT_ROOT,
        loop: str = "auto",
        http: str = "auto",
        workers: int = 1,
        profile: Path | None = None,
    ) -> str:
        """The URL of the API of `source` (this checkout, or another to compare code in one
        run) under uvicorn (`loop`, `http`: its options) on a free loopback port, its settings
        from `env`."""
        port = devstack.free_port()
        code = _SERVE.format(
            source=str(source),
            port=port,
            loop=loop,
            http=http,
            workers=workers,
            profile=str(profile or ""),
        )
        proc = self.start("API", [sys.executable, "-c", code], env)
        devstack.wait_for_http(f"http://127.0.0.1:{port}/health", timeout=60, proc=proc)
        return f"http://127.0.0.1:{port}"

    def worker(self, name: str, argv: Sequence[str], env: dict[str, str]) -> Popen:
        """A Python worker process, once its log says it started on its task queue."""
        proc = self.start(name, [sys.executable, *argv], env)
        log = self.root / f"{name.replace(' ', '-')}.log"
        deadline = time.monotonic() + 60
        while "started on task queue" not in (log.read_text() if log.exists() else ""):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log.read_text()}")
            time.sleep(0.1)
        return proc

    def start(self, name: str, cmd: Sequence[str], env: dict[str, str] | None = None) -> Popen:
        """A child process, its output in `name`.log."""
        log = self.root / f"{name.replace(' ', '-')}.log"
        return self.own(name, devstack.start_process(cmd, log_file=log, env=env))

    def own(self, name: str, proc: Popen) -> Popen:
        """Stop `proc` with the stack; count its CPU as `name`'s."""
        self.callback(devstack.stop_process, proc, timeout=30)
        self.named[name] = proc.pid
        return proc


class RawHttpConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams, like wrk's: the load generator
    shares the service's cores, so it should cost little CPU (httpx: about 1.5 ms a request).
    It reads exactly Content-Length bytes, which uvicorn always sends for this API's JSON."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._request = f"POST %s HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n{head}"
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._host, self._port)
        reader, writer = self._streams
        request = self._request % path + "Content-Type: application/json\r\n"
        writer.write(f"{request}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if not head.startswith(b"HTTP/1.") or length is None or b"chunked" in head.lower():
            raise RuntimeError(f"not an HTTP/1.x response with Content-Length: {head!r}")
        content = await reader.readexactly(int(length.group(1)))
        if re.search(rb"(?im)^connection:\s*close", head):
            await self.close()
        return int(head.split(b" ", 2)[1]), content

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
