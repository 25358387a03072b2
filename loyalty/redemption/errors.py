"""The checkout's refusals. Each registers its code (loyalty.core.errors), so a refusal raised in
an activity or the workflow comes back to the API as the same class, code and status."""

from __future__ import annotations

from loyalty.core.errors import LoyaltyError


class RedemptionCapExceeded(LoyaltyError):
    code = "redemption_cap_exceeded"
    status_code = 422


class CurrencyNotSupported(LoyaltyError):
    code = "currency_not_supported"
    status_code = 422


class RedemptionConflict(LoyaltyError):
    """The booking already has a redemption with a different request."""

    code = "redemption_conflict"
    status_code = 409


class PaymentRejected(LoyaltyError):
    """The payment provider refused to set up the charge of the remainder."""

    code = "payment_rejected"
    status_code = 422


class RedemptionRejected(LoyaltyError):
    """The saga ended without a hold (its redeem request was refused)."""

    code = "redemption_rejected"
    status_code = 422


class InvalidSignature(LoyaltyError):
    """A Stripe webhook whose signature is missing or wrong, or whose payload is no event."""

    code = "invalid_signature"
    status_code = 400


class RedemptionCaptured(LoyaltyError):
    """The booking's points were already captured: its checkout is over and cannot start again."""

    code = "redemption_captured"
    status_code = 409


class RedemptionEnding(LoyaltyError):
    """The booking's checkout is being settled; a redeem may follow once it has ended."""

    code = "redemption_ending"
    status_code = 409


class PaymentUnavailable(LoyaltyError):
    """The payment provider could not be reached in time to set up the charge; nothing is held."""

    code = "payment_unavailable"
    status_code = 503
