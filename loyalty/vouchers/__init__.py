"""Vouchers bought with points: `rules` (who may buy, codes, expiry, refusals), `catalog` (the
products and their code pools), `purchases` (reserve, record the burn and refund, issue, undo),
`issued` (the customer's vouchers), `contracts` (the purchase workflow's models) and `schemas`
(the API's bodies)."""
