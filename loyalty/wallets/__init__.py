"""Wallets as people see them: balance with tier progress, history, admin adjustments, and the
backoffice's customer lists."""
