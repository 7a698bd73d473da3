"""The cipher: token format, associated data, typed errors, legacy Fernet reads."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from encryption.crypto import (
    associated_data_for,
    decrypt,
    decrypt_text,
    encrypt,
    encrypt_text,
    reencrypt,
    token_key_id,
)
from encryption.errors import DecryptionError, UnknownKeyError
from encryption.keyring import get_key_ring
from tests.encryption.helpers import legacy_module, make_key, ring

AAD = associated_data_for("testapp.secretrecord", "note")


def test_token_is_version_key_id_and_base64_of_nonce_ciphertext_tag():
    token = encrypt(b"hello", associated_data=AAD)
    version, key_id, payload = token.split(":")
    assert (version, key_id) == ("nv1", "dev-field")
    sealed = base64.b64decode(payload, validate=True)
    assert len(sealed) == 12 + len(b"hello") + 16
    # Any AES-256-GCM implementation opens it with the same key, nonce and associated data.
    key = get_key_ring("field").primary.material
    assert AESGCM(key).decrypt(sealed[:12], sealed[12:], AAD) == b"hello"


def test_every_encryption_uses_a_fresh_nonce():
    assert encrypt(b"same", associated_data=AAD) != encrypt(b"same", associated_data=AAD)


def test_text_round_trip_including_empty_and_non_ascii():
    for value in ("", "plain", "தமிழ் 🔐 \u0000 nul", "x" * 70_000):
        assert decrypt_text(encrypt_text(value, associated_data=AAD), associated_data=AAD) == value


def test_tampered_ciphertext_raises_and_is_reported(decryption_failures):
    token = encrypt(b"account balance 100", associated_data=AAD)
    prefix, payload = token.rsplit(":", 1)
    sealed = bytearray(base64.b64decode(payload))
    sealed[15] ^= 0x01
    tampered = f"{prefix}:{base64.b64encode(bytes(sealed)).decode()}"
    with pytest.raises(DecryptionError) as caught:
        decrypt(tampered, associated_data=AAD)
    assert "authentication failed" in str(caught.value)
    assert caught.value.context == "testapp.secretrecord.note"
    assert "account balance" not in str(caught.value)
    assert [error.reason for error in decryption_failures] == [caught.value.reason]


def test_value_moved_to_another_column_fails_authentication():
    token = encrypt(b"secret note", associated_data=AAD)
    with pytest.raises(DecryptionError, match="authentication failed"):
        decrypt(token, associated_data=associated_data_for("testapp.secretrecord", "title"))
    with pytest.raises(DecryptionError, match="authentication failed"):
        decrypt(token, associated_data=associated_data_for("testapp.othermodel", "note"))


def test_wrong_key_with_the_same_id_fails_authentication(settings):
    token = encrypt(b"secret", associated_data=AAD)
    settings.ENCRYPTION_FIELD_KEYS = make_key("dev-field")
    with pytest.raises(DecryptionError, match="authentication failed") as caught:
        decrypt(token, associated_data=AAD)
    assert caught.value.key_id == "dev-field"


def test_missing_key_raises_unknown_key_error(settings):
    token = encrypt(b"secret", associated_data=AAD)
    settings.ENCRYPTION_FIELD_KEYS = make_key("other")
    with pytest.raises(UnknownKeyError) as caught:
        decrypt(token, associated_data=AAD)
    assert caught.value.key_id == "dev-field"
    assert "no such key" in str(caught.value)


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        ("plain text that was never encrypted", "not an encrypted value"),
        ("", "not an encrypted value"),
        ("nv1:dev-field", "malformed token"),
        ("nv1:dev-field:***", "malformed token"),
        ("nv1:dev-field:" + base64.b64encode(b"short").decode(), "truncated token"),
        ("nv1:" + "k" * 80 + ":AAAA", "malformed token"),
    ],
)
def test_text_that_is_not_a_valid_token_raises(stored, reason):
    with pytest.raises(DecryptionError) as caught:
        decrypt(stored, associated_data=AAD)
    assert caught.value.reason == reason


def test_truncated_token_fails_authentication():
    token = encrypt(b"a somewhat longer secret value", associated_data=AAD)
    prefix, payload = token.rsplit(":", 1)
    sealed = base64.b64decode(payload)[:-4]
    with pytest.raises(DecryptionError):
        decrypt(f"{prefix}:{base64.b64encode(sealed).decode()}", associated_data=AAD)


def test_legacy_fernet_tokens_of_django_encrypted_model_fields_stay_readable(legacy_key):
    token = legacy_module().encrypt_str("written by the old package").decode()
    assert token.startswith("gAAAAA")
    assert token_key_id(token) == "legacy-fernet"
    assert decrypt_text(token, associated_data=AAD) == "written by the old package"


def test_legacy_keys_from_our_own_setting_win(settings):
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    settings.ENCRYPTION_LEGACY_FERNET_KEYS = [key.decode()]
    token = Fernet(key).encrypt(b"old").decode()
    assert decrypt(token, associated_data=AAD) == b"old"


def test_legacy_token_without_legacy_keys_is_an_unknown_key(legacy_key, settings):
    token = legacy_module().encrypt_str("old").decode()
    settings.FIELD_ENCRYPTION_KEY = None
    with pytest.raises(UnknownKeyError) as caught:
        decrypt(token, associated_data=AAD)
    assert caught.value.key_id == "legacy-fernet"


def test_legacy_token_under_another_fernet_key_raises(legacy_key, settings):
    from cryptography.fernet import Fernet

    token = legacy_module().encrypt_str("old").decode()
    settings.FIELD_ENCRYPTION_KEY = [Fernet.generate_key().decode()]
    with pytest.raises(DecryptionError, match="did not verify"):
        decrypt(token, associated_data=AAD)


def test_reencrypt_moves_a_value_to_the_primary_key_once(settings, legacy_key):
    old = make_key("old")
    settings.ENCRYPTION_FIELD_KEYS = old
    token = encrypt(b"value", associated_data=AAD)
    settings.ENCRYPTION_FIELD_KEYS = ring(make_key("new"), old)
    rotated = reencrypt(token, associated_data=AAD)
    assert token_key_id(rotated) == "new"
    assert reencrypt(rotated, associated_data=AAD) is rotated, "already under the primary key: unchanged"
    assert decrypt(rotated, associated_data=AAD) == b"value"

    legacy = legacy_module().encrypt_str("legacy value").decode()
    converted = reencrypt(legacy, associated_data=AAD)
    assert token_key_id(converted) == "new"
    assert decrypt(converted, associated_data=AAD) == b"legacy value"


def test_token_key_id_reads_the_id_without_decrypting():
    assert token_key_id("nv1:k-2026_a:AAAA") == "k-2026_a"
    assert token_key_id("gAAAAABl...") == "legacy-fernet"
    assert token_key_id("hello") is None
    assert token_key_id("nv1::AAAA") is None
