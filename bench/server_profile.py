"""Where the Temporal dev server spends its CPU: `perf record` of its process during a run, the
samples named with bench/go_symbols.py (the binary is stripped), and each sample counted for
every area of the server on its call stack. For a worker (Python), the samples by the object
and the thread they ran in.

Used by `bench/redemption.py --perf`. Needs Linux `perf` (Debian: linux-perf) allowed to
profile the user's own processes (kernel.perf_event_paranoid <= 2, the default)."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.go_symbols import GoSymbols

SAMPLES_PER_SECOND = 499

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
    return None


class Recording:
    """`with Recording(pid, out):` samples the process `pid` (with call stacks) into `out`."""

    def __init__(self, pid: int, out: Path) -> None:
        self._command = [
            "perf", "record", "-q", "-g", "-F", str(SAMPLES_PER_SECOND),
            "-p", str(pid), "-o", str(out),
        ]  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Recording:
        self._proc = subprocess.Popen(
            self._command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.send_signal(signal.SIGINT)  # perf writes its file and exits
        _, err = self._proc.communicate(timeout=60)
        if self._proc.returncode not in (0, -signal.SIGINT):
            raise RuntimeError(f"perf record failed: {err.decode(errors='replace')}")


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
