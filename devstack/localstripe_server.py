"""localstripe with its state in memory only, and a configurable webhook delay.

As shipped, localstripe pickles its whole store to /tmp/localstripe.pickle on every write and
loads that file at start. The file is shared by every localstripe on the machine, so parallel
instances corrupt each other's start ("pickle data was truncated"), a new instance inherits old
objects, and each write costs time in proportion to everything stored so far. The dev stack,
the tests and the benchmarks run it through this module instead:

    python -m devstack.localstripe_server --port 8420

Webhooks are sent by this module rather than localstripe's own sender, which sleeps 1 s before
each event, opens a new HTTP connection for it and never retries. Here the delay is
LOCALSTRIPE_WEBHOOK_DELAY seconds (default 1, as shipped; the saga benchmark uses 0, since a
fake's sleep is not work of the service it measures), one keep-alive session is reused, and a
delivery that cannot connect or gets a 5xx is tried again, up to 5 times. Events are signed the
way Stripe signs them (`Stripe-Signature: t=<created>,v1=<HMAC-SHA256 of "<created>.<payload>">`).

Confirming a PaymentIntent with the payment method to pay with (`confirm(id, payment_method=...)`,
what Stripe.js sends for a saved card) works as in Stripe; localstripe answers it with a 500 "Not
implemented", so this module sets the method first, as an update would, then confirms. After a
declined charge the PaymentIntent is back in `requires_payment_method`, and, as in Stripe, a
confirm with another payment method tries again on the same PaymentIntent (localstripe refuses
any confirm after a failed charge with a 400).

A PaymentMethod can be made from a card token (`card[token]=tok_...`), as in Stripe: the checkout
page tokenizes the card with Stripe.js (localstripe's stand-in has createToken but no
createPaymentMethod) and the server pays with it. localstripe only takes raw card numbers here.

An object localstripe does not know is answered as Stripe answers it: a 404 whose error has the
code `resource_missing` (localstripe's own 404 has no code).

Listing objects of one type (which localstripe also does internally: a charge's refunds, six
times per payment) scanned every stored object, so each payment cost more than the one before
(in-process: 0.9 ms each for the first 500, 3.8 ms each for the third 500). The store here also
keeps its objects by type, and a list reads only its own type, in the same order as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import sys
from typing import Any

import aiohttp
from localstripe import resources, webhooks
from localstripe.errors import UserError


class StoreByType(resources.Store):
    """localstripe's store (a dict of "type:id" keys), also indexed by type."""

    def __init__(self) -> None:
        super().__init__()
        self.by_type: dict[str, dict[str, Any]] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.by_type.setdefault(key.split(":", 1)[0], {})[key] = value

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.by_type.get(key.split(":", 1)[0], {}).pop(key, None)

    def clear(self) -> None:
        super().clear()
        self.by_type.clear()


def _list_of_type(
    cls: type, url: str, limit: Any = None, starting_after: Any = None, **unexpected: Any
) -> Any:
    if unexpected:  # as localstripe's own listing answers them
        raise UserError(400, "Unexpected " + ", ".join(unexpected))
    listing = resources.List(url, limit=limit, starting_after=starting_after)
    listing._list = list(resources.store.by_type.get(cls.object, {}).values())  # type: ignore[attr-defined]
    return listing


# The statuses in which Stripe lets a PaymentIntent be confirmed.
_CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")


def _confirm_with_payment_method(confirm: Any) -> Any:
    def confirm_paying_with(id: str, payment_method: str | None = None, **kwargs: Any) -> Any:
        if payment_method is not None:
            intent = resources.PaymentIntent._api_retrieve(id)
            if intent.status not in _CONFIRMABLE:
                raise UserError(
                    400,
                    f"You cannot confirm this PaymentIntent because it has a status of "
                    f"{intent.status}.",
                    {"code": "payment_intent_unexpected_state"},
                )
            declined = intent.latest_charge is not None and intent.latest_charge.status == "failed"
            if declined:
                # Stripe: a failed attempt leaves the PaymentIntent in requires_payment_method,
                # ready for the next one. localstripe derives its status from the latest charge,
                # so the failed charge (kept in the store, as Stripe keeps it) is set aside.
                intent.latest_charge = None
            resources.PaymentIntent._api_update(id, payment_method=payment_method)
        return confirm(id, **kwargs)

    return confirm_paying_with


def _retrieve_as_stripe(cls: type, id: str) -> Any:
    obj = resources.store.get(cls.object + ":" + id)  # type: ignore[attr-defined]
    if obj is None:
        raise UserError(
            404,
            f"No such {cls.object}: '{id}'",  # type: ignore[attr-defined]
            {"code": "resource_missing", "param": "id"},
        )
    return obj


def _payment_method_from_token(create: Any) -> Any:
    def create_from_token(**data: Any) -> Any:
        card = data.get("card")
        if data.get("type") == "card" and isinstance(card, dict) and set(card) == {"token"}:
            token = _retrieve_as_stripe(resources.Token, str(card["token"]))
            source = token.card
            # localstripe keeps no CVC; any three digits pass its check, as a verified CVC would.
            data["card"] = {
                "number": source._card_number,
                "exp_month": source.exp_month,
                "exp_year": source.exp_year,
                "cvc": "123",
            }
        return create(**data)

    return create_from_token


# localstripe.server imports the store and binds its routes to these functions when it is
# imported: replace them first.
resources.Store.dump_to_disk = lambda self: None
resources.Store.try_load_from_disk = lambda self: None
resources.store = StoreByType()
resources.StripeObject._api_list_all = classmethod(_list_of_type)
resources.StripeObject._api_retrieve = classmethod(_retrieve_as_stripe)
resources.PaymentMethod._api_create = _payment_method_from_token(
    resources.PaymentMethod._api_create
)
resources.extra_apis[:] = [
    (method, url, _confirm_with_payment_method(func))
    if url == "/v1/payment_intents/{id}/confirm"
    else (method, url, func)
    for method, url, func in resources.extra_apis
]

from localstripe import server  # noqa: E402

log = logging.getLogger("aiohttp.access")
DELIVERY_ATTEMPTS = 5
_session: aiohttp.ClientSession | None = None
_delay = 1.0  # LOCALSTRIPE_WEBHOOK_DELAY, read once by main()


async def _deliver(event: Any) -> None:
    global _session
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode()
    signed = b"%d.%s" % (event.created, payload)
    if _delay:
        await asyncio.sleep(_delay)
    if _session is None:
        _session = aiohttp.ClientSession()
    for hook in list(webhooks._webhooks.values()):
        if hook.events is not None and event.type not in hook.events:
            continue
        signature = hmac.new(hook.secret.encode(), signed, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": f"t={event.created},v1={signature}",
        }
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            # Like Stripe, try again when the endpoint cannot be reached or answers 5xx: a
            # keep-alive connection the server has just closed fails the first write.
            try:
                async with _session.post(hook.url, data=payload, headers=headers) as response:
                    log.info('webhook "%s" answered %d', event.type, response.status)
                    if response.status < 500:
                        break
            except aiohttp.ClientError as err:
                log.info('webhook "%s" failed (attempt %d): %s', event.type, attempt, err)
            await asyncio.sleep(0.05 * 2**attempt)


def main() -> None:
    global _delay
    _delay = float(os.environ.get("LOCALSTRIPE_WEBHOOK_DELAY", "1"))
    webhooks._send_webhook = _deliver  # schedule_webhook looks it up at call time
    sys.exit(server.start())


if __name__ == "__main__":
    main()
