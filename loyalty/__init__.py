"""Shared domain of the loyalty wallet service: ledger, rules, models, settings, schemas."""
