"""The one conversion between the service's refusals and Temporal's failures.

A business refusal (a LoyaltyError: not enough points, cap exceeded, sold out ...) can never
succeed on a retry, so an activity raises it as a non-retryable ApplicationError whose type is
the error's code and whose first detail is its details. It is an expected outcome, not trouble:
its category is BENIGN, so the SDK logs it at debug level, without a traceback, and counts no
failure metric for it. Workflows pass such a refusal on (or compensate), and clients rebuild the
LoyaltyError from the failure they receive, so the API answers with the same code and status as
if the domain had refused in process.

Pure (temporalio's exception types only): workflows import it."""

from __future__ import annotations

from typing import Any

from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from loyalty.core.errors import LoyaltyError


def as_application_error(err: LoyaltyError) -> ApplicationError:
    """The refusal as a final (non-retryable), benign Temporal failure."""
    return ApplicationError(
        err.message,
        err.details,
        type=err.code,
        non_retryable=True,
        category=ApplicationErrorCategory.BENIGN,
    )


def refusal_in(err: BaseException | None) -> ApplicationError | None:
    """The business refusal behind a failure (an activity's, a child's, an update's or a
    workflow's, however wrapped), or None when the failure was something else (a timeout,
    a cancellation, infrastructure trouble)."""
    while err is not None:
        if isinstance(err, ApplicationError):
            return err if err.non_retryable else None
        err = err.__cause__  # Temporal's wrappers (ActivityError, WorkflowFailureError ...)
    return None


def details_of(err: ApplicationError) -> dict[str, Any]:
    first = err.details[0] if err.details else None
    return first if isinstance(first, dict) else {}


def reraisable(err: ApplicationError) -> ApplicationError:
    """A copy of a refusal to raise from a workflow (the original carries its activity's
    failure context)."""
    return ApplicationError(
        err.message, details_of(err), type=err.type, non_retryable=True, category=err.category
    )


def as_loyalty_error(err: BaseException, default: type[LoyaltyError]) -> LoyaltyError:
    """The LoyaltyError behind a workflow or update failure; `default` when the failure is not
    a known refusal (its message kept)."""
    refusal = refusal_in(err)
    if refusal is None:
        return default(str(err))
    cls = LoyaltyError.for_code(refusal.type) or default
    return cls(refusal.message, **details_of(refusal))
