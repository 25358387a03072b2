"""The checkout quote for the storefront's points slider: the most points a wallet may apply to
an order, what bounds it (the points available, the tier's cap, the order's worth), and the
discount and remainder for a number of points. It holds nothing, starts no workflow and writes
nothing: the redeem that follows decides (the wallet may change in between).

`quote` is the rule (pure, over the caps of loyalty.redemption.rules); `read_quote` reads the
wallet and its tier's caps in one statement and applies it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from loyalty.core.errors import InsufficientPoints, WalletNotFound
from loyalty.redemption.errors import CurrencyNotSupported, RedemptionCapExceeded
from loyalty.redemption.rules import discount_for, max_redeemable_points
from loyalty.redemption.schemas import QuoteBound, RedemptionQuote, RedemptionQuoteBody


@dataclass(frozen=True)
class QuoteFacts:
    """What the quote needs of the wallet: its points and its tier's redemption caps."""

    tier: str
    balance: int
    held: int
    cap_pct: int | None
    cap_points: int | None


def check_currency(body: RedemptionQuoteBody, *, currency: str) -> None:
    if body.currency.upper() != currency.upper():
        raise CurrencyNotSupported(
            f"this service redeems in {currency}, not {body.currency}",
            currency=body.currency,
            supported=currency,
        )


def quote(
    user_id: str,
    body: RedemptionQuoteBody,
    facts: QuoteFacts,
    *,
    currency: str,
    point_value_minor: int,
) -> RedemptionQuote:
    """The quote for `body`, or the refusal a redeem of `body.points` would meet: another
    currency (CurrencyNotSupported), more than the tier's cap (RedemptionCapExceeded, checked
    first, as the hold does), more than available (InsufficientPoints).

    The bound is the smallest limit; on a tie the order's worth is named before the tier's cap
    and the cap before the balance: the customer could not go further even with more points."""
    check_currency(body, currency=currency)
    available = max(facts.balance - facts.held, 0)
    order_points = body.order_amount // point_value_minor
    tier_cap = max_redeemable_points(
        body.order_amount,
        cap_pct=facts.cap_pct,
        cap_points=facts.cap_points,
        point_value_minor=point_value_minor,
    )
    bound: QuoteBound
    if available < tier_cap:
        bound = "balance"
    elif tier_cap < order_points:
        bound = "tier_cap"
    else:
        bound = "order_amount"
    max_points = min(available, tier_cap)
    points = max_points if body.points is None else body.points
    if points > tier_cap:
        raise RedemptionCapExceeded(
            f"tier {facts.tier} may redeem at most {tier_cap} points on this booking",
            tier=facts.tier,
            max_points=tier_cap,
            requested=points,
        )
    if points > available:
        raise InsufficientPoints(
            f"not enough points: {available} available, {points} needed",
            available=available,
            requested=points,
        )
    discount = discount_for(points, point_value_minor=point_value_minor)
    return RedemptionQuote(
        user_id=user_id,
        tier=facts.tier,
        currency=currency,
        order_amount=body.order_amount,
        balance=facts.balance,
        held=facts.held,
        available=available,
        tier_cap_points=tier_cap,
        max_points=max_points,
        bound=bound,
        points=points,
        discount_minor=discount,
        amount_to_charge_minor=body.order_amount - discount,
    )


_FACTS = text(
    "SELECT w.tier, w.balance, w.held, t.redemption_cap_pct AS cap_pct, "
    "t.redemption_cap_points AS cap_points "
    "FROM wallets w JOIN loyalty_tiers t ON t.code = w.tier WHERE w.user_id = :u"
)


async def read_quote(
    conn: AsyncConnection,
    user_id: str,
    body: RedemptionQuoteBody,
    *,
    currency: str,
    point_value_minor: int,
) -> RedemptionQuote:
    """The wallet's quote for `body` (WalletNotFound when it has no wallet). The currency is
    checked first, as a redeem checks it before it looks for the wallet."""
    check_currency(body, currency=currency)
    row = (await conn.execute(_FACTS, {"u": user_id})).mappings().first()
    if row is None:
        raise WalletNotFound(f"no wallet for user {user_id!r}", user_id=user_id)
    facts = QuoteFacts(**row)
    return quote(user_id, body, facts, currency=currency, point_value_minor=point_value_minor)
