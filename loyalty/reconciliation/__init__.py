"""Reconciliation: the ledger compared with what lies outside it. Captured and released
checkouts with their Stripe PaymentIntents, open holds with their running checkout sagas, and
burned voucher purchases with their issued codes. `rules` says what counts as a mismatch (pure),
`facts` reads the ledger's side, `payments` and `sagas` read Stripe's and Temporal's, `store`
records and lists the findings, `schedule` owns the `ledger-reconciliation` Schedule and
`contracts` is the workflow's (pydantic only)."""
