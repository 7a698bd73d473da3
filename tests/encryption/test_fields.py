"""Encrypted model fields through ordinary model declarations (tests/testapp/models.py)."""

from __future__ import annotations

import datetime
import json
from zoneinfo import ZoneInfo

import pytest
from django import forms
from django.contrib import admin
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.db import SessionStore
from django.core import checks, serializers
from django.core.exceptions import FieldError
from django.db import models
from django.test.utils import isolate_apps

from encryption.crypto import token_key_id
from encryption.errors import DecryptionError, UnknownKeyError
from encryption.fields import EncryptedCharField, EncryptedJSONField, EncryptedTextField
from tests.encryption.helpers import legacy_token, make_key, raw_row, raw_value, ring, set_raw_value
from tests.testapp.models import SecretRecord

pytestmark = pytest.mark.django_db

ENCRYPTED_COLUMNS = ("note", "title", "email", "metadata", "birthday", "seen_at", "score")

VALUES = {
    "note": "Remember: the launch code is in the blue folder. தமிழ் 🔐",
    "title": "Quarterly plan",
    "email": "Ann.Example@Example.org",
    "metadata": {"tags": ["alpha", "β"], "nested": {"n": 1, "ok": True, "none": None}, "float": 1.5},
    "birthday": datetime.date(1990, 2, 28),
    "seen_at": datetime.datetime(2026, 11, 28, 13, 14, 15, 123456, tzinfo=datetime.UTC),
    "score": -2_000_000_000,
}


def _create(**overrides) -> SecretRecord:
    return SecretRecord.objects.create(label="row", **{**VALUES, **overrides})


def test_every_field_type_round_trips():
    record = _create()
    loaded = SecretRecord.objects.get(pk=record.pk)
    for name, value in VALUES.items():
        assert getattr(loaded, name) == value, name
    assert type(loaded.birthday) is datetime.date
    assert loaded.seen_at.tzinfo is not None


def test_none_is_stored_as_null_and_round_trips():
    record = SecretRecord.objects.create(label="empty")
    assert all(raw_value(SecretRecord, record.pk, column) is None for column in ENCRYPTED_COLUMNS)
    loaded = SecretRecord.objects.get(pk=record.pk)
    assert all(getattr(loaded, column) is None for column in ENCRYPTED_COLUMNS)


def test_empty_values_are_encrypted_too():
    record = _create(note="", title="", metadata={}, score=0)
    assert raw_value(SecretRecord, record.pk, "note").startswith("nv1:")
    loaded = SecretRecord.objects.get(pk=record.pk)
    assert (loaded.note, loaded.title, loaded.metadata, loaded.score) == ("", "", {}, 0)


def test_aware_datetime_in_another_zone_comes_back_as_the_same_instant():
    moment = datetime.datetime(2026, 3, 1, 9, 30, tzinfo=ZoneInfo("Asia/Kolkata"))
    record = _create(seen_at=moment)
    assert SecretRecord.objects.get(pk=record.pk).seen_at == moment


def test_large_values_round_trip():
    note = "x" * 65_536 + "é"
    record = _create(note=note, metadata={"blob": "y" * 65_536})
    loaded = SecretRecord.objects.get(pk=record.pk)
    assert loaded.note == note
    assert loaded.metadata["blob"] == "y" * 65_536


def test_raw_database_columns_never_contain_the_plaintext():
    record = _create()
    row = raw_row(SecretRecord, record.pk)
    stored = " ".join(str(value) for value in row)
    plaintexts = [
        "launch code",
        "Quarterly",
        "Example.org",
        "example.org",
        "alpha",
        "tags",
        "1990",
        "2026-11-28",
        "2000000000",
    ]
    for fragment in plaintexts:
        assert fragment not in stored, fragment
    for column in ENCRYPTED_COLUMNS:
        assert token_key_id(raw_value(SecretRecord, record.pk, column)) == "dev-field"


