"""Log lines as JSON (LOG_FORMAT=json): a refusal is one line at info naming the request, the
booking and the workflow; an unexpected error carries its traceback."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from temporalio.client import Client

from api.app import create_app
from api.temporal import checkout
from loyalty.core.errors import InsufficientPoints
from loyalty.core.settings import Settings
from loyalty.observability.logs import JsonFormatter
from loyalty.redemption.contracts import RedeemRequest
from tests.harness.api import in_process
from tests.harness.workers import WorkerProcess
from tests.redemption.helpers import wait_for_end


@pytest.fixture
def api_log() -> Iterator[io.StringIO]:
    """The API's log lines, formatted as LOG_FORMAT=json formats them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("loyalty.api")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_a_refused_request_is_one_info_line_with_its_request_id(
    api, auth, api_log: io.StringIO
) -> None:
    user = "user-without-wallet"
    response = await api.http.get(
        f"/wallets/{user}", headers={**auth.customer(user), "X-Request-ID": "req-42"}
    )
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "req-42"
    [line] = _lines(api_log.getvalue())
    assert line["level"] == "info"
    assert line["request_id"] == "req-42"
    assert "404 wallet_not_found" in line["message"]
    assert "exception" not in line


async def test_an_unexpected_error_is_logged_with_its_traceback(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, api_log: io.StringIO
) -> None:
    boom = APIRouter()

    @boom.get("/boom")
    async def explode() -> None:
        """Fails."""
        raise RuntimeError("kaboom")

    monkeypatch.setattr("api.app.ROUTERS", [boom])
    async with in_process(create_app(settings), raise_app_exceptions=False) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]  # made up by the API
    [line] = _lines(api_log.getvalue())
    assert (line["level"], line["request_id"]) == ("error", request_id)
    assert "Traceback" in line["exception"] and "RuntimeError: kaboom" in line["exception"]


async def test_the_worker_logs_a_refusal_as_one_json_line(
    worker_process: WorkerProcess,
    temporal_client: Client,
    settings: Settings,
    make_wallet,
    booking_id: str,
    tmp_path: Path,
) -> None:
    user = await make_wallet(1_000)
    worker_process.env["LOG_FORMAT"] = "json"
    await worker_process.start()
    with pytest.raises(InsufficientPoints):
        await checkout.redeem(
            temporal_client,
            settings,
            RedeemRequest(user_id=user, booking_id=booking_id, order_amount=100_000,
                          currency="VND", points=5_000),
        )  # fmt: skip
    final = await wait_for_end(temporal_client, booking_id)
    worker_process.stop_all()

    log = (tmp_path / "worker-0.log").read_text()
    refusals = [line for line in _lines(log) if "refused: " in line["message"]]
    assert len(refusals) == 1, log
    [refusal] = refusals
    assert refusal["level"] == "info"
    assert refusal["message"].startswith("refused: insufficient_points: ")
    assert (refusal["booking_id"], refusal["workflow_id"]) == (booking_id, final.workflow_id)
    assert "exception" not in refusal and "Traceback" not in log
