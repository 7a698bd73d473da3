"""The Vault provider against a local HTTP server speaking the KV v2 read API (hvac on the wire)."""

from __future__ import annotations

import pytest

from encryption import keyring
from encryption.checks import check_encryption_keys
from encryption.crypto import associated_data_for, decrypt, encrypt, token_key_id
from encryption.errors import KeyConfigurationError, KeyProviderError
from encryption.keyring import PURPOSES, get_key_ring, invalidate_key_cache
from tests.encryption.helpers import make_key, ring
from tests.encryption.vault_stub import VaultStub

TOKEN = "s.test-token-for-the-stub"
AAD = associated_data_for("tests.thing", "secret")


@pytest.fixture
def vault(settings):
    with VaultStub(token=TOKEN) as stub:
        stub.put(
            "secret",
            "ninaivalaigal/encryption",
            {purpose: make_key(f"v1-{purpose.replace('_', '-')}") for purpose in PURPOSES},
        )
        settings.ENCRYPTION_KEY_PROVIDER = "vault"
        settings.ENCRYPTION_VAULT_URL = stub.url
        settings.ENCRYPTION_VAULT_TOKEN = TOKEN
        settings.ENCRYPTION_VAULT_TOKEN_FILE = ""
        settings.ENCRYPTION_VAULT_MOUNT = "secret"
        settings.ENCRYPTION_VAULT_PATH = "ninaivalaigal/encryption"
        yield stub


def test_vault_provider_reads_every_purpose_from_kv_v2(vault):
    assert get_key_ring("field").ids == ["v1-field"]
    assert get_key_ring("backup").ids == ["v1-backup"]
    assert vault.requests[0] == ("/v1/secret/data/ninaivalaigal/encryption", TOKEN)


def test_vault_rotation_is_picked_up_without_a_restart(vault):
    token = encrypt(b"before rotation", associated_data=AAD)
    data = dict(vault.secrets[("secret", "ninaivalaigal/encryption")])
    data["field"] = ring(make_key("v2-field"), data["field"])
    vault.put("secret", "ninaivalaigal/encryption", data)
    invalidate_key_cache()
    assert token_key_id(encrypt(b"after rotation", associated_data=AAD)) == "v2-field"
    assert decrypt(token, associated_data=AAD) == b"before rotation"


def test_vault_token_file_is_read_at_use_time(vault, settings, tmp_path):
    token_file = tmp_path / "vault-token"
    token_file.write_text(TOKEN + "\n")
    settings.ENCRYPTION_VAULT_TOKEN = ""
    settings.ENCRYPTION_VAULT_TOKEN_FILE = str(token_file)
    assert get_key_ring("field").ids == ["v1-field"]


def test_wrong_vault_token_is_a_provider_error(vault, settings):
    settings.ENCRYPTION_VAULT_TOKEN = "s.wrong"
    with pytest.raises(KeyProviderError, match="refused the token"):
        get_key_ring("field")


def test_missing_vault_secret_is_a_missing_key(vault, settings):
    settings.ENCRYPTION_VAULT_PATH = "nowhere"
    with pytest.raises(KeyConfigurationError) as caught:
        get_key_ring("field")
    assert caught.value.code == "missing"


def test_missing_purpose_in_the_vault_secret_is_a_missing_key(vault):
    vault.put("secret", "ninaivalaigal/encryption", {"field": make_key("only-field")})
    with pytest.raises(KeyConfigurationError, match="No backup key"):
        get_key_ring("backup")


def test_unreachable_vault_keeps_serving_the_ring_already_resolved(vault, monkeypatch):
    assert get_key_ring("field").ids == ["v1-field"]
    vault.stop()
    real_monotonic = keyring.time.monotonic
    monkeypatch.setattr(keyring.time, "monotonic", lambda: real_monotonic() + 3600)
    assert get_key_ring("field").ids == ["v1-field"], "an outage does not take the keys away"


def test_unreachable_vault_without_a_resolved_ring_is_a_provider_error(vault):
    vault.stop()
    with pytest.raises(KeyProviderError, match="unreachable"):
        get_key_ring("field")


def test_checks_report_an_unreachable_vault_and_plain_http(vault, settings):
    settings.ENCRYPTION_DEVELOPMENT_KEYS_ALLOWED = False
    assert {message.id for message in check_encryption_keys()} == {"encryption.W001"}
    vault.stop()
    assert "encryption.E007" in {message.id for message in check_encryption_keys()}


def test_plain_http_to_vault_outside_loopback_is_refused_before_any_request(vault, settings, monkeypatch):
    # Should a regression send the request anyway, it goes to a closed loopback port, not the network.
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    settings.ENCRYPTION_VAULT_URL = "http://10.0.0.5:8200"
    with pytest.raises(KeyConfigurationError) as caught:
        get_key_ring("field")
    assert caught.value.code == "insecure"
    assert str(caught.value) == (
        "ENCRYPTION_VAULT_URL uses plain http to 10.0.0.5: secrets would cross the network unencrypted; use https "
        "(plain http is allowed only to a loopback address)."
    )
    assert vault.requests == []
    assert [message.id for message in check_encryption_keys()] == ["encryption.E009"]
