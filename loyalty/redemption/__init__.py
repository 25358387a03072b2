"""Checkout redemption: applying points to an order as a saga (workflows.redemption).

- rules: what a request may ask, the tier's cap, discount and remainder (pure);
- errors: the checkout's refusals;
- contracts: the saga's id, update, signals, query answer and activity commands (pure);
- schemas: the endpoints' request bodies and the webhook's answer;
- holds: the ledger side (hold within the cap, capture, release);
- stripe_events: the Stripe webhook events seen, by event id."""
