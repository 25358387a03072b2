"""The keyset cursors of the history and the customer list: the same tokens on the wire as the
API has always returned (so cursors handed out earlier keep working), and a 422 for any cursor
the API did not return, a cursor of the other list included."""

from __future__ import annotations

import pytest

from loyalty.core.errors import ValidationFailed
from loyalty.wallets.cursors import CUSTOMERS, TRANSACTIONS

# Literal tokens: base64url without padding of "tx:42", "customer:user-1" and "customer:".
WIRE = [
    (TRANSACTIONS, 42, "dHg6NDI"),
    (CUSTOMERS, "user-1", "Y3VzdG9tZXI6dXNlci0x"),
    (CUSTOMERS, "", "Y3VzdG9tZXI6"),
]


@pytest.mark.parametrize(("cursor", "key", "token"), WIRE)
def test_tokens_on_the_wire_are_unchanged(cursor, key, token):
    assert cursor.encode(key) == token
    assert cursor.decode(token) == str(key)


def test_transaction_cursors_carry_positive_ids():
    assert TRANSACTIONS.decode_id(TRANSACTIONS.encode(9_000_000_000)) == 9_000_000_000
    for foreign in ("dHg6MA", TRANSACTIONS.encode(-5), TRANSACTIONS.encode("x"), "dHg6NDIA"):
        with pytest.raises(ValidationFailed, match="not one this API returned"):
            TRANSACTIONS.decode_id(foreign)  # tx:0, tx:-5, tx:x, tx:42 with a NUL


@pytest.mark.parametrize(
    "token",
    [
        "not-a-cursor",
        "dHg6NDI",  # a history cursor
        "Y3VzdG9tZXI6AA",  # customer: and a NUL, which PostgreSQL text cannot hold
        "é",
        "/w",  # not UTF-8 once decoded
    ],
)
def test_foreign_customer_cursors_are_refused(token):
    with pytest.raises(ValidationFailed, match="not one this API returned") as refused:
        CUSTOMERS.decode(token)
    assert refused.value.details == {"cursor": token}


@pytest.mark.parametrize("token", ["Y3VzdG9tZXI6AA", "dHg6NDI"])
async def test_customer_list_answers_422_for_foreign_cursors(api, auth, token):
    response = await api.http.get("/customers", headers=auth.admin(), params={"cursor": token})
    assert response.status_code == 422, response.text
    assert response.json() == {
        "code": "validation_error",
        "message": "the cursor is not one this API returned",
        "details": {"cursor": token},
    }


async def test_history_refuses_a_customer_cursor(api, auth, make_wallet):
    user = await make_wallet(5)
    token = CUSTOMERS.encode(user)
    response = await api.http.get(
        f"/wallets/{user}/transactions", headers=auth.customer(user), params={"cursor": token}
    )
    assert response.status_code == 422, response.text
    assert response.json()["message"] == "the cursor is not one this API returned"
