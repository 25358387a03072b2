"""What the schemathesis tests fuzz with: the service's own OpenAPI document, the callers (each
a schemathesis auth provider, so its checks know which credentials were meant), the checks and
how the Stripe webhook's generated bodies are signed.

Callers (roles):
- `customer`: a customer on their own wallet (every `{userId}` is theirs);
- `stranger`: another customer, on that same wallet: never answered with it (object-level
  authorisation, see `stranger_gets_no_wallet`);
- `service`: the booking service, on the customer's wallet (so redeems hold real points);
- `admin`: the backoffice, on generated user ids (wallets that do not exist, or that the
  enrolment it fuzzes opens).

The Stripe webhook is fuzzed without a token: every generated event signed with the service's
webhook secret (`sign`), and again with a missing, malformed or forged signature, which must be
refused. Its body is Stripe's event, which the API reads from the raw bytes and so does not
declare: `STRIPE_EVENT` declares it here, for the fuzzer."""

from __future__ import annotations

import copy
import hashlib
import hmac
import time
import uuid
from typing import Any

import requests
import schemathesis
from schemathesis import Case
from schemathesis.checks import CheckContext
from schemathesis.config import SchemathesisConfig
from schemathesis.core.transport import Response

from api.app import create_app
from api.auth import SCOPE_ADMIN, SCOPE_CUSTOMER, SCOPE_SERVICE
from api.tokens import mint_token
from loyalty.core.settings import Settings
from loyalty.core.text import NO_NUL
from loyalty.redemption.stripe_events import MAX_TEXT

# Tokens are signed with the development secret, which the fuzzed service's settings keep.
TOKENS = Settings(environment="test")
CUSTOMER = f"fuzz-customer-{uuid.uuid4().hex[:8]}"
STRANGER = f"fuzz-stranger-{uuid.uuid4().hex[:8]}"
ROLES: dict[str, tuple[str, str]] = {  # role: (token subject, scope)
    "customer": (CUSTOMER, SCOPE_CUSTOMER),
    "stranger": (STRANGER, SCOPE_CUSTOMER),
    "service": ("booking-service", SCOPE_SERVICE),
    "admin": ("fuzz-admin", SCOPE_ADMIN),
}
# Whose wallet each role's `{userId}` names (None: generated ids).
WALLET_OF = {"customer": CUSTOMER, "stranger": CUSTOMER, "service": CUSTOMER, "admin": None}
WEBHOOK = "/webhooks/stripe"

# A checkout the examples phase starts (RedeemBody's example booking) and the Stripe event
# example that names its saga, so a signed event of the fuzz reaches a running checkout.
EXAMPLE_BOOKING = "bk-2026-0001"

_PAYMENT_INTENT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "object"],
    "properties": {
        "id": {"type": "string", "examples": ["pi_fuzz"]},
        "object": {"type": "string", "examples": ["payment_intent"]},
        "status": {"type": "string"},
        "amount": {"type": "integer"},
        "metadata": {
            "type": "object",
            "properties": {
                "workflow_id": {"type": "string", "examples": [f"redemption-{EXAMPLE_BOOKING}"]},
                "run_id": {"type": "string"},
            },
            "additionalProperties": {"type": "string"},
        },
        "last_payment_error": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "properties": {"message": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
                },
            ]
        },
    },
}
# Stripe's event, as far as the webhook reads it: an id and a type (text it can store: no NUL,
# at most stripe_events.MAX_TEXT characters); any event type is acknowledged (those it does not
# act on as `ignored`), and an object that is no PaymentIntent is not acted on either.
_EVENT_TEXT = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT, "pattern": NO_NUL}
STRIPE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type"],
    "properties": {
        "id": {**_EVENT_TEXT, "examples": ["evt_fuzz"]},
        "object": {"type": "string", "examples": ["event"]},
        "type": {**_EVENT_TEXT, "examples": ["payment_intent.succeeded"]},
        "created": {"type": "integer"},
        "data": {
            "type": "object",
            "required": ["object"],
            "properties": {"object": _PAYMENT_INTENT},
        },
    },
}


