"""Points expiry: the daily `points-expiry` run that expires due lots to the breakage account and
reminds customers of points about to expire (rules, contracts, the batch SQL, the schedule)."""
