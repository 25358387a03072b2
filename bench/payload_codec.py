"""What the payload codec costs per payload, with the same converter without it as the same-run
baseline.

    .venv/bin/python bench/payload_codec.py [--payloads 20000] [--rounds 5]

Converts the checkout saga's own payloads (its input, the redeem request, the redeem answer with
the client secret, the final state: the largest payloads of a checkout) to Temporal payloads and
back, as a client and a worker do: pydantic JSON, then AES-256-GCM (loyalty.core.temporal's
data converter) or nothing. Rounds alternate plain and encrypted. Prints the CPU microseconds
per payload of each, the codec's extra microseconds, and the share of a checkout's CPU that
makes, given a checkout's CPU per saga (measured by bench/redemption.py) and how many payloads
it encodes and decodes (counted in a saved history of a paid checkout)."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import replace
from datetime import UTC, datetime

from temporalio.converter import DataConverter

from bench import kit
from loyalty.core.payload_encryption import ENCODING, generate_key_line
from loyalty.core.settings import PROJECT_ROOT, Settings
from loyalty.core.temporal import data_converter
from loyalty.redemption.contracts import (
    RedeemRequest,
    RedemptionHold,
    RedemptionInput,
    RedemptionState,
)

# A checkout's payloads: those of a paid checkout's saved history, counted at run time. Each is
# encoded once (by the API or the worker) and decoded at most twice (the worker, and the API for
# an update's answer): counted here as two round trips each, an upper bound.
PAID_CHECKOUT = PROJECT_ROOT / "tests/redemption/histories/http_paid_captured.json"
ROUND_TRIPS_PER_PAYLOAD = 2


def payloads_per_checkout() -> int:
    marker = base64.b64encode(ENCODING).decode()
    return PAID_CHECKOUT.read_text().count(f'"encoding": "{marker}"')


def checkout_payloads() -> list[object]:
    request = RedeemRequest(
        user_id="user-42", booking_id="bk-2001", order_amount=100_000, currency="VND", points=500
    )
    hold = RedemptionHold(
        workflow_id="redemption-bk-2001",
        booking_id="bk-2001",
        user_id="user-42",
        hold_id="0b6f5a5e-4a7e-4b8e-9d0e-3c1a2b3c4d5e",
        points_held=500,
        discount_minor=500,
        amount_to_charge_minor=99_500,
        currency="VND",
        hold_expires_at=datetime(2026, 12, 3, 12, 15, tzinfo=UTC),
        payment_intent_id="pi_eyDDOp17ywZsye",
        client_secret="pi_eyDDOp17ywZsye_secret_a3C2iY6HI6ru8Y9l",
        request=request,
        run_id="6b2c1d1e-0f3a-4c5b-8d7e-9f0a1b2c3d4e",
    )
    state = RedemptionState(
        workflow_id="redemption-bk-2001",
        booking_id="bk-2001",
        user_id="user-42",
        status="captured",
        hold=hold.model_copy(update={"client_secret": None}),
        decision="payment_succeeded",
        payment_status="succeeded",
    )
    start = RedemptionInput(
        booking_id="bk-2001",
        user_id="user-42",
        currency="VND",
        hold_ttl_seconds=900,
        saga_version=3,
    )
    return [start, request, hold, state]


async def round_trip(converter: DataConverter, values: list[object], n: int) -> float:
    """CPU seconds for `n` payloads encoded and decoded."""
    types = [type(v) for v in values]
    began = time.process_time()
    done = 0
    while done < n:
        payloads = await converter.encode(values)
        await converter.decode(payloads, types)
        done += len(values)
    return time.process_time() - began


async def main_async(payloads: int, rounds: int, saga_cpu_ms: float) -> None:
    settings = Settings(environment="test", temporal_payload_keys=generate_key_line("bench"))
    encrypted = data_converter(settings)
    plain = replace(encrypted, payload_codec=None)
    values = checkout_payloads()
    kit.header(
        "payload codec benchmark",
        f"{payloads} payloads per run, {rounds} rounds, the checkout's 4 largest payloads",
    )
    await round_trip(plain, values, 2000)  # warm-up
    await round_trip(encrypted, values, 2000)
    totals = {"plain": 0.0, "encrypted": 0.0}
    rows = []
    for r in range(rounds):
        order = ("plain", "encrypted") if r % 2 == 0 else ("encrypted", "plain")
        measured = {}
        for name in order:
            conv = plain if name == "plain" else encrypted
            measured[name] = await round_trip(conv, values, payloads)
            totals[name] += measured[name]
        us = {k: v / payloads * 1e6 for k, v in measured.items()}
        rows.append([f"round {r + 1}", f"{us['plain']:.1f}", f"{us['encrypted']:.1f}"])
    us = {k: v / (payloads * rounds) * 1e6 for k, v in totals.items()}
    extra = us["encrypted"] - us["plain"]
    rows.append(["all rounds", f"{us['plain']:.1f}", f"{us['encrypted']:.1f}"])
    kit.table(["µs CPU per payload (encode + decode)", "plain", "encrypted"], rows)
    trips = payloads_per_checkout() * ROUND_TRIPS_PER_PAYLOAD
    per_checkout_ms = extra * trips / 1000
    print(
        f"codec: +{extra:.1f} µs per payload round trip; x {trips} round trips per checkout "
        f"= +{per_checkout_ms:.2f} ms, {per_checkout_ms / saga_cpu_ms:.1%} of a checkout's "
        f"{saga_cpu_ms:.0f} ms CPU"
    )


def main() -> None:
    parser = kit.parser(__doc__)
    parser.add_argument("--payloads", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--saga-cpu-ms",
        type=float,
        default=78.0,
        help="CPU per checkout of all processes (bench/redemption.py, bench/README.md)",
    )
    args = parser.parse_args()
    asyncio.run(main_async(args.payloads, args.rounds, args.saga_cpu_ms))
    kit.finish(0)


if __name__ == "__main__":
    main()