def service_openapi() -> dict[str, Any]:
    """The service's OpenAPI document, with the Stripe event as the webhook's request body."""
    document = copy.deepcopy(create_app(Settings(environment="test")).openapi())
    webhook = document["paths"][WEBHOOK]["post"]
    assert "requestBody" not in webhook, "the API declares the webhook's body now: use it"
    webhook["requestBody"] = {
        "required": True,
        "content": {"application/json": {"schema": STRIPE_EVENT}},
    }
    return document


_DOCUMENT = service_openapi()

# Values the generator draws half of the time, so that generated calls meet each other: a few
# booking ids (a redeem, then a confirm or release or status read of that checkout, a booking
# event of it, a Stripe event naming its saga) and the one currency the service takes (a random
# three letters never are: every redeem would be refused before it holds anything).
BOOKINGS = [f"bk-fuzz-{n}" for n in range(1, 6)]
# And any string, a quarter of the time, one of those a store may choke on: instants at the
# calendar's edges once their offset applies, NUL (PostgreSQL's text holds none), a blank.
# Drawn as valid input only where the field's schema admits it: then the API must take it or
# refuse it as the domain, never answer 500.
AWKWARD_TEXT = [
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00Z",
    "nul\x00inside",
    "  ",
]
DICTIONARIES = {
    "awkward": {"values": AWKWARD_TEXT},
    "bookings": {"values": BOOKINGS},
    "sagas": {"values": [f"redemption-{booking}" for booking in BOOKINGS]},
    "currency": {"values": [TOKENS.currency]},
}
DRAWN_FROM = {
    "body.booking_id": {"dictionary": "bookings", "probability": 0.5},
    "body.event.booking_id": {"dictionary": "bookings", "probability": 0.5},
    "path.bookingId": {"dictionary": "bookings", "probability": 0.5},
    "body.currency": {"dictionary": "currency", "probability": 0.5},
    "body.event.currency": {"dictionary": "currency", "probability": 0.5},
    "body.data.object.metadata.workflow_id": {"dictionary": "sagas", "probability": 0.5},
}

# --- checks ----------------------------------------------------------------------------------

# Every check schemathesis has, except:
# - use_after_free: the API's one DELETE (`DELETE /vouchers/products/{productId}`) deactivates a
#   voucher, by design: the product stays readable (issued vouchers name it, admins list it as
#   inactive), so a read after it answering 200 is the documented behaviour, not a leak.
# - object_level_authorization: needs identities registered with schemathesis's WFC auth
#   (`[auth.wfc]`) and its CLI engine; the `stranger` role checks the same property here.
DISABLED_CHECKS = ("use_after_free", "object_level_authorization")
# No answer may take longer (a hang, or a retry loop with no deadline, shows here).
MAX_RESPONSE_SECONDS = 20.0


def _config(role: str | None, *, modes: str = "all") -> SchemathesisConfig:
    checks: dict[str, Any] = {name: {"enabled": False} for name in DISABLED_CHECKS}
    # Valid input may still be refused by the domain: 409 (a conflict), 422 with the refusal's
    # code (not enough points, over the tier's cap ...), 400 for a page cursor the API did not
    # hand out (a cursor is opaque: its schema is any string). `refused_only_by_the_domain`
    # makes sure the 400 and 422 are those, not a validation the schema does not declare.
    checks["positive_data_acceptance"] = {
        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "422"]
    }
    checks["max_response_time"] = MAX_RESPONSE_SECONDS
    config: dict[str, Any] = {
        "checks": checks,
        "generation": {
            "mode": modes,
            "dictionaries": {"string": {"dictionary": "awkward", "probability": 0.25}},
        },
        "dictionaries": DICTIONARIES,
        "parameters": dict(DRAWN_FROM),
    }
    wallet = WALLET_OF.get(role or "")
    if wallet is not None:
        config["parameters"]["path.userId"] = wallet
    return SchemathesisConfig.from_dict(config)


