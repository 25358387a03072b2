"""Earning: the earn rules (base rate, tier multiplier, campaigns), accrual of a paid booking,
refund compensation and debt, campaigns and the booking events that drive them."""
