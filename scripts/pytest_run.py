"""Run pytest and exit with its real status, immune to the Temporal SDK's crash at interpreter
shutdown (temporalio/sdk-python#300: a finished, green run can still abort with status 134).

    python scripts/pytest_run.py [pytest args...]

Each run gets a base temporary directory of its own (unless the arguments give --basetemp):
pytest's default is one per user, shared by every run and pruned by each, so two runs on one
machine could delete each other's files (PostgreSQL data directories included). It is removed
after a run that passed and kept, with its path printed, after one that did not.

First it installs Debian's chromium for the browser tests when it is missing and it can (root):
scripts/chromium.py.

Without arguments (`make test`, CI) it runs the whole suite in two pytest processes, one after
the other, and exits with the worse status:
1. every test not marked `serial`, spread over xdist workers (one per core, at most 4). Each
   worker starts its own PostgreSQL, Temporal dev server and localstripe, and tests isolate by
   their own users and task queues, so they run side by side as they do one after another;
2. the tests marked `serial` (the schemathesis fuzz: its parametrized tests share one node id
   per function, which xdist cannot tell apart), in one process.
With arguments it runs pytest with exactly those (add `-n 2` for workers).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chromium import ensure_chromium


def _gives_basetemp(args: list[str]) -> bool:
    given = [*args, *shlex.split(os.environ.get("PYTEST_ADDOPTS", ""))]
    return any(arg == "--basetemp" or arg.startswith("--basetemp=") for arg in given)


def _remove(path: Path) -> None:
    # A server stopped at teardown (PostgreSQL) can still be writing its last files for a moment.
    for _ in range(20):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.25)
    print(f"pytest_run: could not remove {path}", file=sys.stderr)


MAX_WORKERS = 4


def whole_suite() -> int:
    workers = max(1, min(MAX_WORKERS, os.cpu_count() or 1))
    phases = [
        ["-n", str(workers), "--dist", "loadfile", "-m", "not serial"],
        ["-m", "serial"],
    ]
    status = 0
    for phase in phases:
        print(f"pytest_run: pytest {' '.join(phase)}", file=sys.stderr, flush=True)
        code = subprocess.run([sys.executable, __file__, *phase], check=False).returncode
        status = status or code
    return status


def main() -> None:
    args = sys.argv[1:]
    ensure_chromium()  # the browser tests (tests/browser) skip without it
    if not args:
        os._exit(whole_suite())
    basetemp: Path | None = None
    if not _gives_basetemp(args):
        basetemp = Path(tempfile.mkdtemp(prefix="loyalty-pytest-"))
        args = [f"--basetemp={basetemp}", *args]
    code = int(pytest.main(args))
    if basetemp is not None:
        # pytest fills it only once a test asks for a temporary directory: a run that stopped at
        # collection leaves it empty, with nothing to look at.
        passed = code in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
        empty = not basetemp.exists() or not any(basetemp.iterdir())
        if passed or empty:
            _remove(basetemp)
        else:
            print(f"pytest_run: this run's temporary files are kept in {basetemp}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
