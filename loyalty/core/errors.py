"""One error family for the whole service: a stable machine code, a message and an HTTP status.

Domain code raises these; the API renders them with one handler, and activities turn them into
non-retryable Temporal ApplicationErrors whose type is the code (loyalty.core.refusals), from
which clients rebuild them. Every subclass that declares a `code` is registered under it, so a
code read back from a workflow failure finds its class wherever the class is defined."""

from __future__ import annotations

from typing import Any, ClassVar


class LoyaltyError(Exception):
    code: ClassVar[str] = "error"
    status_code: ClassVar[int] = 400
    _by_code: ClassVar[dict[str, type[LoyaltyError]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:  # the first class to claim a code keeps it
            LoyaltyError._by_code.setdefault(cls.code, cls)

    @classmethod
    def for_code(cls, code: str | None) -> type[LoyaltyError] | None:
        """The class registered under `code`, if any."""
        return LoyaltyError._by_code.get(code or "")

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


class InvalidCursor(LoyaltyError):
    """A page cursor this API did not hand out (or one for another list)."""

    code = "invalid_cursor"
    status_code = 400


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
