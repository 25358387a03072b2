"""The embedded stack and the run command (`make run`), end to end on free ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

import devstack
from loyalty.core.settings import PROJECT_ROOT


def test_embedded_postgres_keeps_data_across_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "pg"
    pg = devstack.EmbeddedPostgres(data_dir)
    try:
        pg.ensure_database("keep")
        pg._server.psql("SELECT 1")  # server answers
        subprocess.run(
            [str(pg.bin_dir / "psql"), pg.uri("keep"), "-c", "CREATE TABLE t AS SELECT 42 AS v"],
            check=True,
            capture_output=True,
        )
    finally:
        pg.stop()
    assert not (data_dir / "postmaster.pid").exists()

    pg = devstack.EmbeddedPostgres(data_dir, delete_on_stop=True)
    try:
        assert pg.ensure_database("keep") == pg.uri("keep")  # idempotent
        out = subprocess.run(
            [str(pg.bin_dir / "psql"), pg.uri("keep"), "-tAc", "SELECT v FROM t"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        assert out.strip() == "42"
    finally:
        pg.stop()


class RunCommand:
    """`python scripts/run.py` on free ports with its own var dir, output collected."""

    def __init__(self, var_dir: Path, **env: str) -> None:
        self.ports = {
            "API_PORT": devstack.free_port(),
            "TEMPORAL_PORT": devstack.free_port(),
            "TEMPORAL_UI_PORT": devstack.free_port(),
            "LOCALSTRIPE_PORT": devstack.free_port(),
            "WORKER_METRICS_PORT": devstack.free_port(),
            "TEMPORAL_SDK_METRICS_PORT": devstack.free_port(),
            "KAFKA_PORT": devstack.free_port(),
        }
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_", "TEMPORAL_", "STRIPE_", "API_", "KAFKA_"))
        }
        self.proc = subprocess.Popen(
            [sys.executable, "scripts/run.py"],
            cwd=PROJECT_ROOT,
            env={
                **base,
                **{k: str(v) for k, v in self.ports.items()},
                "VAR_DIR": str(var_dir),
                **env,
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in the run command's output:\n{self.output}")
            time.sleep(0.2)

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children(recursive=True)

    def finish(self, timeout: float = 90) -> int:
        try:
            status = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(5)
        return status


def _get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return int(resp.status)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _gone(procs: list[psutil.Process], timeout: float = 10) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return alive


def test_run_command_serves_everything_and_sigint_stops_it(tmp_path: Path) -> None:
    run = RunCommand(tmp_path / "var")
    try:
        run.wait_for_line("Ctrl-C stops everything", timeout=180)
        ports = run.ports
        assert f"API docs:     http://127.0.0.1:{ports['API_PORT']}/docs" in run.output
        assert f"Temporal UI:  http://127.0.0.1:{ports['TEMPORAL_UI_PORT']}" in run.output
        assert _get(f"http://127.0.0.1:{ports['API_PORT']}/docs") == 200
        assert _get(f"http://127.0.0.1:{ports['TEMPORAL_UI_PORT']}") == 200
        # The UI decrypts payloads through the API's codec server; the development key was
        # generated under VAR_DIR, readable by its owner only.
        ui_settings = _get_json(f"http://127.0.0.1:{ports['TEMPORAL_UI_PORT']}/api/v1/settings")
        codec = f"http://127.0.0.1:{ports['API_PORT']}/codec"
        assert ui_settings["Codec"]["Endpoint"] == codec, ui_settings
        keys = tmp_path / "var" / "temporal-payload-keys"
        assert keys.stat().st_mode & 0o777 == 0o600
        # Metrics on: the API's, the worker's and the Temporal SDK's of the worker.
        for url in (
            f"http://127.0.0.1:{ports['API_PORT']}/metrics",
            f"http://127.0.0.1:{ports['WORKER_METRICS_PORT']}/metrics",
            f"http://127.0.0.1:{ports['TEMPORAL_SDK_METRICS_PORT']}/metrics",
        ):
            assert _get(url) == 200, url
        assert _get(f"http://127.0.0.1:{ports['API_PORT']}/health/ready") == 200
        assert "worker    | worker: started on task queue 'loyalty'" in run.output
        assert f"Kafka:        127.0.0.1:{ports['KAFKA_PORT']} (Tansu" in run.output
        assert "consuming booking.events, payment.events as group loyalty-intake" in run.output
        assert "relaying the outbox to loyalty.events" in run.output
        children = run.descendants()
        names = " ".join(" ".join(p.cmdline()) for p in children)
        for part in (
            "temporal",
            "localstripe",
            "worker.py",
            "serve_api.py",
            "tansu",
            "streams.consumer",
            "streams.relay",
        ):
            assert part in names, names
        run.proc.send_signal(signal.SIGINT)
        assert run.finish() == 0, run.output
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert _gone(children) == []
    assert "run       | all stopped" in run.output
    assert not (tmp_path / "var" / "postgres" / "postmaster.pid").exists()
    assert (tmp_path / "var" / "temporal.db").exists()
    assert (tmp_path / "var" / "logs" / "worker.log").read_text().count("worker: stopped") == 1


def test_run_command_fails_clearly_when_the_api_cannot_start(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is not an address of this machine: uvicorn cannot bind it.
    run = RunCommand(tmp_path / "var", API_HOST="192.0.2.1")
    try:
        status = run.finish(timeout=180)
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert status == 1, run.output
    assert "run       | error: the API did not come up at http://192.0.2.1:" in run.output
    assert "run       | all stopped" in run.output
    assert not (tmp_path / "var" / "postgres" / "postmaster.pid").exists()


def test_run_command_refuses_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = RunCommand(tmp_path / "var", API_PORT=str(port))
        status = run.finish(timeout=60)
    assert status == 1
    assert f"port {port} is already in use" in run.output
    assert "set API_PORT to a free port" in run.output


def test_run_command_stops_on_sigterm_during_startup(tmp_path: Path) -> None:
    run = RunCommand(tmp_path / "var")
    try:
        run.wait_for_line("Temporal: ready", timeout=120)
        children = run.descendants()
        run.proc.send_signal(signal.SIGTERM)
        assert run.finish() == 0, run.output
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
    assert _gone(children) == []
    assert "SIGTERM received; stopping" in run.output
    assert not (tmp_path / "var" / "postgres" / "postmaster.pid").exists()
