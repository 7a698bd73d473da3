"""Admin actions become audit events; django-auditlog diffs carry the request id, never secrets."""

from __future__ import annotations

import json

import pytest
from auditlog.models import LogEntry as AuditlogEntry
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import path

from audit.admin_log import changed_field_names
from audit.models import AuditEvent


def test_changed_field_names_reads_only_names_from_the_admin_message():
    message = json.dumps([{"changed": {"fields": ["Email address", "Staff status"]}}, {"added": {}}])
    assert changed_field_names(message) == ["Email address", "Staff status"]
    assert changed_field_names("not json") == []
    assert changed_field_names('{"changed": 1}') == []


@pytest.mark.django_db
def test_an_admin_log_entry_is_recorded_with_field_names_only(django_user_model):
    admin = django_user_model.objects.create_superuser(username="root", email="root@example.org", password="x" * 20)
    group = Group.objects.create(name="security")
    LogEntry.objects.log_actions(
        user_id=admin.pk,
        queryset=[group],
        action_flag=CHANGE,
        change_message=[{"changed": {"fields": ["Name"]}}],
        single_object=True,
    )
    event = AuditEvent.objects.get(action="admin.changed")
    assert event.actor_username == "root"
    assert event.target_type == "auth.group"
    assert event.target_id == str(group.pk)
    assert event.context == {"fields": ["Name"]}


def change_user(request):
    from django.contrib.auth import get_user_model
    from django.http import HttpResponse

    user = get_user_model().objects.get(username="target")
    user.first_name = "Changed"
    user.set_password("a brand new password 123")
    user.save()
    return HttpResponse("ok")


urlpatterns = [path("change-user", change_user)]


@pytest.mark.django_db
def test_auditlog_diffs_carry_the_request_id_and_our_client_ip_and_no_password(settings, django_user_model):
    settings.ROOT_URLCONF = __name__
    settings.AUDIT_TRUSTED_PROXY_COUNT = 0
    django_user_model.objects.create_user(username="target", email="t@example.org", password="x" * 20)
    response = Client(REMOTE_ADDR="192.0.2.10").get(
        "/change-user", HTTP_X_REQUEST_ID="req-auditlog-0001", HTTP_X_FORWARDED_FOR="6.6.6.6"
    )
    assert response.status_code == 200
    entry = AuditlogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(django_user_model)
    ).latest("timestamp")
    assert entry.cid == "req-auditlog-0001"
    assert entry.remote_addr == "192.0.2.10", "a forged X-Forwarded-For must not pick the address"
    assert "first_name" in entry.changes_dict
    assert "password" not in entry.changes_dict


# --- django-auditlog follows the "no secret values" rule (issue #15) -------------------------------
SECRET_NAME_PARTS = ("password", "secret", "token", "hash", "key", "otp")


def _secret_fields(model) -> set[str]:
    """Columns that hold a secret: by name, or because the key ring encrypts or blind-indexes them."""
    from encryption.fields import BlindIndexField, EncryptedFieldMixin

    return {
        field.name
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedFieldMixin | BlindIndexField)
        or (any(part in field.name for part in SECRET_NAME_PARTS) and not field.is_relation)
    }


def test_every_model_auditlog_tracks_excludes_its_secret_fields(settings):
    """A secret column added to a tracked model (or a tracked model with one) fails here until excluded."""
    from django.apps import apps

    tracked = settings.AUDITLOG_INCLUDE_TRACKING_MODELS
    assert not getattr(settings, "AUDITLOG_INCLUDE_ALL_MODELS", False), "only the listed models are tracked"
    assert {entry["model"] for entry in tracked} >= {"accounts.user", "auth.group"}
    for entry in tracked:
        model = apps.get_model(entry["model"])
        leaking = _secret_fields(model) - set(entry.get("exclude_fields", ()))
        assert leaking == set(), f"django-auditlog would store {sorted(leaking)} of {entry['model']}"
    # The models that hold secrets are not tracked at all.
    names = {entry["model"] for entry in tracked}
    assert names.isdisjoint({"api.apikey", "accounts.totpdevice", "accounts.backupcode", "accounts.backupcodedevice"})


def test_a_password_change_and_a_new_account_leave_no_hash_or_password_in_auditlog(django_user_model):
    """Through the page a user changes a password on: auditlog's rows hold neither the value nor its hash."""
    from accounts.testing import login_with_mfa

    user = django_user_model.objects.create_user(username="dana", email="dana@example.org", password="x" * 20)
    client = Client()
    login_with_mfa(client, user)
    new_password = "a fresh horse battery 99"
    response = client.post("/accounts/password/change/", {"new_password1": new_password, "new_password2": new_password})
    assert response.status_code == 302
    user.refresh_from_db()
    rows = json.dumps(list(AuditlogEntry.objects.values("changes", "changes_text", "serialized_data")), default=str)
    assert AuditlogEntry.objects.filter(object_pk=str(user.pk)).exists()
    for secret in (new_password, "x" * 20, user.password, user.password.split("$")[-1]):
        assert secret not in rows
    assert "dana@example.org" not in rows  # the email is masked