def token(role: str) -> str:
    subject, scope = ROLES[role]
    return mint_token(TOKENS, sub=subject, scopes=[scope], ttl=4 * 3600)


class RoleAuth:
    """The role's bearer token on every case (schemathesis leaves it off where it tests a
    missing or invalid one, and knows it as explicit: `ignored_auth` probes without it)."""

    role = ""

    def get(self, case: Case, ctx: schemathesis.AuthContext) -> str:
        return token(self.role)

    def set(self, case: Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {data}"


def schema_for(role: str) -> Any:
    """The operations a role fuzzes (all but the webhook), with its token and its wallet."""
    schema = schemathesis.openapi.from_dict(service_openapi(), config=_config(role)).exclude(
        path=WEBHOOK
    )
    provider = type(f"{role.title()}Auth", (RoleAuth,), {"role": role})
    schema.auth()(provider)
    return schema


def caller_of(method: str, path: str) -> str:
    """The caller a linked (stateful) step calls an operation as: the booking service where it
    may, else an admin (no operation is for customers alone)."""
    operation = _DOCUMENT["paths"][path][method.lower()]
    scopes = {
        scope
        for requirement in operation.get("security", [])
        for scope in requirement.get("bearerAuth", [])
    }
    return "service" if SCOPE_SERVICE in scopes else "admin"


class CallerAuth:
    """The token of the operation's caller (`caller_of`), for the stateful run."""

    def get(self, case: Case, ctx: schemathesis.AuthContext) -> str:
        return token(caller_of(case.method, case.operation.path))

    def set(self, case: Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = f"Bearer {data}"


def stateful_schema() -> Any:
    """Every operation but the webhook, its links followed (an enrolment's wallet redeemed,
    a created product bought ...), each called as `caller_of` says."""
    # Valid input only: the per-caller fuzz sends the invalid; here each step should succeed
    # so that the next has something to follow.
    config = _config(None, modes="positive")
    schema = schemathesis.openapi.from_dict(service_openapi(), config=config).exclude(path=WEBHOOK)
    schema.auth(cache_by_key=lambda case, ctx: caller_of(case.method, case.operation.path))(
        CallerAuth
    )
    return schema


def webhook_schema() -> Any:
    return schemathesis.openapi.from_dict(service_openapi(), config=_config(None)).include(
        path=WEBHOOK
    )


# --- the Stripe webhook's signature ----------------------------------------------------------


def raw_body(case: Case) -> bytes:
    """The bytes schemathesis sends as this case's body (its serialisation is deterministic)."""
    kwargs = case.as_transport_kwargs(base_url="http://fuzz.invalid")
    prepared = requests.Request(
        method=kwargs["method"],
        url=kwargs["url"],
        headers=kwargs.get("headers"),
        json=kwargs.get("json"),
        data=kwargs.get("data"),
    ).prepare()
    body = prepared.body or b""
    if isinstance(body, str):
        return body.encode()
    assert isinstance(body, bytes), type(body)
    return body


def sign(payload: bytes, secret: str, *, at: int | None = None) -> str:
    """A `Stripe-Signature` header as Stripe makes it: HMAC-SHA256 of `{t}.{payload}`."""
    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def bad_signatures(payload: bytes, secret: str) -> dict[str, str | None]:
    """Signatures the webhook must refuse, by what is wrong with them."""
    now = int(time.time())
    return {
        "missing": None,
        "malformed": "v1=0,t=yesterday",
        "another secret": sign(payload, secret + "-not"),
        "an hour old": sign(payload, secret, at=now - 3600),
        "an hour ahead": sign(payload, secret, at=now + 3600),
        "another body": sign(payload + b" ", secret),
    }


# --- checks of our own ------------------------------------------------------------------------


# Validations a JSON schema cannot state, so valid input by the schema may meet them: the
# message they refuse with, and why the schema cannot say it.
INEXPRESSIBLE = {
    "outside the years 1 to 9999 in UTC": "an instant's bounds once its offset is applied",
}


def refused_only_by_the_domain(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Valid input (by the schema) refused as malformed means the schema promises more than the
    API takes. Valid input may meet only a cursor the API did not hand out (400 invalid_cursor:
    a cursor is opaque), the domain's refusals (422 with their own code, or `validation_error`
    about the service's state or settings: the currency, the tier ladder) and validations that
    relate fields to each other (a sale's start before its end), which JSON schema cannot state.
    A field refused on its own is a field whose schema says less than its model checks."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    body = _json(response)
    code = body.get("code")
    if response.status_code == 400 and code != "invalid_cursor":
        raise AssertionError(f"input valid by the schema refused with 400: {response.text[:500]}")
    if response.status_code != 422 or code != "validation_error":
        return None
    errors = (body.get("details") or {}).get("errors") or []
    on_a_field = [
        error
        for error in errors
        if len(error.get("loc", ())) > 1 and not _inexpressible(error, case)
    ]
    if on_a_field:
        raise AssertionError(f"input valid by the schema refused: {on_a_field}")
    return None


def _inexpressible(error: dict[str, Any], case: Case) -> bool:
    if any(message in error.get("message", "") for message in INEXPRESSIBLE):
        return True
    location, *path = error["loc"]
    if location == "path" and "%" in str((case.path_parameters or {}).get(path[0], "")):
        # schemathesis sends a `%` of a path parameter as it is (`a%ffb`): the API reads
        # another value than the one generated (byte 0xFF), and refuses that one rightly.
        return True
    # JSON Schema counts 625.0 as an integer; the API takes integers written as integers (a
    # float is a 422, as docs/api.md says), which no JSON Schema keyword can state.
    sent = _at(case.body, path) if location == "body" else None
    return error.get("type") == "int_type" and isinstance(sent, float) and sent.is_integer()


def _at(value: Any, loc: list[Any]) -> Any:
    """The value sent at a pydantic error's `loc` (which names a tagged union's member, too:
    `event.payment_succeeded.amount_paid`)."""
    for key in loc:
        in_dict = isinstance(value, dict) and key in value
        if in_dict or (isinstance(value, list) and isinstance(key, int) and key < len(value)):
            value = value[key]
        elif not (isinstance(value, dict) and value.get("type") == key):
            return None
    return value


def signed_body_refused_only_if_no_event(
    ctx: CheckContext, response: Response, case: Case
) -> bool | None:
    """A body signed with the webhook secret is Stripe's: acknowledged (2xx) whatever its event
    holds, unless it is no event at all (an object with an `id` and a `type` it can store):
    then a 400."""
    if case.method.upper() != "POST" or "json" not in (case.media_type or ""):
        return None  # a probe of an unsupported method or media type
    if response.status_code >= 500:
        return None  # not_a_server_error's
    body = case.body if isinstance(case.body, dict) else {}
    is_event = all(_is_event_text(body.get(name)) for name in ("id", "type"))
    if is_event and response.status_code >= 400:
        raise AssertionError(f"a signed event refused: {response.text[:500]}")
    if not is_event and (
        response.status_code != 400 or _json(response).get("code") != "invalid_signature"
    ):
        raise AssertionError(f"a signed body that is no event answered {response.status_code}")
    return None


def stranger_gets_no_wallet(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Another customer's token never gets an answer about this customer's wallet."""
    if case.operation.path.startswith("/wallets/{userId}") and 200 <= response.status_code < 300:
        raise AssertionError(
            f"a customer ({STRANGER}) got {response.status_code} for {CUSTOMER}'s wallet"
        )
    return None


def _is_event_text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_TEXT and "\x00" not in value


def _json(response: Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
