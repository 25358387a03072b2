"""Where the processes of a run spend their CPU.

- Our Python processes (the API, the worker, the ledger's module phase), under cProfile
  (`--profile` of bench/ledger.py and bench/redemption.py): own time by package, then by
  function (print_profile).
- The Temporal dev server: `perf record` of its process during a run, the samples named with
  bench/go_symbols.py (the binary is stripped), and each sample counted for every area of the
  server on its call stack. For a worker (Python), the samples by the object and the thread
  they ran in. Used by `bench/redemption.py --perf`; needs Linux `perf` (Debian: linux-perf)
  allowed to profile the user's own processes (kernel.perf_event_paranoid <= 2, the default)."""

from __future__ import annotations

import contextlib
import cProfile
import functools
import io
import pstats
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import devstack
from bench.go_symbols import GoSymbols
from loyalty.core.settings import PROJECT_ROOT

SAMPLES_PER_SECOND = 499
STARTUP_SECONDS = 10.0

_HISTORY = "go.temporal.io/server/service/history."
_VISIBILITY = _HISTORY + "(*visibilityQueueTaskExecutor)."
# (label, a part of a function name): a sample counts for an area when any frame of its stack
# matches. Areas overlap (the visibility writes' SQLite is also in "SQLite, all").
AREAS: list[tuple[str, str]] = [
    ("visibility records (SQLite)", _VISIBILITY + "Execute"),
    ("  started", _VISIBILITY + "processStartExecution"),
    ("  search attributes upserted", _VISIBILITY + "processUpsertExecution"),
    ("  closed", _VISIBILITY + "processCloseExecution"),
    ("workflow task started", _HISTORY + "(*Handler).RecordWorkflowTaskStarted"),
    ("workflow task completed", _HISTORY + "(*Handler).RespondWorkflowTaskCompleted"),
    ("update-with-start", _HISTORY + "(*Handler).ExecuteMultiOperation"),
    ("signal", _HISTORY + "(*Handler).SignalWorkflowExecution"),
    ("transfer and timer queues", "QueueActiveTaskExecutor).Execute"),
    ("frontend service", "go.temporal.io/server/service/frontend."),
    ("matching service", "go.temporal.io/server/service/matching."),
    ("search-attribute cache refresh", "searchattribute.(*managerImpl).refreshCache"),
    ("SQLite statement preparation", "modernc.org/sqlite.newStmt"),
    ("SQLite, all", "modernc.org/sqlite"),
    ("Go garbage collector", "runtime.gcBgMarkWorker"),
]


