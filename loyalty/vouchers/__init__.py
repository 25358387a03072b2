"""Vouchers bought with points: the catalog, purchases (reserve, burn, issue, undo) and the
customer's issued vouchers."""
