"""Secrets out of workflow histories, end to end on the dev server: what Temporal stores of a
checkout is ciphertext, the codec server shows it to admins only, a key rotation keeps running
and ended checkouts readable and replayable, and a worker without the key fails loudly."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from google.protobuf.message import Message
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

import devstack
from api.app import create_app
from api.pages.session import SESSION_COOKIE
from loyalty.core.payload_encryption import ENCODING, KEY_ID
from loyalty.core.settings import Settings
from loyalty.core.temporal import connect, data_converter
from loyalty.ledger.contracts import InvariantCheckInput
from loyalty.redemption.contracts import RedemptionState
from tests.harness import api as harness_api
from tests.harness import workers
from tests.harness.api import Api
from tests.harness.payload_keys import NEXT_KEY_LINE, ROTATED
from tests.redemption.helpers import redeem, wait_for_end
from worker import WORKFLOW_RUNNER
from workflows.ledger import InvariantCheckWorkflow
from workflows.registry import WORKFLOWS

MakeWallet = Callable[..., Awaitable[str]]
# A local activity's marker also holds the SDK core's own bookkeeping (activity type, attempt,
# times), written by the core and never by the data converter: no data of the service.
SDK_BOOKKEEPING = ".marker_recorded_event_attributes.details[data]"


def payloads_of(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every payload in a history, with where it sits; search attributes (plain by design) and
    headers (trace context, not the service's data) left out."""
    if isinstance(message, Payload):
        yield path, message
        return
    for field, value in message.ListFields():
        if field.name in ("search_attributes", "header") or field.message_type is None:
            continue
        where = f"{path}.{field.name}"
        if isinstance(value, Message):
            yield from payloads_of(value, where)
        elif hasattr(value, "items"):  # a map
            for key, item in value.items():
                if isinstance(item, Message):
                    yield from payloads_of(item, f"{where}[{key}]")
        else:  # repeated messages
            for i, item in enumerate(value):
                yield from payloads_of(item, f"{where}[{i}]")


def as_json(payload: Payload) -> dict[str, Any]:
    return {
        "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }


async def replays(history: WorkflowHistory, keys: str) -> BaseException | None:
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=data_converter(Settings(environment="test", temporal_payload_keys=keys)),
        workflow_runner=WORKFLOW_RUNNER,
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    return result.replay_failure


async def test_history_holds_ciphertext_only_and_the_codec_server_serves_admins(
    api: Api,
    worker: None,
    temporal_client: Client,
    make_wallet: MakeWallet,
    booking_id: str,
    settings: Settings,
) -> None:
    user = await make_wallet(50_000)
    answer = await redeem(api, user, booking_id)
    assert answer.status_code == 200, answer.text
    hold = answer.json()
    secret = hold["client_secret"]
    assert secret and hold["payment_intent_id"].startswith("pi_")

    status = await api.http.get(f"/wallets/{user}/redemptions/{booking_id}", headers=api.service)
    assert status.status_code == 200 and status.json()["hold"]["client_secret"] is None
    released = await api.http.post(
        f"/wallets/{user}/release", json={"booking_id": booking_id}, headers=api.service
    )
    assert released.status_code == 202, released.text
    final = await wait_for_end(temporal_client, booking_id)
    assert final.status == "released" and final.hold and final.hold.client_secret is None

    history = await temporal_client.get_workflow_handle(final.workflow_id).fetch_history()
    raw = history.to_json()
    assert secret not in raw and hold["payment_intent_id"] not in raw
    found = list(payloads_of(history.events[0]))  # the start's input, at least
    for event in history.events[1:]:
        found += payloads_of(event)
    assert len(found) >= 5
    ours = [(where, p) for where, p in found if not where.startswith(SDK_BOOKKEEPING)]
    assert [where for where, p in ours if p.metadata.get("encoding") != ENCODING] == []
    assert {p.metadata[KEY_ID] for _, p in ours} == {b"test-1"}

    # The redeem update's answer, as the Temporal UI would send it to the codec server.
    [update] = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED
    ]
    sealed = update.workflow_execution_update_completed_event_attributes.outcome.success
    body = {"payloads": [as_json(p) for p in sealed.payloads]}
    ui = {"X-Namespace": settings.temporal_namespace}
    opened = await api.http.post("/codec/decode", json=body, headers={**api.admin, **ui})
    assert opened.status_code == 200, opened.text
    [payload] = opened.json()["payloads"]
    assert json.loads(base64.b64decode(payload["data"]))["client_secret"] == secret

    anonymous = await api.http.post("/codec/decode", json=body, headers=ui)
    assert anonymous.status_code == 401
    customer = await api.http.post("/codec/decode", json=body, headers=api.customer(user))
    assert customer.status_code == 403
    for refused in (anonymous, customer):
        assert secret not in refused.text

    # The Temporal UI in a browser sends the signed-in admin's session cookie instead.
    def session(headers: dict[str, str]) -> dict[str, str]:
        token = headers["Authorization"].removeprefix("Bearer ")
        return {**ui, "Cookie": f"{SESSION_COOKIE}={token}"}

    by_cookie = await api.http.post("/codec/decode", json=body, headers=session(api.admin))
    assert by_cookie.status_code == 200 and by_cookie.json() == opened.json()
    customer_cookie = session(api.customer(user))
    by_customer = await api.http.post("/codec/decode", json=body, headers=customer_cookie)
    assert by_customer.status_code == 403

    resealed = await api.http.post("/codec/encode", json=opened.json(), headers=api.admin)
    assert resealed.status_code == 200
    [again] = resealed.json()["payloads"]
    assert base64.b64decode(again["metadata"]["encoding"]) == ENCODING
    reopened = await api.http.post("/codec/decode", json=resealed.json(), headers=api.admin)
    assert reopened.json() == opened.json()


