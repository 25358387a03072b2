"""Custom search attributes operators filter workflows by (registered on the dev server by the
run command and the tests; register them on a production namespace as docs/operations.md shows)."""

from temporalio.common import SearchAttributeKey

LOYALTY_USER_ID = SearchAttributeKey.for_keyword("LoyaltyUserId")
BOOKING_ID = SearchAttributeKey.for_keyword("BookingId")
REDEMPTION_STATUS = SearchAttributeKey.for_keyword("RedemptionStatus")

ALL = (LOYALTY_USER_ID, BOOKING_ID, REDEMPTION_STATUS)
