"""The CPU arithmetic behind a throughput target, printed by the benchmarks with their figures.

Every process of a run shares the machine's cores, so no run can go faster than
`cores / (CPU seconds per operation, all processes together)`. That ceiling is optimistic (it
ignores other tenants of a shared box and any idle time), so a target above it cannot be met by
more concurrency or tuning, only by spending less CPU per operation. The budget says how little:
the CPU per operation that the target's rate leaves on these cores."""

from __future__ import annotations

import os
from dataclasses import dataclass


def cores() -> int:
    """The cores this process may run on (what the benchmark's processes share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Ceiling:
    cores: int
    used_ms: float  # CPU ms per operation, every process of the run together
    target_rate: float  # operations per second the target asks for

    def __post_init__(self) -> None:
        if self.cores < 1 or self.used_ms <= 0 or self.target_rate <= 0:
            raise ValueError("cores, CPU per operation and target rate must be positive")

    @property
    def rate(self) -> float:
        """The highest rate the measured CPU per operation allows on these cores."""
        return self.cores * 1000 / self.used_ms

    @property
    def budget_ms(self) -> float:
        """The CPU per operation, all processes together, that the target's rate allows."""
        return self.cores * 1000 / self.target_rate

    @property
    def reachable(self) -> bool:
        return self.rate >= self.target_rate

    def line(self, baseline_rate: float, unit: str) -> str:
        return (
            f"CPU ceiling: {self.cores} cores / {self.used_ms:.3g} ms per {unit} = "
            f"{self.rate:.1f} {unit}s/s = {self.rate / baseline_rate:.1%} of the baseline; "
            f"the target ({self.target_rate:.1f}/s) allows {self.budget_ms:.3g} ms per {unit}"
            + ("" if self.reachable else ": out of reach at this CPU per operation")
        )