async def test_codec_server_answers_cors_for_the_ui_only(api: Api, settings: Settings) -> None:
    ui_origin = f"http://127.0.0.1:{settings.temporal_ui_port}"
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    allowed = await api.http.options("/codec/decode", headers={"Origin": ui_origin, **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ui_origin
    assert allowed.headers["access-control-allow-credentials"] == "true"
    other = await api.http.options(
        "/codec/decode", headers={"Origin": "https://elsewhere.example", **preflight}
    )
    assert "access-control-allow-origin" not in other.headers
    wallet = await api.http.options("/wallets/u1", headers={"Origin": ui_origin, **preflight})
    assert "access-control-allow-origin" not in wallet.headers


async def test_codec_server_refuses_bad_payloads_with_a_reason(api: Api) -> None:
    not_base64 = {"payloads": [{"metadata": {"encoding": "%%%"}, "data": ""}]}
    answer = await api.http.post("/codec/decode", json=not_base64, headers=api.admin)
    assert answer.status_code == 422 and "metadata.encoding" in answer.json()["message"]
    unknown = {
        "payloads": [
            {
                "metadata": {
                    "encoding": base64.b64encode(ENCODING).decode(),
                    KEY_ID: base64.b64encode(b"gone-key").decode(),
                },
                "data": base64.b64encode(b"x" * 40).decode(),
            }
        ]
    }
    answer = await api.http.post("/codec/decode", json=unknown, headers=api.admin)
    assert answer.status_code == 422
    assert answer.json()["code"] == "payload_undecryptable" and "gone-key" in answer.text


async def test_rotation_keeps_a_running_checkout_and_its_history_readable(
    temporal_client: Client,
    temporal_address: str,
    engine: AsyncEngine,
    settings: Settings,
    make_wallet: MakeWallet,
    booking_id: str,
) -> None:
    user = await make_wallet(50_000)
    # Held under the old key (test-1) ...
    async with (
        workers.in_process(temporal_client, engine, settings),
        harness_api.in_process(create_app(settings)) as http,
    ):
        old_api = Api(http, harness_api.Auth(settings))
        answer = await redeem(old_api, user, booking_id)
        assert answer.status_code == 200, answer.text

    # ... released after the rotation: new payloads under test-2, the old ones still read.
    rotated = settings.model_copy(update={"temporal_payload_keys": SecretStr(ROTATED)})
    rotated_client = await connect(rotated, address=temporal_address)
    async with (
        workers.in_process(rotated_client, engine, rotated),
        harness_api.in_process(create_app(rotated)) as http,
    ):
        new_api = Api(http, harness_api.Auth(rotated))
        status = await new_api.http.get(
            f"/wallets/{user}/redemptions/{booking_id}", headers=new_api.service
        )
        assert status.status_code == 200 and status.json()["status"] == "held"
        released = await new_api.http.post(
            f"/wallets/{user}/release",
            json={"booking_id": booking_id},
            headers=new_api.service,
        )
        assert released.status_code == 202, released.text
        final = await wait_for_end(rotated_client, booking_id)
        assert final.status == "released"

        history = await rotated_client.get_workflow_handle(final.workflow_id).fetch_history()
        ours = [
            p
            for e in history.events
            for where, p in payloads_of(e)
            if not where.startswith(SDK_BOOKKEEPING)
        ]
        assert {p.metadata.get(KEY_ID) for p in ours} == {b"test-1", b"test-2"}
        body = {"payloads": [as_json(p) for p in ours]}
        opened = await new_api.http.post("/codec/decode", json=body, headers=new_api.admin)
        assert opened.status_code == 200, opened.text

    assert await replays(history, ROTATED) is None
    failure = await replays(history, NEXT_KEY_LINE)
    assert failure is not None and "test-1" in str(failure)
    assert isinstance(await _result(rotated_client, final.workflow_id), RedemptionState)


async def test_a_worker_without_the_key_fails_its_workflow_tasks_loudly(
    temporal_client: Client,
    temporal_address: str,
    engine: AsyncEngine,
    settings: Settings,
) -> None:
    workflow_id = f"invariant-check-{uuid.uuid4()}"
    handle = await temporal_client.start_workflow(
        InvariantCheckWorkflow.run,
        InvariantCheckInput(stuck_money=False),
        id=workflow_id,
        task_queue=settings.temporal_task_queue,
    )
    keyless = settings.model_copy(update={"temporal_payload_keys": SecretStr(NEXT_KEY_LINE)})
    keyless_client = await connect(keyless, address=temporal_address)
    failure = ""
    async with workers.in_process(keyless_client, engine, keyless):
        for _ in range(200):
            history = await handle.fetch_history()
            failed = [
                e
                for e in history.events
                if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            ]
            if failed:
                failure = failed[0].workflow_task_failed_event_attributes.failure.message
                break
            await asyncio.sleep(0.05)
    assert "'test-1'" in failure and "does not have" in failure
    assert (await handle.describe()).status.name == "RUNNING"  # nothing ran on a guess
    # The worker that has the key finishes it.
    async with workers.in_process(temporal_client, engine, settings):
        report = await asyncio.wait_for(handle.result(), 60)
    assert report is not None


async def _result(client: Client, workflow_id: str) -> RedemptionState:
    handle = client.get_workflow_handle(workflow_id, result_type=RedemptionState)
    return await handle.result()


async def test_the_temporal_cli_reads_a_checkout_through_the_codec_server(
    live_api: Api,
    worker: None,
    temporal_client: Client,
    temporal_address: str,
    make_wallet: MakeWallet,
    booking_id: str,
) -> None:
    user = await make_wallet(50_000)
    answer = await redeem(live_api, user, booking_id)
    assert answer.status_code == 200, answer.text
    secret = answer.json()["client_secret"]
    show = [
        devstack.venv_bin("temporal"),
        "workflow",
        "show",
        "--address",
        temporal_address,
        "--workflow-id",
        f"redemption-{booking_id}",
        "--output",
        "json",
    ]
    codec = ["--codec-endpoint", f"{live_api.url}/codec"]
    admin = live_api.admin["Authorization"]
    decoded = await _run([*show, *codec, "--codec-auth", admin])
    assert secret in _payload_texts(decoded)
    ciphertext = await _run(show)  # no codec
    assert secret not in _payload_texts(ciphertext)
    assert base64.b64encode(ENCODING).decode() in ciphertext
    customer = live_api.customer(user)["Authorization"]
    assert secret not in _payload_texts(await _run([*show, *codec, "--codec-auth", customer]))


def _payload_texts(output: str) -> str:
    """The data of every payload in `temporal workflow show --output json`, decoded from base64
    (the CLI prints payloads in Temporal's JSON form), one per line."""
    texts: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("metadata"), dict) and isinstance(node.get("data"), str):
                texts.append(base64.b64decode(node["data"]).decode(errors="replace"))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    try:
        walk(json.loads(output))
    except json.JSONDecodeError:
        return ""  # the CLI failed (a refused codec call): no payload shown
    return "\n".join(texts)


async def _run(command: list[str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return out.decode()
