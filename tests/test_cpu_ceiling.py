"""The CPU ceiling the benchmarks print: the highest rate a run's CPU per operation allows."""

from __future__ import annotations

import os

import pytest

from bench.kit import Ceiling, cores


def test_ceiling_and_budget_follow_from_cores_and_cpu_per_operation() -> None:
    # Session 5's saga: 52 ms of CPU per saga on 2 cores, bare saga at 55 sagas/s, target 80%.
    ceiling = Ceiling(cores=2, used_ms=52.0, target_rate=0.8 * 55.0)
    assert ceiling.rate == pytest.approx(2000 / 52)  # 38.46 sagas/s
    assert ceiling.budget_ms == pytest.approx(2000 / 44)  # 45.45 ms per saga
    assert not ceiling.reachable
    line = ceiling.line(55.0, "saga")
    assert "38.5 sagas/s = 69.9% of the baseline" in line
    assert "allows 45.5 ms per saga: out of reach" in line


def test_a_target_under_the_ceiling_is_reachable() -> None:
    ceiling = Ceiling(cores=2, used_ms=0.5, target_rate=1500.0)  # ceiling 4,000 ops/s
    assert ceiling.reachable
    assert "out of reach" not in ceiling.line(6000.0, "op")
    assert Ceiling(cores=4, used_ms=1.0, target_rate=4000.0).reachable  # exactly at it


@pytest.mark.parametrize(
    ("cores_", "used_ms", "target_rate"), [(0, 1.0, 1.0), (2, 0.0, 1.0), (2, 1.0, -5.0)]
)
def test_nonsense_is_refused(cores_: int, used_ms: float, target_rate: float) -> None:
    with pytest.raises(ValueError):
        Ceiling(cores_, used_ms, target_rate)


def test_cores_are_those_this_process_may_use() -> None:
    assert 1 <= cores() <= (os.cpu_count() or 1)
