"""Deterministic orchestration only: no I/O, no clock, no randomness outside Temporal's APIs.

The worker's list of workflows is in workflows.registry, not here: the sandbox re-imports a
workflow's package for every workflow run, so this module stays empty."""
