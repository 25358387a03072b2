"""docker-compose.yml's observability services and their files hang together: Prometheus
scrapes the ports the service is told to serve metrics on, Grafana is provisioned with the
dashboard and the datasource its panels name, the collector sends traces to the viewer, and
the API's healthcheck is the readiness probe. (That every panel's query names metrics the
service really exports is checked against live scrapes in test_metrics.)"""

from __future__ import annotations

from loyalty.core.settings import PROJECT_ROOT
from tests.observability.deploy_config import DEPLOY, dashboard, load_yaml, panel_metrics

COMPOSE = load_yaml(PROJECT_ROOT / "docker-compose.yml")
SERVICES = COMPOSE["services"]
ENV = SERVICES["worker"]["environment"]


def _mounted(service: str) -> dict[str, str]:
    """Host file or directory -> container path, for the service's ./deploy volumes."""
    mounts = {}
    for volume in SERVICES[service].get("volumes", []):
        host, container = volume.split(":")[:2]
        if host.startswith("./deploy/"):
            assert (PROJECT_ROOT / host).exists(), volume
            mounts[host] = container
    return mounts


def test_prometheus_scrapes_the_api_and_both_worker_ports() -> None:
    config = load_yaml(DEPLOY / "prometheus.yml")
    targets = {
        job["job_name"]: (job.get("metrics_path", "/metrics"), job["static_configs"][0]["targets"])
        for job in config["scrape_configs"]
    }
    assert targets == {
        "loyalty-api": ("/metrics", [f"api:{ENV['API_PORT']}"]),
        "loyalty-worker": ("/metrics", [f"worker:{ENV['WORKER_METRICS_PORT']}"]),
        "loyalty-worker-temporal-sdk": ("/metrics", [f"worker:{ENV['TEMPORAL_SDK_METRICS_PORT']}"]),
    }
    assert ENV["METRICS_HOST"] == "0.0.0.0"  # reachable from the prometheus container
    assert _mounted("prometheus") == {"./deploy/prometheus.yml": "/etc/prometheus/prometheus.yml"}
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]


def test_grafana_is_provisioned_with_the_dashboard_and_its_datasource() -> None:
    mounts = _mounted("grafana")
    provisioning = mounts["./deploy/grafana/provisioning"]
    assert provisioning == "/etc/grafana/provisioning"
    datasource = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    [source] = datasource["datasources"]
    assert source["url"] == "http://prometheus:9090" and "prometheus" in SERVICES
    provider = load_yaml(DEPLOY / "grafana/provisioning/dashboards/loyalty.yml")
    assert provider["providers"][0]["options"]["path"] == mounts["./deploy/grafana/dashboards"]
    board = dashboard()
    assert board["panels"]
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    # The panels the operations guide explains (docs/operations.md).
    titles = set(panel_metrics())
    guide = (PROJECT_ROOT / "docs" / "operations.md").read_text()
    for title in titles:
        assert f"**{title}**" in guide, title


def test_traces_go_from_the_service_through_the_collector_to_the_viewer() -> None:
    assert ENV["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith("http://otel-collector:4318}")
    collector = load_yaml(DEPLOY / "otel-collector.yaml")
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"
    [exporter] = collector["service"]["pipelines"]["traces"]["exporters"]
    host = collector["exporters"][exporter]["endpoint"].split(":")[0]
    assert host in SERVICES and SERVICES[host]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert _mounted("otel-collector") == {
        "./deploy/otel-collector.yaml": "/etc/otelcol/config.yaml"
    }


def test_the_api_healthcheck_is_the_readiness_probe() -> None:
    check = " ".join(SERVICES["api"]["healthcheck"]["test"])
    assert f"127.0.0.1:{ENV['API_PORT']}/health/ready" in check
    assert SERVICES["prometheus"]["depends_on"]["api"]["condition"] == "service_healthy"
