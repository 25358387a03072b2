"""Reading Prometheus endpoints in tests: the samples of a scrape, and what moved between two."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, frozenset[tuple[str, str]]]


async def scrape(url: str, http: httpx.AsyncClient | None = None) -> dict[Sample, float]:
    """Every sample of the endpoint, by name and labels."""
    if http is None:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(url)
    else:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    return parse(response.text)


def parse(body: str) -> dict[Sample, float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Mapping[Sample, float], name: str, **labels: str) -> float:
    """The sample's value, 0 when the endpoint has no such series (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(
    before: Mapping[Sample, float], after: Mapping[Sample, float], name: str, **labels: str
) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def names(samples: Mapping[Sample, float]) -> set[str]:
    return {name for name, _ in samples}