def test_queryset_update_bulk_create_and_bulk_update_encrypt():
    record = _create()
    SecretRecord.objects.filter(pk=record.pk).update(note="updated in bulk", score=7)
    fresh = SecretRecord.objects.get(pk=record.pk)
    assert (fresh.note, fresh.score) == ("updated in bulk", 7)
    assert raw_value(SecretRecord, record.pk, "note").startswith("nv1:")

    SecretRecord.objects.bulk_create(
        [SecretRecord(label="b", note="bulk one"), SecretRecord(label="b", note="bulk two")]
    )
    items = list(SecretRecord.objects.filter(label="b").order_by("pk"))
    assert [item.note for item in items] == ["bulk one", "bulk two"]
    for item in items:
        item.note += " rewritten"
    SecretRecord.objects.bulk_update(items, ["note"])
    assert list(SecretRecord.objects.filter(label="b").order_by("pk").values_list("note", flat=True)) == [
        "bulk one rewritten",
        "bulk two rewritten",
    ]
    assert all(raw_value(SecretRecord, item.pk, "note").startswith("nv1:") for item in items)


def test_values_and_values_list_decrypt():
    record = _create()
    assert SecretRecord.objects.filter(pk=record.pk).values_list("note", flat=True).get() == VALUES["note"]
    assert SecretRecord.objects.values("metadata").get(pk=record.pk)["metadata"] == VALUES["metadata"]


def test_lookups_on_ciphertext_are_refused_except_isnull():
    _create()
    SecretRecord.objects.create(label="nothing")
    with pytest.raises(FieldError):
        SecretRecord.objects.filter(note=VALUES["note"]).count()
    with pytest.raises(FieldError):
        SecretRecord.objects.filter(email__iexact="x").count()
    with pytest.raises(FieldError):
        SecretRecord.objects.filter(metadata__tags__contains="alpha").count()
    assert SecretRecord.objects.filter(note__isnull=True).count() == 1
    assert SecretRecord.objects.filter(note__isnull=False).count() == 1


def test_tampered_value_in_the_database_raises_and_is_reported(decryption_failures):
    record = _create()
    stored = raw_value(SecretRecord, record.pk, "note")
    flipped = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]
    set_raw_value(SecretRecord, record.pk, "note", flipped)
    with pytest.raises(DecryptionError) as caught:
        SecretRecord.objects.get(pk=record.pk)
    assert caught.value.context == "testapp.secretrecord.note"
    assert VALUES["note"] not in str(caught.value)
    assert decryption_failures and decryption_failures[-1].context == "testapp.secretrecord.note"


def test_ciphertext_moved_to_another_rows_other_column_raises():
    first = _create(note="first note", title="first title")
    second = _create(note="second note", title="second title")
    set_raw_value(SecretRecord, second.pk, "title", raw_value(SecretRecord, first.pk, "note"))
    with pytest.raises(DecryptionError, match="authentication failed") as caught:
        SecretRecord.objects.get(pk=second.pk)
    assert caught.value.context == "testapp.secretrecord.title"
    assert SecretRecord.objects.get(pk=first.pk).note == "first note", "the source row is untouched"


def test_plaintext_written_behind_the_orms_back_is_an_error_not_data():
    record = _create()
    set_raw_value(SecretRecord, record.pk, "note", "I was never encrypted")
    with pytest.raises(DecryptionError, match="not an encrypted value"):
        SecretRecord.objects.get(pk=record.pk)


def test_wrong_key_and_missing_key_raise_typed_errors(settings):
    record = _create()
    settings.ENCRYPTION_FIELD_KEYS = make_key("dev-field")
    with pytest.raises(DecryptionError, match="authentication failed"):
        SecretRecord.objects.get(pk=record.pk)
    settings.ENCRYPTION_FIELD_KEYS = make_key("someone-else")
    with pytest.raises(UnknownKeyError):
        SecretRecord.objects.get(pk=record.pk)


def test_key_ring_order_first_encrypts_all_decrypt_through_the_orm(settings):
    old_record = _create(note="under dev key")
    settings.ENCRYPTION_FIELD_KEYS = ring(make_key("new"), settings.ENCRYPTION_FIELD_KEYS)
    new_record = _create(note="under new key")
    assert token_key_id(raw_value(SecretRecord, new_record.pk, "note")) == "new"
    assert token_key_id(raw_value(SecretRecord, old_record.pk, "note")) == "dev-field"
    assert {r.note for r in SecretRecord.objects.all()} == {"under dev key", "under new key"}


