"""The key ring: parsing, order (first encrypts, all decrypt), providers, resolution at use time."""

from __future__ import annotations

import base64
import secrets

import pytest

from encryption import keyring
from encryption.crypto import associated_data_for, decrypt, encrypt, token_key_id
from encryption.errors import KeyConfigurationError, UnknownKeyError
from encryption.keyring import (
    PURPOSES,
    development_key_material,
    get_key_ring,
    invalidate_key_cache,
    is_development_key,
    load_key_ring,
    parse_key_ring,
)
from tests.encryption.helpers import make_key, ring

AAD = associated_data_for("tests.thing", "secret")


def test_parse_accepts_commas_lines_comments_and_both_base64_alphabets():
    material = bytes(range(32))
    standard = base64.b64encode(material).decode()
    urlsafe = base64.urlsafe_b64encode(material).decode().rstrip("=")
    older = base64.b64encode(b"x" * 32).decode()
    text = f"# rotated 2026-11\nnew:{standard}, old:{urlsafe}\n\n  older:{older}  # retired soon\n"
    parsed = parse_key_ring(text, purpose="field", source="test")
    assert parsed.ids == ["new", "old", "older"]
    assert parsed.primary.id == "new"
    assert parsed.get("old").material == material


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "No field key"),
        ("justbase64withoutid", "not of the form id:BASE64KEY"),
        ("bad id:" + base64.b64encode(b"k" * 32).decode(), "invalid key id"),
        ("k1:not-base64!!", "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "is 5 bytes; it must be 32"),
        ("k1:" + base64.b64encode(b"a" * 32).decode() + ",k1:" + base64.b64encode(b"b" * 32).decode(), "appears twice"),
    ],
)
def test_parse_refuses_bad_key_text_with_a_clear_message_and_no_key_material(text, fragment):
    with pytest.raises(KeyConfigurationError) as caught:
        parse_key_ring(text, purpose="field", source="setting ENCRYPTION_FIELD_KEYS")
    assert fragment in str(caught.value)
    if ":" in text:
        assert text.split(":", 1)[1][:12] not in str(caught.value)


def test_key_repr_never_shows_material():
    parsed = parse_key_ring(make_key("k1"), purpose="field", source="test")
    assert repr(parsed.primary) == "<Key k1>"
    assert base64.b64encode(parsed.primary.material).decode() not in repr(parsed) + str(parsed.primary)


def test_unknown_key_id_raises_unknown_key_error():
    parsed = parse_key_ring(make_key("k1"), purpose="field", source="test")
    with pytest.raises(UnknownKeyError) as caught:
        parsed.get("k2")
    assert caught.value.key_id == "k2"


def test_first_key_encrypts_and_every_key_decrypts(settings):
    old, new = make_key("old"), make_key("new")
    settings.ENCRYPTION_FIELD_KEYS = old
    under_old = encrypt(b"written long ago", associated_data=AAD)
    assert token_key_id(under_old) == "old"

    settings.ENCRYPTION_FIELD_KEYS = ring(new, old)
    under_new = encrypt(b"written today", associated_data=AAD)
    assert token_key_id(under_new) == "new"
    assert decrypt(under_old, associated_data=AAD) == b"written long ago"
    assert decrypt(under_new, associated_data=AAD) == b"written today"

    settings.ENCRYPTION_FIELD_KEYS = new
    with pytest.raises(UnknownKeyError):
        decrypt(under_old, associated_data=AAD)


def test_keys_are_resolved_at_use_time_not_at_import(settings):
    first = get_key_ring("field")
    settings.ENCRYPTION_FIELD_KEYS = make_key("replacement")
    assert get_key_ring("field").ids == ["replacement"]
    assert first.ids != ["replacement"]


def test_resolved_ring_is_cached_until_invalidated_or_expired(settings, tmp_path, monkeypatch):
    (tmp_path / "field").write_text(make_key("one") + "\n")
    settings.ENCRYPTION_KEY_PROVIDER = "file"
    settings.ENCRYPTION_KEYS_DIR = str(tmp_path)
    settings.ENCRYPTION_KEY_CACHE_SECONDS = 60
    assert get_key_ring("field").ids == ["one"]

    # A rotation on disk: seen after invalidation (or after the cache time) without a restart.
    (tmp_path / "field").write_text(ring(make_key("two"), make_key("one")) + "\n")
    assert get_key_ring("field").ids == ["one"], "served from the cache"
    invalidate_key_cache()
    assert get_key_ring("field").ids == ["two", "one"]

    (tmp_path / "field").write_text(make_key("three") + "\n")
    real_monotonic = keyring.time.monotonic
    monkeypatch.setattr(keyring.time, "monotonic", lambda: real_monotonic() + 61)
    assert get_key_ring("field").ids == ["three"], "re-read once the cache time has passed"


def test_file_provider_reads_one_file_per_purpose(settings, tmp_path):
    for purpose in PURPOSES:
        (tmp_path / purpose).write_text(f"# {purpose}\n{make_key(purpose.replace('_', '-'))}\n")
    settings.ENCRYPTION_KEY_PROVIDER = "file"
    settings.ENCRYPTION_KEYS_DIR = str(tmp_path)
    assert {purpose: get_key_ring(purpose).ids for purpose in PURPOSES} == {
        "field": ["field"],
        "blind_index": ["blind-index"],
        "audit_chain": ["audit-chain"],
        "backup": ["backup"],
        "audit_archive": ["audit-archive"],
        "audit_checkpoint": ["audit-checkpoint"],
    }


def test_file_provider_missing_file_is_a_missing_key(settings, tmp_path):
    settings.ENCRYPTION_KEY_PROVIDER = "file"
    settings.ENCRYPTION_KEYS_DIR = str(tmp_path)
    with pytest.raises(KeyConfigurationError) as caught:
        get_key_ring("backup")
    assert caught.value.code == "missing"


def test_unknown_provider_is_refused(settings):
    settings.ENCRYPTION_KEY_PROVIDER = "s3"
    with pytest.raises(KeyConfigurationError) as caught:
        load_key_ring("field")
    assert caught.value.code == "unknown-provider"


def test_unknown_purpose_is_a_programming_error():
    with pytest.raises(ValueError, match="Unknown key purpose"):
        get_key_ring("fields")


def test_test_settings_use_the_public_development_keys():
    for purpose in PURPOSES:
        key = get_key_ring(purpose).primary
        assert is_development_key(key)
        assert key.material == development_key_material(purpose)
    assert not is_development_key(parse_key_ring(make_key("real"), purpose="field", source="test").primary)


def test_embedded_default_key_file_is_created_once_with_private_mode(tmp_path):
    from config.secrets import load_or_create_key_file

    path = load_or_create_key_file(tmp_path / "secrets", "field")
    first = path.read_text()
    assert load_or_create_key_file(tmp_path / "secrets", "field").read_text() == first
    assert path.stat().st_mode & 0o777 == 0o600
    parsed = parse_key_ring(first, purpose="field", source="file")
    assert parsed.primary.id.startswith("local-")
    assert len(parsed.primary.material) == 32


def test_blind_index_hmac_matches_rfc_2104():
    import hashlib
    import hmac

    material = secrets.token_bytes(32)
    key = keyring.Key("k", material)
    assert key.hmac_sha256_hex(b"value") == hmac.new(material, b"value", hashlib.sha256).hexdigest()
    assert key.hmac_sha256_hex(b"value") == key.hmac_sha256_hex(b"value"), "the prepared state is not consumed"
