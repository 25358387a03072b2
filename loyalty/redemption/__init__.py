"""Checkout redemption: the rules of applying points to an order (caps, discount, remainder),
the saga's contracts, its ledger side and the Stripe webhook events it hears."""
