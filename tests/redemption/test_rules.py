"""The plain redemption rules: caps, discount, remainder, validation, update ids, reasons."""

from __future__ import annotations

import pytest

from loyalty.core.errors import ValidationFailed
from loyalty.redemption.contracts import RedeemRequest
from loyalty.redemption.errors import CurrencyNotSupported, RedemptionCapExceeded
from loyalty.redemption.rules import (
    MAX_REASON_LENGTH,
    failed_attempts,
    max_redeemable_points,
    plain_reason,
    plan_hold,
    same_request,
    update_id_for,
    validate_request,
)


def req(points: int = 300, order: int = 1000, currency: str = "VND") -> RedeemRequest:
    return RedeemRequest(
        user_id="u1", booking_id="bk-1", order_amount=order, currency=currency, points=points
    )


@pytest.mark.parametrize(
    ("order", "pct", "cap_points", "value", "expected"),
    [
        (1000, 30, None, 1, 300),  # bronze
        (1000, 50, None, 1, 500),  # silver
        (1000, 100, None, 1, 1000),  # gold: the whole order
        (1000, None, None, 1, 1000),  # no cap: never more than the order is worth
        (1000, 100, 200, 1, 200),  # the absolute cap wins when lower
        (1000, 30, 5000, 1, 300),  # the percent cap wins when lower
        (999, 30, None, 1, 299),  # rounds down: 299.7 -> 299
        (1000, 30, None, 7, 42),  # 300 VND of discount at 7 VND a point -> 42 points
        (1, 30, None, 1, 0),
    ],
)
def test_max_redeemable_points(
    order: int, pct: int | None, cap_points: int | None, value: int, expected: int
) -> None:
    assert (
        max_redeemable_points(order, cap_pct=pct, cap_points=cap_points, point_value_minor=value)
        == expected
    )


def test_plan_gives_discount_and_remainder() -> None:
    assert plan_hold(req(300), tier="bronze", cap_pct=30, cap_points=None, point_value_minor=1) == (
        300,
        700,
    )
    assert plan_hold(
        req(100, order=1000), tier="gold", cap_pct=100, cap_points=None, point_value_minor=10
    ) == (1000, 0)


def test_plan_refuses_above_the_cap_and_names_the_limit() -> None:
    with pytest.raises(RedemptionCapExceeded) as caught:
        plan_hold(req(301), tier="bronze", cap_pct=30, cap_points=None, point_value_minor=1)
    assert caught.value.details["max_points"] == 300
    assert caught.value.status_code == 422


def test_validation() -> None:
    validate_request(req(currency="vnd"), currency="VND")
    with pytest.raises(CurrencyNotSupported):
        validate_request(req(currency="USD"), currency="VND")
    with pytest.raises(ValidationFailed):
        validate_request(req().model_copy(update={"points": 0}), currency="VND")
    with pytest.raises(ValidationFailed):
        validate_request(req().model_copy(update={"order_amount": -5}), currency="VND")


def test_models_refuse_non_integers_and_non_positive_amounts() -> None:
    with pytest.raises(ValueError):
        RedeemRequest(user_id="u", booking_id="b", order_amount=10.5, currency="VND", points=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        RedeemRequest(user_id="u", booking_id="b", order_amount=0, currency="VND", points=1)
    with pytest.raises(ValueError):
        RedeemRequest(user_id="u", booking_id="b c", order_amount=1, currency="VND", points=1)


def test_same_request_and_update_id_ignore_currency_case_only() -> None:
    assert same_request(req(currency="vnd"), req(currency="VND"))
    assert not same_request(req(300), req(301))
    assert update_id_for(req(currency="vnd")) == update_id_for(req(currency="VND"))
    assert update_id_for(req(300)) != update_id_for(req(301))
    assert update_id_for(req()).startswith("bk-1:")


def test_update_id_names_the_run_a_new_checkout_follows() -> None:
    plain = update_id_for(req())
    assert update_id_for(req(), None) == plain
    after = update_id_for(req(), "after-run-1")
    assert after == f"{plain}:after-run-1"
    assert after != update_id_for(req(), "after-run-2")


@pytest.mark.parametrize(
    ("reason", "stored"),
    [
        ("booking cancelled", "booking cancelled"),
        ("a\x00b", "ab"),  # PostgreSQL text holds no NUL
        ("\ud800half a pair", "half a pair"),  # nor an unpaired surrogate
        ("\x00", "no reason given"),
        ("Hôtel annulé ✓", "Hôtel annulé ✓"),
        ("x" * (MAX_REASON_LENGTH + 10), "x" * MAX_REASON_LENGTH),
    ],
)
def test_plain_reason_is_what_the_ledger_can_store(reason: str, stored: str) -> None:
    assert plain_reason(reason) == stored


def test_failed_attempts_reads_well() -> None:
    assert [failed_attempts(n) for n in (1, 2)] == ["1 failed attempt", "2 failed attempts"]
