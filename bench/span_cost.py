"""What one OpenTelemetry span costs this process, part by part: the floor under tracing's cost
per request, whatever the instrumentation around it.

    .venv/bin/python bench/span_cost.py [--spans 20000] [--rounds 3]

Each way starts and ends `--spans` spans carrying the attributes asyncpg's instrumentation puts
on a statement's span over a Unix socket (six, the statement's text among them), then waits
for the batch processor's thread to drain; CPU is this process's (time.process_time: every
thread, the export thread too) per span:
- `off` (the baseline): the OpenTelemetry API's no-op tracer, which is what traced code pays
  with tracing off;
- `dropped`: the SDK's span that its sampler drops (a BEGIN or COMMIT, or a trace left out by
  sampling);
- `recorded`: recorded and handed to the batch processor, whose exporter drops it unread;
- `exported`: recorded, and encoded for OTLP as the HTTP exporter does before it sends (the
  socket not included).
Ways alternate within each round; the figures are the rounds' medians. No stack, no database.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler
from opentelemetry.trace import SpanKind

from bench import kit

# What asyncpg's instrumentation sets on the span of an HTTP earn's posting call.
ATTRIBUTES = {
    "db.system": "postgresql",
    "db.name": "loyalty",
    "db.user": "loyalty_app",
    "net.peer.name": "/tmp/loyalty-run/pg/.s.PGSQL.5432",
    "net.transport": "other",
    "db.statement": "WITH posted AS (SELECT * FROM ledger_earn(p_user_id => $1, p_points => $2, "
    "p_idempotency_key => $3, p_request_hash => $4, p_booking_id => $5)) SELECT * FROM posted",
}


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class _Encode(SpanExporter):
    """The OTLP/HTTP exporter's work up to the socket: the protobuf request, serialized."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        return SpanExportResult.SUCCESS


def _sdk(sampler: Sampler, exporter: SpanExporter) -> tuple[trace.Tracer, Callable[[], None]]:
    provider = TracerProvider(sampler=sampler)
    # A queue that holds a whole round: no span is dropped for a full queue.
    processor = BatchSpanProcessor(exporter, max_queue_size=1 << 17)
    provider.add_span_processor(processor)
    return provider.get_tracer("bench"), provider.shutdown


WAYS: dict[str, Callable[[], tuple[trace.Tracer, Callable[[], None]]]] = {
    "off": lambda: (trace.NoOpTracer(), lambda: None),
    "dropped": lambda: _sdk(ALWAYS_OFF, _Drop()),
    "recorded": lambda: _sdk(ALWAYS_ON, _Drop()),
    "exported": lambda: _sdk(ALWAYS_ON, _Encode()),
}


def measure(way: str, spans: int) -> float:
    """CPU microseconds per span, the export thread's included (shutdown drains the queue)."""
    tracer, shutdown = WAYS[way]()
    for _ in range(min(spans, 1000)):  # warm-up
        tracer.start_span("warm-up").end()
    started = time.process_time()
    for _ in range(spans):
        with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT, attributes=ATTRIBUTES):
            pass
    shutdown()
    return (time.process_time() - started) / spans * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {way: [] for way in WAYS}
    for number in range(args.rounds):
        order = list(WAYS) if number % 2 == 0 else list(reversed(WAYS))
        for way in order:
            runs[way].append(measure(way, args.spans))
    print(f"one span with asyncpg's {len(ATTRIBUTES)} attributes, {args.spans} spans per way")
    off = statistics.median(runs["off"])
    rows = []
    for way, values in runs.items():
        median = statistics.median(values)
        rounds = " ".join(f"{v:.1f}" for v in values)
        rows.append([way, f"{median:.1f}", f"{median - off:+.1f}", rounds])
    kit.table(["way", "CPU us/span", "vs off", "rounds"], rows)


if __name__ == "__main__":
    main()
