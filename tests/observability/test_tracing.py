"""One checkout is one trace: from the HTTP request through the Temporal client call, the
workflow and its activities to the capture, with the SQL and Stripe calls inside, the booking
and workflow ids on the spans. An in-memory exporter collects what would go over OTLP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
import stripe
from opentelemetry.context import Context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client

from api.app import create_app
from loyalty.core.settings import Settings
from loyalty.core.temporal import connect
from loyalty.observability import tracing
from tests.harness import api as harness_api
from tests.harness import workers
from tests.harness.wallets import new_user
from tests.redemption.helpers import pay, redeem, wait_for_end


@pytest.fixture
def spans(settings: Settings) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure(settings, "loyalty-test", exporter=exporter)
    yield exporter
    tracing.disable()


@pytest.fixture
async def traced(
    spans: InMemorySpanExporter, settings: Settings, engine: AsyncEngine
) -> AsyncIterator[tuple[harness_api.Api, Client]]:
    """The API (served, for localstripe's webhooks) and a worker, both built with tracing on."""
    client = await connect(settings, interceptors=tracing.temporal_interceptors())
    async with (
        workers.in_process(client, engine, settings),
        harness_api.served(settings) as served,
    ):
        assert served.url is not None
        await harness_api.point_webhooks(settings, served.url)
        yield served, client


async def test_one_trace_from_the_http_request_to_the_capture(
    traced: tuple[harness_api.Api, Client],
    spans: InMemorySpanExporter,
    stripe_client: stripe.StripeClient,
    make_wallet,
    booking_id: str,
) -> None:
    api, client = traced
    shopper = await make_wallet(50_000)
    answer = await redeem(api, shopper, booking_id, points=30_000)
    assert answer.status_code == 200, answer.text
    await pay(stripe_client, answer.json()["payment_intent_id"])
    assert (await wait_for_end(client, booking_id)).status == "captured"

    finished = spans.get_finished_spans()
    request = next(
        s for s in finished if s.kind.name == "SERVER" and s.name == "POST /wallets/{userId}/redeem"
    )
    trace_id = request.context.trace_id
    in_trace = [s for s in finished if s.context.trace_id == trace_id]
    names = [s.name for s in in_trace]
    workflow_id = answer.json()["workflow_id"]
    # The client call, the workflow, the hold and the capture (local activities), the Stripe
    # PaymentIntent and the SQL, all under the request.
    for expected in (
        "StartUpdateWithStartWorkflow:RedemptionWorkflow",
        "RunWorkflow:RedemptionWorkflow",
        "RunActivity:place_redemption_hold",
        "RunActivity:capture_redemption_hold",
    ):
        assert expected in names, (expected, sorted(set(names)))
    # One server span for the request (one layer traces requests), with its route and status.
    assert names.count("POST /wallets/{userId}/redeem") == 1, names
    assert request.attributes.get("http.route") == "/wallets/{userId}/redeem"
    assert request.attributes.get("http.response.status_code") == 200
    sql = [s for s in in_trace if (s.attributes or {}).get("db.system") == "postgresql"]
    assert any("ledger_capture" in str(s.attributes.get("db.statement")) for s in sql), names
    # Statements, without the transactions' BEGIN and COMMIT.
    assert not {"BEGIN", "BEGIN;", "COMMIT", "COMMIT;"} & set(names), sorted(set(names))
    stripe_calls = [
        s
        for s in in_trace
        if s.kind.name == "CLIENT"
        and "/v1/payment_intents"
        in str(s.attributes.get("http.url") or s.attributes.get("url.full"))
    ]
    assert stripe_calls, names
    # The booking and workflow ids name the request and the activities.
    assert request.attributes.get(tracing.BOOKING_ID) == booking_id
    assert request.attributes.get(tracing.WORKFLOW_ID) == workflow_id
    capture = next(s for s in in_trace if s.name == "RunActivity:capture_redemption_hold")
    assert capture.attributes.get(tracing.BOOKING_ID) == booking_id
    assert capture.attributes.get("temporalWorkflowID") == workflow_id
    # One trace: every span of it descends from the request.
    by_id = {s.context.span_id: s for s in in_trace}
    for span in in_trace:
        top = span
        while top.parent is not None and top.parent.span_id in by_id:
            top = by_id[top.parent.span_id]
        assert top is request, (span.name, top.name)


async def test_scrapes_and_liveness_probes_make_no_trace(
    spans: InMemorySpanExporter, settings: Settings
) -> None:
    app = create_app(settings.model_copy(update={"metrics_enabled": True}))
    async with harness_api.in_process(app) as http:
        for path in ("/metrics", "/health/live", "/health/live"):
            assert (await http.get(path)).status_code == 200, path
        assert (await http.get("/no-such-page")).status_code == 404
    # The 404 is traced (so tracing is on in this app); the scrape and the probes are not.
    assert [s.name for s in spans.get_finished_spans() if s.kind.name == "SERVER"] == ["GET"]


class _Asked(Sampler):
    """Drops every span, and notes the name of each it was asked about."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        self.names.append(name)
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "Asked"


async def test_a_sampled_out_request_starts_no_statement_span(settings: Settings) -> None:
    """The request's own span is asked about and dropped; the statements it runs are not even
    started (their instrumentation is suppressed), though they would have been dropped too."""
    asked = _Asked()
    exporter = InMemorySpanExporter()
    assert tracing.configure(settings, "loyalty-test", exporter=exporter, sampler=asked)
    try:
        app = create_app(settings)
        booking = {"booking_id": f"b-{uuid.uuid4().hex[:8]}", "amount_paid": 100_000}
        async with harness_api.in_process(app) as http:
            answer = await http.post(
                f"/wallets/{new_user()}/earn",
                headers=harness_api.Auth(settings).service(),
                json={**booking, "currency": "VND"},
            )
        assert answer.status_code == 201, answer.text
        assert asked.names == ["POST"], asked.names
        assert exporter.get_finished_spans() == ()
    finally:
        tracing.disable()
