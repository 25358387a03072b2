"""Both metrics endpoints after one checkout and one earn: the API's /metrics and the worker's
port (a `python worker.py` process, as shipped), and the Temporal SDK's port of that worker.
Business counters move by exactly what those operations posted, and a replay moves nothing."""

from __future__ import annotations

import stripe
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

import devstack
from tests.harness.api import Api
from tests.harness.workers import WorkerProcess
from tests.observability.deploy_config import panel_metrics
from tests.observability.scrape import moved, names, scrape, value
from tests.redemption.helpers import pay, redeem, wait_for_end

# The SDK's own metrics the dashboard and operators rely on (docs/operations.md).
SDK_METRICS = {
    "temporal_workflow_task_execution_latency_bucket",
    "temporal_workflow_task_schedule_to_start_latency_bucket",
    "temporal_local_activity_execution_latency_bucket",
    "temporal_sticky_cache_size",
}


async def test_both_endpoints_count_exactly_one_checkout_and_one_earn(
    live_api: Api,
    worker_process: WorkerProcess,
    temporal_client: Client,
    engine: AsyncEngine,
    stripe_client: stripe.StripeClient,
    make_wallet,
    new_user_id,
    booking_id: str,
) -> None:
    worker_port, sdk_port = devstack.free_port(), devstack.free_port()
    worker_process.env |= {
        "WORKER_METRICS_PORT": str(worker_port),
        "TEMPORAL_SDK_METRICS_PORT": str(sdk_port),
    }
    shopper = await make_wallet(50_000)
    await worker_process.start()
    worker_url = f"http://127.0.0.1:{worker_port}/metrics"
    api_before = await scrape("/metrics", live_api.http)
    worker_before = await scrape(worker_url)

    # One checkout, paid and captured by the worker process.
    answer = await redeem(live_api, shopper, booking_id, points=30_000)
    assert answer.status_code == 200, answer.text
    during = await scrape("/metrics", live_api.http)
    assert value(during, "loyalty_holds_open") >= 1  # read from PostgreSQL at scrape time
    assert value(during, "loyalty_holds_open_points") >= 30_000
    await pay(stripe_client, answer.json()["payment_intent_id"])
    assert (await wait_for_end(temporal_client, booking_id)).status == "captured"

    # One earn, posted by the API, then its replay (same payment: nothing new is posted).
    earner = new_user_id()
    earn = {"booking_id": f"bk-{earner}", "amount_paid": 149_999, "currency": "VND"}
    earn["payment_id"] = f"pi-{earner}"
    for _ in range(2):
        response = await live_api.http.post(
            f"/wallets/{earner}/earn", json=earn, headers=live_api.service
        )
        assert response.status_code in (200, 201), response.text
    assert response.json()["replayed"] is True

    api_after = await scrape("/metrics", live_api.http)
    worker_after = await scrape(worker_url)

    def api(name: str, **labels: str) -> float:
        return moved(api_before, api_after, name, **labels)

    def worker(name: str, **labels: str) -> float:
        return moved(worker_before, worker_after, name, **labels)

    points, postings = "loyalty_ledger_points_total", "loyalty_ledger_postings_total"
    # The worker held and captured the checkout's points, and earned nothing.
    assert worker(postings, type="hold") == 1
    assert worker(points, type="hold", direction="hold") == 30_000
    assert worker(postings, type="capture") == 1
    assert worker(points, type="capture", direction="debit") == 30_000
    assert worker("loyalty_checkouts_total", outcome="captured") == 1
    assert worker("loyalty_checkouts_total", outcome="released") == 0
    assert worker(postings, type="earn") == 0
    assert worker("loyalty_hold_duration_seconds_count") == 1
    # The API earned once (its replay counts nothing) and posted nothing for the checkout.
    assert api(postings, type="earn") == 1
    assert api(points, type="earn", direction="credit") == 149
    assert api(postings, type="hold") == api(postings, type="capture") == 0
    assert api("loyalty_checkouts_total", outcome="captured") == 0
    # Requests by route template and status.
    redeem_route = {"method": "POST", "route": "/wallets/{userId}/redeem"}
    assert api("loyalty_http_requests_total", **redeem_route, status="200") == 1
    assert api("loyalty_http_request_duration_seconds_count", **redeem_route) == 1
    earn_route = {"method": "POST", "route": "/wallets/{userId}/earn"}
    assert api("loyalty_http_request_duration_seconds_count", **earn_route) == 2
    assert "loyalty_outbox_rows" in names(api_after)

    sdk = await scrape(f"http://127.0.0.1:{sdk_port}/metrics")
    assert names(sdk) >= SDK_METRICS, sorted(names(sdk))

    # Every panel of the Grafana dashboard (deploy/) reads metrics these endpoints export.
    exported = names(api_after) | names(worker_after) | names(sdk)
    for title, wanted in panel_metrics().items():
        assert wanted and wanted <= exported, (title, wanted - exported)
