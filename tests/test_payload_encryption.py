"""The payload codec on its own: keys, encryption, rotation, and refusals that name the key."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload

from api.app import create_app
from loyalty.core.payload_encryption import (
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    PayloadKeyError,
    load_keys,
    parse_keys,
)
from loyalty.core.settings import PROJECT_ROOT, Settings
from loyalty.core.temporal import data_converter
from tests.harness.payload_keys import NEXT_KEY_LINE, ROTATED, TEST_KEY_LINE, TEST_KEYS

SECRET = b'{"client_secret": "pi_123_secret_456"}'


def plain(data: bytes = SECRET) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


async def test_encrypts_whole_payload_and_round_trips() -> None:
    codec = EncryptionCodec(parse_keys(TEST_KEYS))
    [sealed] = await codec.encode([plain()])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"test-1"
    assert b"client_secret" not in sealed.data and b"json/plain" not in sealed.data
    [again] = await codec.encode([plain()])
    assert again.data != sealed.data  # a fresh nonce per payload
    [opened] = await codec.decode([sealed])
    assert opened == plain()


async def test_rotation_encrypts_with_the_new_key_and_reads_the_old() -> None:
    old = EncryptionCodec(parse_keys(TEST_KEYS))
    rotated = EncryptionCodec(parse_keys(ROTATED))
    [from_before] = await old.encode([plain()])
    [from_after] = await rotated.encode([plain()])
    assert from_after.metadata[KEY_ID] == b"test-2"
    assert await rotated.decode([from_before, from_after]) == [plain(), plain()]
    with pytest.raises(PayloadKeyError, match=r"'test-2'.*does not have"):
        await old.decode([from_after])


async def test_altered_or_relabelled_payload_is_refused() -> None:
    codec = EncryptionCodec(parse_keys(ROTATED))
    [sealed] = await codec.encode([plain()])
    flipped = bytes([sealed.data[-1] ^ 1])  # one bit of the tag changed, whatever it was
    altered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + flipped)
    with pytest.raises(PayloadKeyError, match="does not decrypt"):
        await codec.decode([altered])
    truncated = Payload(metadata=dict(sealed.metadata), data=sealed.data[:20])
    with pytest.raises(PayloadKeyError, match="too short"):
        await codec.decode([truncated])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID: b"test-1"}, data=sealed.data)
    with pytest.raises(PayloadKeyError, match="does not decrypt"):
        await codec.decode([relabelled])


async def test_plaintext_payloads_from_before_encryption_pass() -> None:
    codec = EncryptionCodec(parse_keys(TEST_KEYS))
    assert await codec.decode([plain()]) == [plain()]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no payload key"),
        ("justbase64", "entry 1 is not"),
        ("bad id:" + TEST_KEY_LINE.split(":", 1)[1], "entry 1 is not"),
        ("k:not base64!", "'k' is not base64"),
        ("k:" + base64.b64encode(b"short").decode(), "'k' has 5 bytes"),
        (f"{TEST_KEY_LINE},{TEST_KEY_LINE}", "'test-1' is listed twice"),
    ],
)
def test_unusable_keys_are_refused_without_showing_them(text: str, error: str) -> None:
    with pytest.raises(PayloadKeyError, match=error) as caught:
        parse_keys(text)
    assert TEST_KEY_LINE.split(":", 1)[1] not in str(caught.value)


def test_keys_from_a_file_newline_separated_first_is_current(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# rotated 2026-12-03\n{NEXT_KEY_LINE}\n{TEST_KEY_LINE}\n")
    settings = Settings(
        environment="test", temporal_payload_keys=None, temporal_payload_keys_file=path
    )
    keys = load_keys(settings)
    assert keys.current == "test-2" and set(keys.keys) == {"test-1", "test-2"}
    both = Settings(
        environment="test", temporal_payload_keys=TEST_KEYS, temporal_payload_keys_file=path
    )
    with pytest.raises(PayloadKeyError, match="one of"):
        load_keys(both)


def test_development_key_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = Settings(environment="development", var_dir=tmp_path, temporal_payload_keys=None)
    first = load_keys(settings)
    again = load_keys(settings)
    assert first.keys == again.keys and first.current == "dev-1"
    assert (tmp_path / "temporal-payload-keys").stat().st_mode & 0o777 == 0o600


def test_production_refuses_to_start_without_keys_or_with_encryption_off() -> None:
    production = {
        "environment": "production",
        "jwt_jwks_url": "https://idp.example/jwks",
        "stripe_webhook_secret": "whsec_real",
        "session_secret": "a-real-session-secret-of-enough-length-0123456789",
        "database_url": "postgresql://app@db/loyalty",
        "temporal_address": "temporal:7233",
        "stripe_api_key": "sk_live_x",
    }
    with pytest.raises(ValidationError, match="TEMPORAL_PAYLOAD_KEYS"):
        Settings(**production, temporal_payload_keys=None)
    with pytest.raises(ValidationError, match="TEMPORAL_PAYLOAD_ENCRYPTION"):
        Settings(**production, temporal_payload_keys=TEST_KEYS, temporal_payload_encryption=False)
    compose = (PROJECT_ROOT / "docker-compose.yml").read_text()
    [compose_key] = re.findall(r"TEMPORAL_PAYLOAD_KEYS:-([^}]+)\}", compose)
    parse_keys(compose_key)  # usable in development ...
    with pytest.raises(ValidationError, match="not compose's"):  # ... never in production
        Settings(**production, temporal_payload_keys=compose_key)
    Settings(**production, temporal_payload_keys=TEST_KEYS)


async def test_the_data_converter_encrypts_pydantic_payloads() -> None:
    converter = data_converter(Settings(environment="test", temporal_payload_keys=TEST_KEYS))
    [payload] = await converter.encode([{"client_secret": "pi_1_secret_2"}])
    assert payload.metadata["encoding"] == ENCODING
    assert b"pi_1_secret_2" not in payload.SerializeToString()
    assert await converter.decode([payload], [dict]) == [{"client_secret": "pi_1_secret_2"}]


def test_worker_and_api_refuse_to_start_on_unusable_keys() -> None:
    env = {
        **os.environ,
        "TEMPORAL_PAYLOAD_KEYS": "k1:" + base64.b64encode(b"16 bytes only!!!").decode(),
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    }
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "worker: cannot encrypt Temporal payloads: payload key 'k1' has 16 bytes, not 32"
    ]
    with pytest.raises(PayloadKeyError, match="'k1' has 16 bytes"):
        create_app(Settings(environment="test", temporal_payload_keys=env["TEMPORAL_PAYLOAD_KEYS"]))


# Histories saved before payload encryption, kept as they are: workflows that were running when
# encryption was turned on must still replay (their payloads are read as plain JSON).
PLAIN_HISTORIES = {
    "tests/ledger/histories/violations_before_alert.json",
    "tests/vouchers/histories/refused.json",
}


def test_saved_histories_are_encrypted_with_the_test_key_but_the_older_ones() -> None:
    encoding = base64.b64encode(ENCODING).decode()
    plain, encrypted = set(), set()
    for path in sorted(PROJECT_ROOT.glob("tests/*/histories/*.json")):
        name = str(path.relative_to(PROJECT_ROOT))
        (encrypted if encoding in path.read_text() else plain).add(name)
    assert plain == PLAIN_HISTORIES
    assert len(encrypted) >= 30
