"""The console's key page: key usage per key id, and rotation started by a superuser."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.services.sessions import REAUTHENTICATED_AT_KEY
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


def test_starting_a_rotation_needs_a_fresh_sign_in_and_the_post_is_not_replayed(superuser):
    client = Client()
    login_with_mfa(client, superuser)
    session = client.session
    session[REAUTHENTICATED_AT_KEY] = timezone.now().timestamp() - 3600
    session.save()
    assert client.get(URL).status_code == 200  # reading needs no step-up
    refused = client.post(URL)
    assert refused.status_code == 302
    assert refused["Location"] == f"{reverse('accounts:reauthenticate')}?{urlencode({'next': URL})}"
    assert not AuditEvent.objects.filter(action="system.key_rotation_started").exists()


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


def test_the_page_shows_every_key_ring_and_says_which_are_not_counted(superuser, settings):
    import re

    from encryption.keyring import PURPOSES, invalidate_key_cache
    from encryption.selectors import encryption_key_usage

    client = Client()
    login_with_mfa(client, superuser)  # stores a TOTP key: one encrypted field row at least
    html = client.get(URL).content.decode()
    sections = dict(re.findall(r'<h2 id="purpose-([a-z_]+)">.*?</h2>(.*?)(?=<h2 id="purpose-|<form)', html, re.S))
    assert sorted(sections) == sorted(PURPOSES)
    for purpose in ("field", "blind_index"):
        usage = encryption_key_usage(purpose=purpose)
        primary = usage.primary_id
        row = re.search(
            rf"<td><code>{primary}</code></td>\s*<td>(\d+)</td>\s*<td>primary \(encrypts\)</td>", sections[purpose]
        )
        assert row and int(row.group(1)) == usage.totals.get(primary, 0), purpose
        assert "not counted" not in sections[purpose]
    assert encryption_key_usage(purpose="field").totals  # the field ring's count is not a trivial zero
    for purpose in ("audit_chain", "backup", "audit_archive"):
        assert "<td>not counted</td>" in sections[purpose], purpose
        assert "<td>primary</td>" in sections[purpose]
    # A ring that cannot be read is named, not a server error.
    settings.ENCRYPTION_BACKUP_KEYS = ""
    invalidate_key_cache()
    try:
        response = client.get(URL)
    finally:
        invalidate_key_cache()
    assert response.status_code == 200
    assert "This key ring cannot be read: No backup key is configured" in response.content.decode()
