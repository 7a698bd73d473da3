"""The console's key page: key usage per key id, and rotation started by a superuser."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.testing import login_with_mfa
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db
URL = "/admin/encryption/keys/"


@pytest.fixture
def superuser():
    return get_user_model().objects.create_superuser("keeper", "keeper@example.org", "a long passphrase 42")


def test_a_superuser_sees_rows_per_key_and_starts_a_rotation_that_is_audited(superuser):
    client = Client()
    login_with_mfa(client, superuser)
    page = client.get(URL)
    assert page.status_code == 200
    assert b"primary (encrypts)" in page.content
    assert b"Rotate encryption keys now" in page.content
    started = client.post(URL)
    assert started.status_code == 302
    events = AuditEvent.objects.filter(action__in=["system.key_rotation_started", "system.key_rotation_finished"])
    assert sorted(events.values_list("action", "actor_username")) == [
        ("system.key_rotation_finished", "keeper"),
        ("system.key_rotation_started", "keeper"),
    ]


def test_staff_who_are_not_superusers_are_refused(django_user_model):
    staff = django_user_model.objects.create_user("clerk", "clerk@example.org", "a long passphrase 42", is_staff=True)
    client = Client()
    login_with_mfa(client, staff)
    assert client.get(URL).status_code == 403
    assert client.post(URL).status_code == 403
    assert not AuditEvent.objects.filter(action="system.key_rotation_started").exists()


def test_the_page_needs_a_console_session(superuser):
    response = Client().get(URL)
    assert response.status_code == 302
    assert "login" in response["Location"]
