# One image for the API, the worker, the Kafka consumer, the outbox relay and the migrate job
# (docker-compose.yml picks the command).
FROM python:3.11-slim

# The project itself is not installed (--no-install-project below): its code runs from /app as
# copied, which PYTHONPATH puts on the path, as the editable install does in a development
# .venv. Installing it would build a wheel in the image for nothing.
ENV PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PYTHONPATH=/app \
    PATH=/app/.venv/bin:$PATH

WORKDIR /app
RUN python -m pip install --no-cache-dir "uv==0.13.8"

# Dependencies first (cached while only the code changes), exactly as locked. The runtime ones
# only: no dependency group, so neither the test tools (dev) nor the embedded PostgreSQL, Temporal
# server and localstripe (devstack; nor is devstack/ copied).
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-default-groups --no-install-project --python python3

COPY alembic.ini worker.py ./
COPY loyalty ./loyalty
COPY api ./api
COPY workflows ./workflows
COPY activities ./activities
COPY streams ./streams
COPY migrations ./migrations
COPY scripts ./scripts
# Bytecode in the image: the app user cannot write it (faster starts; and with WORKFLOW_SANDBOX=true
# the sandbox imports each workflow's module afresh for every run, compiling it each time without).
RUN python -m compileall -q loyalty api workflows activities streams worker.py

RUN useradd --system --uid 10001 loyalty
USER loyalty

EXPOSE 8000
CMD ["python", "scripts/serve_api.py"]
