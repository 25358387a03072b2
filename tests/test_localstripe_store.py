"""The localstripe stand-in's store by type lists exactly what localstripe's own scan listed; a
declined PaymentIntent takes another card, and an unknown object is `resource_missing`, as in
Stripe.

localstripe runs as a process in the stack; here its resources are driven in this process, after
devstack.localstripe_server has replaced the store (importing it does that), with webhooks
switched off."""

from __future__ import annotations

from typing import Any

import pytest
from localstripe import resources

from devstack import localstripe_server as localstripe_in_memory

CARD = {"number": "4242424242424242", "exp_month": "12", "exp_year": "2030", "cvc": "123"}
DECLINED = "4000000000000341"  # attaches, then is declined at charge


def scanned(object_name: str) -> list[Any]:
    """What localstripe's own listing returned: every stored object of the type, in order."""
    return [value for key, value in resources.store.items() if key.startswith(object_name + ":")]


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> localstripe_in_memory.StoreByType:
    monkeypatch.setattr(resources, "schedule_webhook", lambda event: None)
    assert isinstance(resources.store, localstripe_in_memory.StoreByType)
    resources.store.clear()
    return resources.store


def test_listing_reads_the_type_index_in_store_order(
    store: localstripe_in_memory.StoreByType,
) -> None:
    method = resources.PaymentMethod._api_create(type="card", card=CARD)
    intents = []
    for amount in (1000, 2000, 3000):
        intent = resources.PaymentIntent._api_create(
            amount=amount, currency="usd", payment_method_types=["card"], payment_method=method.id
        )
        resources.PaymentIntent._api_confirm(intent.id)
        intents.append(intent)
    resources.PaymentIntent._api_update(intents[0].id, metadata={"seen": "again"})  # re-stored
    resources.Refund._api_create(payment_intent=intents[1].id, amount=500)

    for cls in (resources.PaymentIntent, resources.Charge, resources.Refund):
        listed = cls._api_list_all(f"/v1/{cls.object}s")._list
        assert listed == scanned(cls.object) and listed, cls.object
    assert [i.id for i in resources.PaymentIntent._api_list_all("/v1/payment_intents")._list] == [
        i.id for i in intents
    ]
    charges = resources.Charge._api_list_all("/v1/charges")._list
    assert [c.amount_refunded for c in charges] == [0, 500, 0]  # a charge's refunds: a listing


def test_delete_and_clear_keep_the_index_in_step(store: localstripe_in_memory.StoreByType) -> None:
    customers = [resources.Customer._api_create(email=f"c{i}@example.com") for i in range(3)]
    resources.Customer._api_delete(customers[1].id)
    listed = resources.Customer._api_list_all("/v1/customers")._list
    assert (
        [c.id for c in listed]
        == [customers[0].id, customers[2].id]
        == [c.id for c in scanned("customer")]
    )
    store.clear()
    assert resources.Customer._api_list_all("/v1/customers")._list == [] == scanned("customer")


def test_unexpected_list_arguments_are_refused_as_before(
    store: localstripe_in_memory.StoreByType,
) -> None:
    from localstripe.errors import UserError

    with pytest.raises(UserError):
        resources.Customer._api_list_all("/v1/customers", colour="blue")


def _confirm_route() -> Any:
    """The function localstripe's server calls for `POST /v1/payment_intents/{id}/confirm`."""
    (confirm,) = [
        func
        for method, url, func in resources.extra_apis
        if (method, url) == ("POST", "/v1/payment_intents/{id}/confirm")
    ]
    return confirm


def test_a_declined_payment_intent_takes_another_card(
    store: localstripe_in_memory.StoreByType,
) -> None:
    from localstripe.errors import UserError

    confirm = _confirm_route()
    intent = resources.PaymentIntent._api_create(amount=700, currency="vnd")
    declined = resources.PaymentMethod._api_create(type="card", card={**CARD, "number": DECLINED})
    with pytest.raises(UserError) as refusal:
        confirm(intent.id, payment_method=declined.id)
    assert refusal.value.code == 402
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error["code"] == "card_declined"

    good = resources.PaymentMethod._api_create(type="card", card=CARD)
    assert confirm(intent.id, payment_method=good.id).status == "succeeded"
    assert intent.last_payment_error is None
    # Both charges are kept, as Stripe keeps them.
    statuses = sorted(c.status for c in resources.Charge._api_list_all("/v1/charges")._list)
    assert statuses == ["failed", "succeeded"]
    with pytest.raises(UserError) as again:
        confirm(intent.id, payment_method=good.id)
    assert again.value.code == 400


def test_an_unknown_object_is_resource_missing(store: localstripe_in_memory.StoreByType) -> None:
    from localstripe.errors import UserError

    with pytest.raises(UserError) as missing:
        resources.PaymentIntent._api_retrieve("pi_unknown")
    assert missing.value.code == 404
    assert missing.value.body["error"]["code"] == "resource_missing"
