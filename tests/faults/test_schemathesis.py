"""Schemathesis against the service's own OpenAPI document, over HTTP to a real uvicorn server
with a real worker, Temporal and localstripe behind it.

Every operation is called with generated input (valid and invalid: schemathesis's examples,
coverage and fuzzing phases) as each kind of caller (tests/faults/schemathesis_schema.py): a
customer on their own wallet, another customer on that wallet, the booking service, an admin;
the Stripe webhook with every generated event signed, and again with bad signatures. Then its
links are followed (stateful: enrol, then earn, redeem, buy ...). Every check schemathesis has
runs on every answer (the two that do not apply to this API are named, with why, in
schemathesis_schema; each webhook test leaves out one more, said where): no 5xx, every status
code, content type, header and body documented, invalid input refused, valid input accepted
unless the domain refuses it, auth enforced, unsupported methods refused with their `Allow`.

The service has a database of its own and a task queue of its own: admins fuzzing tiers,
campaigns and the voucher catalog must not change what other tests rely on. Checkouts the fuzz
starts hold the customer's points a few seconds and are then released by their sagas; the last
test (and the fixtures' teardown) waits for that, and checks the ledger's invariants.

FUZZ_EXAMPLES (default 10) sets the fuzzing phase's examples per operation and caller, and the
stateful scenarios; FUZZ_EXAMPLES=100 for a deeper hunt than the suite's."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import Flaky
from schemathesis import Case
from schemathesis.checks import CheckFunction, negative_data_rejection, positive_data_acceptance
from schemathesis.core.failures import FailureGroup

import devstack
from loyalty.core.settings import Settings
from tests.faults import schemathesis_schema as fuzz
from tests.faults import schemathesis_stack as stack

# Its parametrized tests share one node id per function, which xdist workers cannot tell apart:
# the whole suite runs this module in a pytest process of its own (scripts/pytest_run.py).
pytestmark = pytest.mark.serial

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
# Stateful scenarios (of up to STATEFUL_STEPS calls each): cheap, so more of them.
STATEFUL_SCENARIOS = 4 * EXAMPLES
STATEFUL_STEPS = 10
# Sent and answered, by caller and status: the figures a deeper run reports.
TALLY: Counter[tuple[str, int]] = Counter()

SCHEMAS = {role: fuzz.schema_for(role) for role in fuzz.ROLES}
WEBHOOK = fuzz.webhook_schema()
STATEFUL = fuzz.stateful_schema()
FUZZING = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def fuzz_settings(
    embedded_postgres: devstack.EmbeddedPostgres, temporal_address: str, localstripe_url: str
) -> Settings:
    database = embedded_postgres.service_database("loyalty_schemathesis")
    return stack.fuzz_settings(
        database_url=database.app_url,
        temporal_address=temporal_address,
        localstripe_url=localstripe_url,
        task_queue=f"fuzz-{uuid.uuid4()}",
    )


@pytest.fixture(scope="module")
def fuzz_worker(fuzz_settings: Settings) -> Iterator[stack.WorkerThread]:
    """The worker of the fuzz's task queue. Stopped only once every saga the fuzz started has
    ended (the API is stopped first, so none starts meanwhile)."""
    with stack.WorkerThread(fuzz_settings) as worker:
        yield worker
        left = stack.settle(worker, within=stack.HOLD_TTL_SECONDS + 60)
        worker.run(
            lambda client, _: stack.terminate_waiting(client, fuzz_settings.temporal_task_queue)
        )
    assert not left, f"the fuzz left this behind:\n{left}"


@pytest.fixture(scope="module")
def base_url(fuzz_settings: Settings, fuzz_worker: stack.WorkerThread) -> Iterator[str]:
    port = devstack.free_port()
    with stack.serve_api(fuzz_settings, port):
        url = f"http://127.0.0.1:{port}"
        # The customer's wallet exists and has points to spend: their reads answer 200 with a
        # body, and the service's generated redeems hold real points.
        response = httpx.post(
            f"{url}/wallets/{fuzz.CUSTOMER}/earn",
            json={"booking_id": "fuzz-seed", "amount_paid": 10**12, "currency": "VND"},
            headers={"Authorization": f"Bearer {fuzz.token('service')}"},
        )
        assert response.status_code in (200, 201), response.text
        yield url


def _fuzz_as(role: str) -> Any:
    extra: list[CheckFunction] = [fuzz.refused_only_by_the_domain]
    if role == "stranger":
        extra.append(fuzz.stranger_gets_no_wallet)

    @pytest.mark.slow
    @SCHEMAS[role].parametrize()
    @FUZZING
    def test(case: Case, base_url: str) -> None:
        response = case.call_and_validate(base_url=base_url, additional_checks=extra)
        TALLY[(role, response.status_code)] += 1

    test.__name__ = f"test_fuzz_as_{role}"
    test.__doc__ = f"Every operation but the webhook, as the {role} (see schemathesis_schema)."
    return test


test_fuzz_as_customer = _fuzz_as("customer")
test_fuzz_as_stranger = _fuzz_as("stranger")
test_fuzz_as_service = _fuzz_as("service")
test_fuzz_as_admin = _fuzz_as("admin")


@pytest.mark.slow
@WEBHOOK.parametrize()
@FUZZING
def test_fuzz_the_signed_webhook(case: Case, base_url: str, fuzz_settings: Settings) -> None:
    """Every generated event signed as Stripe signs it, so it reaches past the signature.
    negative_data_rejection is left out here: the endpoint must acknowledge every event Stripe
    signs whatever it holds (Stripe retries an event refused, for days), refusing only a body
    that is no event; signed_body_refused_only_if_no_event checks exactly that instead."""
    signature = fuzz.sign(fuzz.raw_body(case), fuzz_settings.stripe_webhook_secret)
    response = case.call_and_validate(
        base_url=base_url,
        headers={"Stripe-Signature": signature},
        additional_checks=[
            fuzz.refused_only_by_the_domain,
            fuzz.signed_body_refused_only_if_no_event,
        ],
        excluded_checks=[negative_data_rejection],
    )
    TALLY[("webhook signed", response.status_code)] += 1


@pytest.mark.slow
@WEBHOOK.parametrize()
@FUZZING
def test_fuzz_the_webhook_with_bad_signatures(
    case: Case, base_url: str, fuzz_settings: Settings
) -> None:
    """Every generated event with each kind of bad signature: a documented 400, always."""
    if case.method.upper() != "POST":  # the coverage phase's unsupported methods
        response = case.call_and_validate(base_url=base_url)
        TALLY[("webhook unsigned", response.status_code)] += 1
        return
    payload = fuzz.raw_body(case)
    for kind, signature in fuzz.bad_signatures(
        payload, fuzz_settings.stripe_webhook_secret
    ).items():
        headers = {} if signature is None else {"Stripe-Signature": signature}
        # Valid events are refused here, by design: the signature is what is wrong.
        response = case.call_and_validate(
            base_url=base_url, headers=headers, excluded_checks=[positive_data_acceptance]
        )
        TALLY[("webhook unsigned", response.status_code)] += 1
        assert response.status_code == 400, f"{kind} signature: {response.text}"
        assert response.json()["code"] == "invalid_signature", kind


@pytest.mark.slow
def test_follow_the_links(base_url: str) -> None:
    """Schemathesis's stateful phase: sequences of calls along the links it infers from the
    document (an enrolled wallet earns, redeems and buys; a created campaign or product is read,
    changed and ended), with every check on every answer, ensure_resource_availability included
    (a resource just created is there).

    As schemathesis's own engine does, failures are collected rather than raised (Hypothesis
    would replay and shrink the scenario against a service whose state it has since changed),
    and a run Hypothesis stops as flaky (the service answered differently from the tree it
    recorded) is followed by another until the scenarios are done."""
    failures: dict[tuple[str, str], str] = {}
    scenarios = 0

    class Links(STATEFUL.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"base_url": base_url}

        def validate_response(
            self,
            response: Any,
            case: Case,
            additional_checks: Any = None,
            **kwargs: Any,
        ) -> None:
            TALLY[("stateful", response.status_code)] += 1
            try:
                super().validate_response(
                    response, case, additional_checks=[fuzz.refused_only_by_the_domain], **kwargs
                )
            except FailureGroup as group:
                for failure in group.exceptions:
                    key = (case.operation.label, failure.title)
                    failures.setdefault(key, f"{failure.message}\n{case.as_curl_command()}")

        def teardown(self) -> None:
            nonlocal scenarios
            scenarios += 1
            super().teardown()

    for _ in range(5):
        with contextlib.suppress(Flaky):
            Links.run(
                settings=settings(
                    phases=[Phase.generate],
                    max_examples=STATEFUL_SCENARIOS - scenarios,
                    stateful_step_count=STATEFUL_STEPS,
                    deadline=None,
                    suppress_health_check=list(HealthCheck),
                )
            )
        if scenarios >= STATEFUL_SCENARIOS:
            break
    assert not failures, "\n\n".join(
        f"{op}: {title}\n{text}" for (op, title), text in failures.items()
    )
    assert scenarios >= STATEFUL_SCENARIOS // 2, f"only {scenarios} scenarios ran"


def test_a_405_allows_every_method_documented_at_its_path(base_url: str) -> None:
    """Found by the fuzz (allow_header_conformance): Starlette's 405 named only the methods of
    the first route matching the path, so `OPTIONS /wallets/{userId}` allowed GET, not PUT."""
    admin = {"Authorization": f"Bearer {fuzz.token('admin')}"}
    for path, allowed in [
        (f"/wallets/{fuzz.CUSTOMER}", "GET, PUT"),
        (f"/wallets/{fuzz.CUSTOMER}/transactions", "GET, POST"),
        ("/tiers", "GET, POST"),
        ("/tiers/order", "PUT"),  # not PATCH, though /tiers/{code} matches it
        (f"/vouchers/products/{uuid.uuid4()}", "DELETE, GET, PATCH"),
    ]:
        response = httpx.options(f"{base_url}{path}", headers=admin)
        assert response.status_code == 405, path
        assert response.headers["allow"] == allowed, path


def test_a_body_that_is_not_text_gets_the_documented_422(base_url: str) -> None:
    """Found by the fuzz: FastAPI answered such a body with an undocumented bare 400."""
    response = httpx.post(
        f"{base_url}/wallets/{fuzz.CUSTOMER}/earn",
        content=b'{"booking_id": "\xff"}',
        headers={
            "Authorization": f"Bearer {fuzz.token('service')}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"


def test_every_saga_of_the_fuzz_ends_and_the_ledger_holds(
    base_url: str, fuzz_worker: stack.WorkerThread
) -> None:
    """Every checkout the fuzz started released its points by itself (the holds expire after
    HOLD_TTL_SECONDS), every voucher purchase ended, and the ledger's invariants hold, with no
    hold open past its expiry and no checkout waiting on a resolved hold."""
    left = stack.settle(fuzz_worker, within=stack.HOLD_TTL_SECONDS + 60)
    assert not left, f"the fuzz left this behind:\n{left}"
    queue = fuzz_worker.settings.temporal_task_queue
    done = fuzz_worker.run(lambda client, engine: stack.figures(client, engine, queue))
    print(f"\nschemathesis: answers by (caller, status): {sorted(TALLY.items())}; {done}")
