"""The blind index: HMAC-SHA256 of a normalised value, kept in step on save, looked up exactly."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from encryption.fields import BlindIndexField, blind_index_filter
from encryption.keyring import get_key_ring
from tests.encryption.helpers import make_key, raw_value, ring
from tests.testapp.models import SecretRecord

pytestmark = pytest.mark.django_db


def _find(value):
    return SecretRecord.objects.filter(blind_index_filter(SecretRecord, "email", value))


def test_index_is_hmac_sha256_of_the_normalised_value_under_the_blind_index_key():
    record = SecretRecord.objects.create(email="  Ann@Example.ORG ")
    key = get_key_ring("blind_index").primary
    expected = hmac.new(key.material, b"testapp.secretrecord.email\x1fann@example.org", hashlib.sha256).hexdigest()
    assert raw_value(SecretRecord, record.pk, "email_index") == f"dev-blind-index:{expected}"
    assert key.material != get_key_ring("field").primary.material


def test_lookup_by_exact_value_after_normalisation():
    ann = SecretRecord.objects.create(email="ann@example.org")
    SecretRecord.objects.create(email="bob@example.org")
    assert list(_find("ANN@example.org ")) == [ann]
    assert list(_find("ann@example.com")) == []
    assert list(SecretRecord.objects.filter(blind_index_filter(SecretRecord, "email_index", "Ann@Example.org"))) == [
        ann
    ]


def test_index_follows_every_save_of_the_source():
    record = SecretRecord.objects.create(email="first@example.org")
    record.email = "second@example.org"
    record.save()
    assert list(_find("second@example.org")) == [record]
    assert not _find("first@example.org").exists()
    record.email = None
    record.save()
    assert raw_value(SecretRecord, record.pk, "email_index") is None
    assert list(_find(None)) == [record]


def test_update_fields_with_the_source_must_include_the_index():
    record = SecretRecord.objects.create(email="first@example.org")
    record.email = "second@example.org"
    with pytest.raises(ValueError, match="email_index"):
        record.save(update_fields=["email"])
    assert SecretRecord.objects.get(pk=record.pk).email == "first@example.org", "nothing was written"
    record.save(update_fields=["email", "email_index"])
    assert list(_find("second@example.org")) == [record]


def test_lookup_finds_rows_indexed_under_an_older_key_during_rekeying(settings):
    old = SecretRecord.objects.create(email="old@example.org")
    settings.ENCRYPTION_BLIND_INDEX_KEYS = ring(make_key("bi-new"), settings.ENCRYPTION_BLIND_INDEX_KEYS)
    new = SecretRecord.objects.create(email="new@example.org")
    assert raw_value(SecretRecord, new.pk, "email_index").startswith("bi-new:")
    assert raw_value(SecretRecord, old.pk, "email_index").startswith("dev-blind-index:")
    assert list(_find("old@example.org")) == [old]
    assert list(_find("new@example.org")) == [new]


def test_equal_values_in_different_domains_get_unrelated_indexes():
    field = SecretRecord._meta.get_field("email_index")
    other = BlindIndexField(source="email", domain="shared-email")
    other.domain_bytes = b"shared-email\x1f"
    assert field.compute("a@example.org") != other.compute("a@example.org")


def test_blind_index_helper_refuses_a_field_without_an_index():
    with pytest.raises(ValueError, match="no \\(single\\) BlindIndexField"):
        blind_index_filter(SecretRecord, "note", "x")


def test_deconstruct_keeps_only_non_defaults():
    _name, path, _args, kwargs = SecretRecord._meta.get_field("email_index").deconstruct()
    assert path == "encryption.fields.BlindIndexField"
    assert kwargs == {"source": "email"}
