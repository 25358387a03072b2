"""The keyset cursors of the history and the customer list: the same tokens on the wire as the
API has always returned (so cursors handed out earlier keep working), and a 400 for any cursor
the API did not return, a cursor of the other list included."""

from __future__ import annotations

import pytest

from loyalty.core.errors import InvalidCursor
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
    assert TRANSACTIONS.decode_id(TRANSACTIONS.encode(2**63 - 1)) == 2**63 - 1
    foreign_keys = (0, -5, "x", "42\x00", 2**63, "٣", " 7", "+7")
    for foreign in (TRANSACTIONS.encode(key) for key in foreign_keys):
        with pytest.raises(InvalidCursor, match="not one this API returned"):
            TRANSACTIONS.decode_id(foreign)


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
    with pytest.raises(InvalidCursor, match="not one this API returned") as refused:
        CUSTOMERS.decode(token)
    assert refused.value.details == {"cursor": token}


@pytest.mark.parametrize("token", ["Y3VzdG9tZXI6AA", "dHg6NDI"])
async def test_customer_list_answers_400_for_foreign_cursors(api, auth, token):
    response = await api.http.get("/customers", headers=auth.admin(), params={"cursor": token})
    assert response.status_code == 400, response.text
    assert response.json() == {
        "code": "invalid_cursor",
        "message": "the cursor is not one this API returned",
        "details": {"cursor": token},
    }


async def test_history_refuses_a_customer_cursor(api, auth, make_wallet):
    user = await make_wallet(5)
    token = CUSTOMERS.encode(user)
    response = await api.http.get(
        f"/wallets/{user}/transactions", headers=auth.customer(user), params={"cursor": token}
    )
    assert response.status_code == 400, response.text
    assert response.json()["message"] == "the cursor is not one this API returned"
