"""Opaque keyset cursors: `next_cursor` of the transaction history and of the customer list.

A cursor is the URL-safe base64 (unpadded) of a prefix naming the list and the key of the last
row shown. Clients must treat it as opaque; the prefix keeps a cursor of one list from being
taken by another. Cursors already handed out must keep decoding, so the format never changes."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from loyalty.core.errors import InvalidCursor

MAX_ID = 2**63 - 1  # PostgreSQL's bigint


@dataclass(frozen=True)
class KeysetCursor:
    prefix: str

    def encode(self, key: str | int) -> str:
        raw = f"{self.prefix}{key}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, cursor: str) -> str:
        """The key in `cursor`; InvalidCursor (400) for anything this API did not return."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
            raise _foreign(cursor) from exc
        # PostgreSQL text cannot hold NUL: such a key would fail in the query, not here.
        if not raw.startswith(self.prefix) or "\x00" in raw:
            raise _foreign(cursor)
        return raw.removeprefix(self.prefix)

    def decode_id(self, cursor: str) -> int:
        """The key in `cursor` as a positive integer id (a bigint: larger ones were never
        handed out, and PostgreSQL could not compare them)."""
        key = self.decode(cursor)
        if not key.isascii() or not key.isdigit() or len(key) > len(str(MAX_ID)):
            raise _foreign(cursor)
        value = int(key)
        if not 0 < value <= MAX_ID:
            raise _foreign(cursor)
        return value


def _foreign(cursor: str) -> InvalidCursor:
    return InvalidCursor("the cursor is not one this API returned", cursor=cursor)


TRANSACTIONS = KeysetCursor("tx:")  # key: the tx_id of the last row shown (newest first)
CUSTOMERS = KeysetCursor("customer:")  # key: the user_id of the last row shown
