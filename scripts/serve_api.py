"""Serve the API with uvicorn on settings.api_host:api_port (what `make run` starts).

    python scripts/serve_api.py

Equivalent to `uvicorn --factory api.app:create_app --host ... --port ...`; this wrapper exists
so the process exits with uvicorn's real status even when the Temporal SDK aborts during
interpreter shutdown (temporalio/sdk-python#300)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn

from loyalty.settings import Settings


def main() -> int:
    from api.app import create_app

    settings = Settings()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.api_host,
            port=settings.api_port,
            log_level="info",
            timeout_graceful_shutdown=10,
        )
    )
    server.run()
    # uvicorn sets should_exit on SIGINT/SIGTERM; started == False means it never served.
    return 0 if server.started else 1


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
