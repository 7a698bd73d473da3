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
