"""One error family for the whole service: a stable machine code, a message and an HTTP status.

Domain code raises these; the API renders them with one handler, and activities turn the
business ones into non-retryable Temporal ApplicationErrors (type = the code)."""

from __future__ import annotations

from typing import Any, ClassVar


class LoyaltyError(Exception):
    code: ClassVar[str] = "error"
    status_code: ClassVar[int] = 400

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class ValidationFailed(LoyaltyError):
    code = "validation_error"
    status_code = 422


class WalletNotFound(LoyaltyError):
    code = "wallet_not_found"
    status_code = 404


class NotFound(LoyaltyError):
    code = "not_found"
    status_code = 404


class InsufficientPoints(LoyaltyError):
    code = "insufficient_points"
    status_code = 422


class IdempotencyConflict(LoyaltyError):
    code = "idempotency_conflict"
    status_code = 409


class HoldNotOpen(LoyaltyError):
    """The hold was already captured or released (by another request with another key)."""

    code = "hold_not_open"
    status_code = 409


class RefundExceedsSpending(LoyaltyError):
    code = "refund_exceeds_spending"
    status_code = 409


class Unauthorized(LoyaltyError):
    code = "unauthorized"
    status_code = 401


class Forbidden(LoyaltyError):
    code = "forbidden"
    status_code = 403


ERRORS_BY_CODE: dict[str, type[LoyaltyError]] = {
    cls.code: cls
    for cls in (
        ValidationFailed,
        WalletNotFound,
        NotFound,
        InsufficientPoints,
        IdempotencyConflict,
        HoldNotOpen,
        RefundExceedsSpending,
        Unauthorized,
        Forbidden,
    )
}
