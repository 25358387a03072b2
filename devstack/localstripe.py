"""localstripe as a child process (devstack.localstripe_server: state in memory only), and the
form that points its signed webhooks at the API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from devstack.processes import start_process, wait_for_port


def localstripe_command(port: int) -> list[str]:
    """localstripe on `port`, state in memory only (see devstack.localstripe_server)."""
    return [sys.executable, "-m", "devstack.localstripe_server", "--port", str(port)]


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
    from loyalty.redemption.stripe_events import WEBHOOK_EVENTS

    return {"url": url, "secret": secret, "events[]": list(WEBHOOK_EVENTS)}