@pytest.mark.parametrize(
    ("column", "legacy_class", "value"),
    [
        ("note", "EncryptedTextField", "old note ✓"),
        ("title", "EncryptedCharField", "old title"),
        ("email", "EncryptedEmailField", "old@example.org"),
        ("birthday", "EncryptedDateField", datetime.date(1985, 12, 31)),
        ("seen_at", "EncryptedDateTimeField", datetime.datetime(2024, 5, 6, 7, 8, 9, 101112, tzinfo=datetime.UTC)),
        ("seen_at", "EncryptedDateTimeField", datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)),
        ("score", "EncryptedIntegerField", 123456),
    ],
)
def test_values_written_by_django_encrypted_model_fields_stay_readable(legacy_key, column, legacy_class, value):
    record = SecretRecord.objects.create(label="legacy")
    token = legacy_token(legacy_class, value)
    assert token.startswith("gAAAAA")
    set_raw_value(SecretRecord, record.pk, column, token)
    assert getattr(SecretRecord.objects.get(pk=record.pk), column) == value


def test_legacy_json_text_reads_into_the_json_field(legacy_key):
    record = SecretRecord.objects.create(label="legacy")
    set_raw_value(SecretRecord, record.pk, "metadata", legacy_token("EncryptedTextField", json.dumps({"a": 1})))
    assert SecretRecord.objects.get(pk=record.pk).metadata == {"a": 1}


def test_legacy_value_that_does_not_parse_as_the_type_raises(legacy_key):
    record = SecretRecord.objects.create(label="legacy")
    set_raw_value(SecretRecord, record.pk, "score", legacy_token("EncryptedTextField", "not a number"))
    with pytest.raises(DecryptionError, match="not a valid EncryptedIntegerField value"):
        SecretRecord.objects.get(pk=record.pk)


class SecretRecordForm(forms.ModelForm):
    class Meta:
        model = SecretRecord
        fields = ["label", "note", "title", "email", "metadata", "birthday", "seen_at", "score"]


def test_model_form_round_trips_plaintext_and_token_like_input_stays_plaintext():
    token_like = "gAAAAABlooks-like-a-fernet-token=="
    form = SecretRecordForm(
        data={
            "label": "form",
            "note": token_like,
            "title": "nv1:dev-field:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "email": "form@example.org",
            "metadata": '{"k": [1, 2]}',
            "birthday": "2001-09-11",
            "seen_at": "2026-01-02 03:04:05",
            "score": "42",
        }
    )
    assert form.is_valid(), form.errors
    record = form.save()
    loaded = SecretRecord.objects.get(pk=record.pk)
    assert loaded.note == token_like, "input that looks like a token is stored as the text typed"
    assert loaded.title.startswith("nv1:dev-field:")
    assert token_key_id(raw_value(SecretRecord, record.pk, "title")) == "dev-field"
    assert loaded.metadata == {"k": [1, 2]}
    assert loaded.birthday == datetime.date(2001, 9, 11)
    assert loaded.score == 42

    # Editing the loaded instance shows plaintext and saves it back unchanged.
    bound = SecretRecordForm(instance=loaded)
    assert bound.initial["note"] == token_like
    again = SecretRecordForm(data={**bound.initial, "metadata": json.dumps(bound.initial["metadata"])}, instance=loaded)
    assert again.is_valid(), again.errors
    again.save()
    assert SecretRecord.objects.get(pk=record.pk).note == token_like


def test_model_form_validates_plaintext_limits():
    form = SecretRecordForm(data={"label": "x", "title": "t" * 121, "email": "not-an-email", "score": "3000000000"})
    assert not form.is_valid()
    assert set(form.errors) == {"title", "email", "score"}


