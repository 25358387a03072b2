"""The plain voucher rules: codes, expiry, shown status, sale window, tier, posting keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loyalty.vouchers.rules import (
    CODE_ALPHABET,
    TierTooLow,
    VoucherNotAvailable,
    burn_key,
    check_on_sale,
    check_tier,
    generate_code,
    refund_key,
    shown_status,
    voucher_expiry,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_codes_are_random_and_well_formed() -> None:
    codes = {generate_code() for _ in range(2_000)}
    assert len(codes) == 2_000
    for code in list(codes)[:50]:
        groups = code.split("-")
        assert [len(g) for g in groups] == [4, 4, 4, 4]
        assert set("".join(groups)) <= set(CODE_ALPHABET)


def test_expiry_is_the_earlier_of_days_and_date() -> None:
    assert voucher_expiry(NOW, None, None) is None
    assert voucher_expiry(NOW, 30, None) == NOW + timedelta(days=30)
    until = NOW + timedelta(days=7)
    assert voucher_expiry(NOW, 30, until) == until
    assert voucher_expiry(NOW, 3, until) == NOW + timedelta(days=3)


def test_an_active_voucher_past_expiry_shows_expired() -> None:
    assert shown_status("active", None, NOW) == "active"
    assert shown_status("active", NOW + timedelta(seconds=1), NOW) == "active"
    assert shown_status("active", NOW, NOW) == "expired"
    assert shown_status("used", NOW - timedelta(days=1), NOW) == "used"


def product(**fields: object) -> dict[str, object]:
    return {"active": True, "sale_starts_at": None, "sale_ends_at": None, **fields}


def test_sale_window_and_active_flag() -> None:
    check_on_sale(product(), NOW)
    check_on_sale(product(sale_starts_at=NOW, sale_ends_at=NOW + timedelta(hours=1)), NOW)
    for fields, reason in (
        ({"active": False}, "inactive"),
        ({"sale_starts_at": NOW + timedelta(seconds=1)}, "not_started"),
        ({"sale_ends_at": NOW}, "ended"),
    ):
        with pytest.raises(VoucherNotAvailable) as raised:
            check_on_sale(product(**fields), NOW)
        assert raised.value.details["reason"] == reason


def test_tier_rank_must_reach_the_minimum() -> None:
    check_tier(None, None, "bronze", 1)
    check_tier("silver", 2, "gold", 3)
    check_tier("silver", 2, "silver", 2)
    with pytest.raises(TierTooLow):
        check_tier("gold", 3, "silver", 2)


def test_each_attempt_burns_and_refunds_under_keys_of_its_own() -> None:
    keys = {f(p, a) for f in (burn_key, refund_key) for p in ("p-1", "p-2") for a in (1, 2)}
    assert len(keys) == 8
    # Postings already made carry these keys: a retry after a deploy must meet them again.
    assert burn_key("p-1", 1) == "voucher-purchase:p-1:1:burn"
    assert refund_key("p-1", 2) == "voucher-purchase:p-1:2:refund"
