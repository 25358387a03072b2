"""OpenTelemetry traces: one trace per checkout from the HTTP request through the Temporal
client call, the workflow and its activities (temporalio's TracingInterceptor), to the SQL
(asyncpg, which SQLAlchemy's statements and the ledger's direct driver calls both go through)
and the Stripe calls (aiohttp, the worker's Stripe client).

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (or a test passes its own exporter): nothing is
instrumented then, and the OpenTelemetry API's default no-op tracer makes `annotate` next to
free. On, spans are batched and exported over OTLP/HTTP to `<endpoint>/v1/traces`."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from temporalio.client import Interceptor

from loyalty.core.settings import Settings
from loyalty.observability import logs

_lock = threading.Lock()
_provider: TracerProvider | None = None

BOOKING_ID = "loyalty.booking_id"
WORKFLOW_ID = "loyalty.workflow_id"


def configure(
    settings: Settings,
    service: str,
    *,
    exporter: SpanExporter | None = None,
    sampler: Sampler | None = None,
) -> bool:
    """Install the tracer provider and the library instrumentations, once per process. True
    when tracing is on. `exporter`: a test's (in-memory, exported span by span); `sampler`: a
    test's (else OpenTelemetry's settings choose, OTEL_TRACES_SAMPLER)."""
    global _provider
    with _lock:
        if _provider is not None:
            return True
        if exporter is None and not settings.otel_exporter_otlp_endpoint:
            return False
        provider = TracerProvider(
            resource=Resource.create({"service.name": settings.otel_service_name or service}),
            sampler=sampler,
        )
        # The sampler OpenTelemetry's settings chose (OTEL_TRACES_SAMPLER: all by default),
        # without the transactions' BEGIN and COMMIT.
        provider.sampler = WithoutTransactionControl(provider.sampler)
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            endpoint = settings.otel_exporter_otlp_endpoint or ""
            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces"))
            )
        # Not the global provider: everything traced is given this one, so a test can turn
        # tracing off again (`disable`), which the OpenTelemetry global cannot.
        _instrument_libraries(provider)
        _provider = provider
        return True


class WithoutTransactionControl(Sampler):
    """Drops the spans of BEGIN and COMMIT, and asks `sampler` about every other span.

    asyncpg's instrumentation makes a span of every statement, so each transaction adds two
    spans that tell little: the enclosing span (the request, the activity) already covers their
    time, and a failed COMMIT fails it too. They are two of the four statements of an HTTP earn,
    and a span recorded and exported costs this process about 0.13 ms, a dropped one 0.01 ms
    (bench/span_cost.py). A dropped span is not recorded, and the statements after it keep their
    parent."""

    _DROPPED = frozenset({"BEGIN", "BEGIN;", "COMMIT", "COMMIT;"})

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

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
        if name in self._DROPPED:
            return SamplingResult(Decision.DROP)
        return self.sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"WithoutTransactionControl{{{self.sampler.get_description()}}}"


@contextlib.contextmanager
def only_if_sampled() -> Iterator[None]:
    """Run the block with the libraries' instrumentation (asyncpg, aiohttp) suppressed when the
    current span is not recorded: its trace was sampled out.

    Their spans would not be recorded either (the sampler follows the parent), but each
    instrumented call would still build its attributes and ask the sampler. The trace context
    still travels in Temporal's headers (its interceptor is not one of the suppressed), so the
    workflow and its activities stay out of the sample too."""
    if trace.get_current_span().is_recording():
        yield
        return
    with suppress_instrumentation():
        yield


def provider() -> TracerProvider | None:
    """The tracer provider when tracing is on."""
    return _provider


def disable() -> None:
    """Stop tracing what `configure` instrumented (tests; apps already built stay traced)."""
    global _provider
    with _lock:
        if _provider is None:
            return
        from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        AsyncPGInstrumentor().uninstrument()
        AioHttpClientInstrumentor().uninstrument()
        _provider.shutdown()
        _provider = None


def _instrument_libraries(provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor().instrument(tracer_provider=provider)
    AioHttpClientInstrumentor().instrument(tracer_provider=provider)


def temporal_interceptors() -> Sequence[Interceptor]:
    """The Temporal client's (and so its workers') tracing interceptor, when tracing is on."""
    if _provider is None:
        return ()
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return (TracingInterceptor(_provider.get_tracer("loyalty.temporal")),)


def annotate(*, booking_id: str | None = None, workflow_id: str | None = None) -> None:
    """Name the booking and workflow on the current span and on the log lines that follow in
    this context."""
    span = trace.get_current_span()
    if span.is_recording():
        if booking_id is not None:
            span.set_attribute(BOOKING_ID, booking_id)
        if workflow_id is not None:
            span.set_attribute(WORKFLOW_ID, workflow_id)
    logs.bind(booking_id=booking_id, workflow_id=workflow_id)


def shutdown() -> None:
    """Flush the spans still batched (at process exit)."""
    if _provider is not None:
        _provider.shutdown()
