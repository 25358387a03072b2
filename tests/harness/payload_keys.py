"""The test suite's payload keys (never used outside tests). Every client, worker and replayer of
the suite encrypts with TEST_KEYS (tests/conftest.py sets TEMPORAL_PAYLOAD_KEYS), and the saved
histories written by the suite are encrypted with it, so the replay tests decrypt them with it.
ROTATED lists a newer current key before it, as an operator's rotation does."""

from __future__ import annotations

TEST_KEY_LINE = "test-1:Oc3UTZxjJqyj/xhhBnj5EdX4cgGxeHDlVFCzEitFHEw="
NEXT_KEY_LINE = "test-2:wZLmEJFP5acO69kJuQVozVmQxoMlB7LZZaK6vn7yWHs="

TEST_KEYS = TEST_KEY_LINE
ROTATED = f"{NEXT_KEY_LINE},{TEST_KEY_LINE}"
