"""The operators' stack of docker-compose.yml, as files: Prometheus' scrape config, Grafana's
provisioning and dashboard, the collector's config (Docker need not run to check them)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from loyalty.core.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "loyalty.json"
# Our metrics and the Temporal SDK's, as PromQL names them (label names never start so).
_METRIC = re.compile(r"\b((?:loyalty|temporal)_[a-z0-9_]+)\b")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def panel_metrics() -> dict[str, set[str]]:
    """Every panel's title and the metric names its queries read."""
    return {
        panel["title"]: {
            name for target in panel["targets"] for name in _METRIC.findall(target["expr"])
        }
        for panel in dashboard()["panels"]
    }
