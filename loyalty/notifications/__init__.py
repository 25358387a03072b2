"""Customer notifications: one per business event, recorded in an outbox by key and delivered
at most once per key."""