def _admin_request(factory, user, method: str, path: str, data: dict | None = None):
    request = getattr(factory, method)(path, data or {})
    request.user = user
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    request._dont_enforce_csrf_checks = True
    return request


def test_admin_add_and_change_round_trip(rf, django_user_model):
    """The admin's own add and change views: plaintext in, ciphertext stored, plaintext shown.

    The views are called on the registered ModelAdmin directly, so the test does not depend on
    how the admin site authenticates (password, MFA).
    """
    admin_user = django_user_model.objects.create_superuser(
        username="root-admin", email="root@example.org", password="x" * 16
    )
    model_admin = admin.site._registry[SecretRecord]
    data = {
        "label": "via admin",
        "note": "typed into the admin",
        "title": "admin title",
        "email": "admin-typed@example.org",
        "metadata": '{"from": "admin"}',
        "birthday": "1999-12-31",
        "seen_at_0": "2026-11-28",
        "seen_at_1": "10:11:12",
        "score": "5",
    }
    response = model_admin.add_view(_admin_request(rf, admin_user, "post", "/admin/testapp/secretrecord/add/", data))
    assert response.status_code == 302, getattr(response, "context_data", {}).get("errors")
    record = SecretRecord.objects.get(label="via admin")
    assert record.note == "typed into the admin"
    assert record.metadata == {"from": "admin"}
    assert record.seen_at == datetime.datetime(2026, 11, 28, 10, 11, 12, tzinfo=datetime.UTC)
    assert "typed into the admin" not in str(raw_row(SecretRecord, record.pk))

    path = f"/admin/testapp/secretrecord/{record.pk}/change/"
    change_page = model_admin.change_view(_admin_request(rf, admin_user, "get", path), str(record.pk))
    change_page.render()
    assert b"typed into the admin" in change_page.content
    assert raw_value(SecretRecord, record.pk, "note").encode() not in change_page.content

    # Saving the change form unchanged keeps the plaintext (no ciphertext re-entered as text).
    saved = model_admin.change_view(_admin_request(rf, admin_user, "post", path, data), str(record.pk))
    assert saved.status_code == 302
    assert SecretRecord.objects.get(pk=record.pk).note == "typed into the admin"


def test_serializers_dump_and_load_plaintext():
    record = _create()
    dumped = serializers.serialize("json", SecretRecord.objects.filter(pk=record.pk))
    assert "launch code" in dumped
    loaded = next(serializers.deserialize("json", dumped)).object
    assert loaded.metadata == VALUES["metadata"]
    assert loaded.note == VALUES["note"]


def test_associated_data_comes_from_the_model_and_column():
    assert SecretRecord._meta.get_field("note").associated_data == b"nv1\x1ftestapp.secretrecord\x1fnote"


@isolate_apps("tests.testapp")
def test_encrypted_fields_refuse_unique_and_db_index():
    class Bad(models.Model):
        code = EncryptedCharField(max_length=10, unique=True)
        body = EncryptedTextField(db_index=True)

        class Meta:
            app_label = "testapp"

        def __str__(self) -> str:
            return "bad"

    ids = [message.id for message in Bad.check() if isinstance(message, checks.Error)]
    assert ids.count("encryption.E101") == 2


def test_deconstruct_round_trips_for_migrations():
    field = EncryptedJSONField(encoder=None, null=True)
    name, path, args, kwargs = field.deconstruct()
    assert path == "encryption.fields.EncryptedJSONField"
    assert kwargs == {"null": True}


def test_failed_decryption_through_the_orm_records_an_audit_event():
    from audit.actions import Action, Outcome
    from audit.models import AuditEvent

    record = _create()
    set_raw_value(SecretRecord, record.pk, "email", raw_value(SecretRecord, record.pk, "note"))
    with pytest.raises(DecryptionError):
        SecretRecord.objects.get(pk=record.pk)
    event = AuditEvent.objects.get(action=Action.DECRYPTION_FAILED)
    assert event.outcome == Outcome.FAILURE
    assert event.context["field"] == "testapp.secretrecord.email"
    assert event.context["key_id"] == "dev-field"
    assert VALUES["note"] not in str(event.context)
