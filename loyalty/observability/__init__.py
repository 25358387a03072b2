"""What operators see of the running service: Prometheus metrics (metrics, state), OpenTelemetry
traces (tracing) and log lines (logs). The domain counts its business figures here; the API and
the worker wire the rest up (api.telemetry, worker.py). Depends on loyalty.core only."""
