"""localstripe with its state in memory only, and a configurable webhook delay.

As shipped, localstripe pickles its whole store to /tmp/localstripe.pickle on every write and
loads that file at start. The file is shared by every localstripe on the machine, so parallel
instances corrupt each other's start ("pickle data was truncated"), a new instance inherits old
objects, and each write costs time in proportion to everything stored so far. The dev stack,
the tests and the benchmarks run it through this module instead:

    python -m loyalty.localstripe_in_memory --port 8420

Webhooks are sent by this module rather than localstripe's own sender, which sleeps 1 s before
each event, opens a new HTTP connection for it and never retries. Here the delay is
LOCALSTRIPE_WEBHOOK_DELAY seconds (default 1, as shipped; the saga benchmark uses 0, since a
fake's sleep is not work of the service it measures), one keep-alive session is reused, and a
delivery that cannot connect or gets a 5xx is tried again, up to 5 times. Events are signed the
way Stripe signs them (`Stripe-Signature: t=<created>,v1=<HMAC-SHA256 of "<created>.<payload>">`).

Confirming a PaymentIntent with the payment method to pay with (`confirm(id, payment_method=...)`,
what Stripe.js sends for a saved card) works as in Stripe; localstripe answers it with a 500 "Not
implemented", so this module sets the method first, as an update would, then confirms.
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


def _confirm_with_payment_method(confirm: Any) -> Any:
    def confirm_paying_with(id: str, payment_method: str | None = None, **kwargs: Any) -> Any:
        if payment_method is not None:
            resources.PaymentIntent._api_update(id, payment_method=payment_method)
        return confirm(id, **kwargs)

    return confirm_paying_with


# localstripe.server binds its routes to these functions when it is imported: replace first.
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
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None
    webhooks._send_webhook = _deliver  # schedule_webhook looks it up at call time
    sys.exit(server.start())


if __name__ == "__main__":
    main()
