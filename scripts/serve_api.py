"""Serve the API with uvicorn on settings.api_host:api_port (what `make run` starts).

    python scripts/serve_api.py

Equivalent to `uvicorn --factory api.app:create_app --host ... --port ...`; this wrapper exists
so the process exits with uvicorn's real status even when the Temporal SDK aborts during
interpreter shutdown (temporalio/sdk-python#300). uvicorn runs on uvloop and httptools (project
dependencies; its `auto` settings pick them). WEB_CONCURRENCY (uvicorn's own variable) sets the
number of worker processes, default 1: one process is CPU-bound on one core, so on a box with
spare cores 2 serve more (bench/ledger.py --api-workers 2); each has a pool of DB_POOL_SIZE."""

from __future__ import annotations

import os
import sys

import uvicorn

from loyalty.core.settings import Settings
from loyalty.observability import logs, tracing


def main() -> int:
    from api.app import create_app

    settings = Settings()
    # Our log format for uvicorn's lines too (log_config=None: uvicorn leaves logging alone).
    logs.configure(settings.log_format)
    workers = int(os.environ.get("WEB_CONCURRENCY") or 1)
    if workers > 1:  # a supervisor and its worker processes, each making the app itself
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            workers=workers,
            host=settings.api_host,
            port=settings.api_port,
            log_level="info",
            log_config=None,
            timeout_graceful_shutdown=10,
        )
        return 0
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.api_host,
            port=settings.api_port,
            log_level="info",
            log_config=None,
            timeout_graceful_shutdown=10,
        )
    )
    server.run()
    tracing.shutdown()  # the spans still batched
    # uvicorn sets should_exit on SIGINT/SIGTERM; started == False means it never served.
    return 0 if server.started else 1


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
