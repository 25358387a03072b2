"""The domain of the loyalty wallet service, one package per feature:

- core: settings, the database engine, errors and their Temporal form, search attributes;
- ledger: every posting kind (one PostgreSQL function each), wallets, history, invariants;
- earning: earn rules, campaigns, accrual of a paid booking, refunds and debt, booking events;
- redemption: the checkout's rules (caps, discount, remainder), its saga's contracts and holds;
- tiers: the ladder and its rules, real-time upgrades, the scheduled evaluation, admin edits;
- vouchers: the catalog, purchases with points, issued vouchers;
- wallets: what a wallet shows (balance, tier progress, history), adjustments, customer lists;
- notifications: the outbox and delivery.

In each, rules.py holds the pure rules, contracts.py the workflow contracts, schemas.py the API
bodies, and the other modules the store (SQL). Nothing here imports api, workflows or
activities (import-linter contracts in pyproject.toml)."""
