"""Custom search attributes operators filter workflows by (registered on the dev server by the
run command and the tests; register them on a production namespace as docs/operations.md shows)."""

from temporalio.common import SearchAttributeKey

LOYALTY_USER_ID = SearchAttributeKey.for_keyword("LoyaltyUserId")
BOOKING_ID = SearchAttributeKey.for_keyword("BookingId")
REDEMPTION_STATUS = SearchAttributeKey.for_keyword("RedemptionStatus")
# Declined attempts on a checkout's PaymentIntent, as text ("1", "2" ...): unset until the first.
PAYMENT_FAILURES = SearchAttributeKey.for_keyword("PaymentFailures")
# Set on a checkout whose payment side could not be settled (what an operator must look at).
CHECKOUT_ALERT = SearchAttributeKey.for_keyword("CheckoutAlert")
# Set on an invariant check that found violations (the names of the failed checks).
LEDGER_ALERT = SearchAttributeKey.for_keyword("LedgerAlert")

ALL = (
    LOYALTY_USER_ID,
    BOOKING_ID,
    REDEMPTION_STATUS,
    PAYMENT_FAILURES,
    CHECKOUT_ALERT,
    LEDGER_ALERT,
)
