"""Run pytest and exit with its real status, immune to the Temporal SDK's crash at interpreter
shutdown (temporalio/sdk-python#300: a finished, green run can still abort with status 134).

    python scripts/pytest_run.py [pytest args...]
"""

from __future__ import annotations

import os
import sys

import pytest


def main() -> None:
    code = int(pytest.main(sys.argv[1:]))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
