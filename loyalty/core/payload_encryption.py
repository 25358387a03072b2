"""Encryption of every payload the service passes through Temporal: workflow and activity inputs
and results, update answers, signals, queries, memos and the details of failures.

Temporal stores payloads in its histories and shows them in its UI; a checkout's payloads name
the customer, the booking and the Stripe client secret. The codec below encrypts each payload on
the client and the worker (AES-256-GCM from `cryptography`), so the cluster and its operators
hold only ciphertext; the codec server (api/routers/codec.py) decrypts for the Temporal UI when
an admin asks. Search attributes are not payloads: they stay plain, so they hold nothing secret;
so do failure messages (codes, ids and amounts, which operators read in the UI as they are).

Keys rotate. Each encrypted payload names its key in its metadata (`encryption-key-id`); new
payloads use the current key, the first of TEMPORAL_PAYLOAD_KEYS, and older ones decrypt with
the key they name, as long as it is still listed. A payload naming a key this process lacks is
an error, never passed on as it is: a worker without the key fails its workflow tasks loudly.

Payloads that are not encrypted (written before encryption was turned on, or by a `temporal`
CLI without the codec) are decoded as they are, so running workflows survive the switch."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec

from loyalty.core.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12  # GCM's standard nonce; random per payload (2^32 payloads per key stay safe)
KEY_BYTES = 32  # AES-256
TAG_BYTES = 16  # GCM's authentication tag, at the end of each ciphertext
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
DEV_KEYS_FILE = "temporal-payload-keys"


class PayloadKeyError(ValueError):
    """Keys that cannot be used, or a payload that cannot be decrypted with them."""


@dataclass(frozen=True)
class PayloadKeys:
    """Key id -> 32-byte key; `current` encrypts new payloads."""

    current: str
    keys: Mapping[str, bytes] = field(repr=False)

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise PayloadKeyError(f"the current key {self.current!r} is not among the keys")


def generate_key_line(key_id: str) -> str:
    """A new key as a TEMPORAL_PAYLOAD_KEYS entry: `id:base64`."""
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def parse_keys(text: str) -> PayloadKeys:
    """`id:base64key` entries, separated by commas or new lines, the current key first. The
    error names the entry's id (never its key material)."""
    entries = [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]
    entries = [entry for entry in entries if not entry.startswith("#")]
    if not entries:
        raise PayloadKeyError("no payload key given")
    keys: dict[str, bytes] = {}
    for number, entry in enumerate(entries, start=1):
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not KEY_ID_PATTERN.fullmatch(key_id):
            raise PayloadKeyError(
                f"payload key entry {number} is not `id:base64key` with an id of letters, "
                "digits, '.', '_' or '-'"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as err:
            raise PayloadKeyError(f"payload key {key_id!r} is not base64") from err
        if len(key) != KEY_BYTES:
            raise PayloadKeyError(f"payload key {key_id!r} has {len(key)} bytes, not {KEY_BYTES}")
        if key_id in keys:
            raise PayloadKeyError(f"payload key {key_id!r} is listed twice")
        keys[key_id] = key
    return PayloadKeys(current=next(iter(keys)), keys=keys)


def load_keys(settings: Settings) -> PayloadKeys:
    """The keys of TEMPORAL_PAYLOAD_KEYS, else of TEMPORAL_PAYLOAD_KEYS_FILE. Outside
    production, with neither set, a key generated once and kept in VAR_DIR (the settings
    refuse production without one)."""
    if settings.temporal_payload_keys is not None:
        if settings.temporal_payload_keys_file is not None:
            raise PayloadKeyError("set one of TEMPORAL_PAYLOAD_KEYS and its _FILE, not both")
        return parse_keys(settings.temporal_payload_keys.get_secret_value())
    if settings.temporal_payload_keys_file is not None:
        try:
            return parse_keys(settings.temporal_payload_keys_file.read_text())
        except OSError as err:
            raise PayloadKeyError(f"cannot read TEMPORAL_PAYLOAD_KEYS_FILE: {err}") from err
    if settings.environment == "production":
        raise PayloadKeyError("production needs TEMPORAL_PAYLOAD_KEYS or its _FILE")
    return parse_keys(_development_keys(settings.var_dir / DEV_KEYS_FILE))


def _development_keys(path: Path) -> str:
    """The development key file, created (readable by its owner only) on first use."""
    try:
        return path.read_text()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of `make run` made it meanwhile
        return path.read_text()
    with os.fdopen(fd, "w") as out:
        out.write(generate_key_line("dev-1") + "\n")
    return path.read_text()


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each whole serialized payload (metadata included, so the encoding and
    the message type are hidden too). The key id is the associated data: a payload moved under
    another key's id does not decrypt."""

    def __init__(self, keys: PayloadKeys) -> None:
        self._current = keys.current
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.keys.items()}

    @property
    def key_ids(self) -> list[str]:
        return list(self._ciphers)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        key_id = self._current.encode()
        sealed = self._ciphers[self._current].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(
                f"payload encrypted with key {key_id!r}, which this process does not have "
                f"(its keys: {', '.join(self._ciphers)}); add it to TEMPORAL_PAYLOAD_KEYS"
            )
        if len(payload.data) < NONCE_BYTES + TAG_BYTES:
            raise PayloadKeyError(f"payload under key {key_id!r} is too short to be ours")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag as err:
            raise PayloadKeyError(
                f"payload under key {key_id!r} does not decrypt: altered, or another key of "
                "the same id"
            ) from err
        return Payload.FromString(plain)


def encrypting(converter: DataConverter, settings: Settings) -> DataConverter:
    """`converter` with the encryption codec of `settings` (or as it is where
    TEMPORAL_PAYLOAD_ENCRYPTION is off, outside production only)."""
    if not settings.temporal_payload_encryption:
        return converter
    return replace(converter, payload_codec=EncryptionCodec(load_keys(settings)))