def print_profile(title: str, profile: cProfile.Profile | Path, limit: int = 25) -> None:
    """Own time by package, the top functions by own time, then the project's functions by
    cumulative time (for a coroutine, the time of its steps, not the time it waited), of a
    profiler or of the file a process dumped its profile in."""
    if isinstance(profile, Path) and not profile.exists():
        print(f"(no profile at {profile})")
        return
    stats = pstats.Stats(str(profile) if isinstance(profile, Path) else profile)
    by_package: dict[str, float] = {}
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, _name), (_cc, _nc, own, *_rest) in raw.items():
        by_package[_package(filename)] = by_package.get(_package(filename), 0.0) + own
    total = sum(by_package.values()) or 1.0
    print(f"\n--- {title}: own time by package (includes waiting in epoll) ---")
    for package, seconds in sorted(by_package.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {package:24} {seconds:8.3f} s {seconds / total:6.1%}")
    for heading, sort, pattern in (
        (f"top {limit} functions by own time", "tottime", ""),
        ("project functions by cumulative time", "cumulative", rf"{PROJECT_ROOT}/[a-z]+/"),
    ):
        stats.stream = out = io.StringIO()  # type: ignore[attr-defined]
        stats.sort_stats(sort).print_stats(pattern, limit)
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        print(f"\n--- {title}: {heading} ---")
        print("\n".join(line.replace(f"{PROJECT_ROOT}/", "") for line in lines[-limit - 1 :]))


def _package(filename: str) -> str:
    """What a profiled function belongs to: a site-packages distribution, the project's own
    top-level package, the standard library, or a built-in."""
    if filename.startswith(("~", "<")):
        return "(built-in / C)"
    if match := re.search(r"site-packages/([A-Za-z0-9_]+)", filename):
        return match.group(1)
    if filename.startswith(f"{PROJECT_ROOT}/"):
        return filename.removeprefix(f"{PROJECT_ROOT}/").split("/")[0]
    return "(stdlib)"


def unavailable() -> str | None:
    """Why perf cannot profile here, or None."""
    if shutil.which("perf") is None:
        return "perf is not installed (Debian: apt install linux-perf)"
    try:
        paranoid = int(Path("/proc/sys/kernel/perf_event_paranoid").read_text())
    except (OSError, ValueError):
        return None
    if paranoid > 2:
        return f"kernel.perf_event_paranoid is {paranoid}; perf needs 2 or less"
    return _probe()


@functools.cache
def _probe() -> str | None:
    """Record a short-lived process the way a run records the server, then read the recording
    back: some machines allow perf but give it nothing to sample (a container without the
    events), and only trying tells."""
    with tempfile.TemporaryDirectory(prefix="loyalty-perf-probe-") as tmp:
        data = Path(tmp) / "probe.data"
        sleeper = subprocess.Popen(["sleep", "5"])
        try:
            with Recording(sleeper.pid, data):
                time.sleep(0.3)
            _perf_script(data, "ip,dso")
        except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", None) or str(exc)
            return f"perf cannot record and read back a process here: {detail.strip()}"
        finally:
            sleeper.kill()
            sleeper.wait()
    return None


class Recording:
    """`with Recording(pid, out):` samples the process `pid` (with call stacks) into `out`."""

    def __init__(self, pid: int, out: Path) -> None:
        self._command = [
            "perf", "record", "-q", "-g", "-F", str(SAMPLES_PER_SECOND),
            "-p", str(pid), "-o", str(out),
        ]  # fmt: skip
        self._out = out
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Recording:
        self._proc = subprocess.Popen(
            self._command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        # perf writes its file's header only once it is sampling (some 100 ms in, more on a busy
        # machine); a SIGINT before that kills it with nothing written, and a short run's window
        # can be shorter than that.
        deadline = time.monotonic() + STARTUP_SECONDS
        while not (self._out.exists() and self._out.stat().st_size > 0):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"perf record did not start within {STARTUP_SECONDS} s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGINT)  # perf writes its file and exits
        _, err = self._proc.communicate(timeout=60)
        if self._proc.returncode not in (0, -signal.SIGINT):
            raise RuntimeError(f"perf record failed: {err.decode(errors='replace')}")
        if not self._out.exists() or self._out.stat().st_size == 0:
            raise RuntimeError(f"perf record wrote nothing: {err.decode(errors='replace')}")


@contextlib.contextmanager
def measuring(
    cpu: contextlib.AbstractContextManager[object], perf: dict[str, Path], pids: dict[str, int]
) -> Iterator[None]:
    """A run's measuring window: `cpu` (its CPU sampler) entered, and perf recording the
    processes named in `perf` into their files."""
    with contextlib.ExitStack() as recording:
        for process, data in perf.items():
            recording.enter_context(Recording(pids[process], data))
        with cpu:
            yield


def print_profiles(perf_data: dict[str, Path], server_ms: float) -> None:
    """The Temporal server's samples by area (with `server_ms`, its CPU ms per saga), and the
    worker's by object and thread."""
    found = breakdown(stacks(perf_data["temporal"], Path(devstack.venv_bin("temporal"))))
    print(f"            Temporal server, {found.samples} perf samples:")
    print("\n".join(found.lines(server_ms)))
    worker, data = next((p, d) for p, d in perf_data.items() if p != "temporal")
    total, objects, threads = where_spent(data)
    print(f"            {worker}, {total} perf samples:")
    print(shares_line("by object", objects, total))
    print(shares_line("by thread", threads, total), flush=True)


def stacks(data: Path, binary: Path) -> Iterator[list[str]]:
    """The recorded samples, each its stack of function names (leaf first); frames outside the
    binary (kernel, vdso) by their object's name."""
    yield from parse_script(_perf_script(data, "ip,dso"), GoSymbols(binary), binary)


def _perf_script(data: Path, fields: str) -> str:
    """The samples of `data` as text, with these fields per sample and frame."""
    command = ["perf", "script", "-i", str(data), "-F", fields]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def parse_script(script: str, symbols: GoSymbols, binary: Path) -> Iterator[list[str]]:
    """Samples of `perf script -F ip,dso` output: blank-line separated, a frame per line as
    `<address> (<object>)`. perf prints an unnamed frame's address as an offset into the object's
    mapping, which for the (non-PIE) Go binary starts at its image base."""
    stack: list[str] = []
    for line in script.splitlines():
        parts = line.split()
        if not parts:
            if stack:
                yield stack
            stack = []
            continue
        try:
            address = int(parts[0], 16)
        except ValueError:
            continue
        obj = parts[-1].strip("()")
        name = None
        if Path(obj).name == binary.name:
            name = symbols.name(address + symbols.image_base)
        stack.append(name or obj)
    if stack:
        yield stack


def where_spent(data: Path) -> tuple[int, Counter[str], Counter[str]]:
    """For a process without names for its frames (a Python worker): the samples, counted by
    the object their innermost frame runs in (libpython, the kernel, a native extension) and by
    thread name."""
    return count_leaves(_perf_script(data, "comm,ip,dso"))


def count_leaves(script: str) -> tuple[int, Counter[str], Counter[str]]:
    """`perf script -F comm,ip,dso` output: a sample is its thread's name on a line of its own,
    then its frames (innermost first), then a blank line."""
    samples, objects, threads = 0, Counter[str](), Counter[str]()
    leaf_next = False
    for line in script.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            samples += 1
            threads[line.strip()] += 1
            leaf_next = True
        elif leaf_next:
            objects[Path(line.split()[-1].strip("()")).name] += 1
            leaf_next = False
    return samples, objects, threads


def shares_line(title: str, counts: Counter[str], total: int, top: int = 6) -> str:
    parts = ", ".join(f"{name} {n / total:.1%}" for name, n in counts.most_common(top))
    return f"    {title}: {parts}"


@dataclass
class Breakdown:
    samples: int
    by_area: dict[str, int]

    def lines(self, cpu_ms_per_saga: float) -> list[str]:
        """Each area's share of the samples, and that share of the server's CPU per saga."""
        out = [f"    {'area (inclusive; areas overlap)':40s} {'share':>6s} {'ms/saga':>8s}"]
        for label, _ in AREAS:
            share = self.by_area[label] / self.samples if self.samples else 0.0
            out.append(f"    {label:40s} {share:6.1%} {share * cpu_ms_per_saga:8.2f}")
        return out


def breakdown(samples: Iterator[list[str]]) -> Breakdown:
    total = 0
    counts = dict.fromkeys((label for label, _ in AREAS), 0)
    for stack in samples:
        total += 1
        for label, pattern in AREAS:
            if any(pattern in frame for frame in stack):
                counts[label] += 1
    return Breakdown(total, counts)
