"""API keys no longer survive a password change unasked (pen-test finding).

The password change page offers to revoke every API key (a checkbox, on by default); a password
reset — where the "if this was not you" of every security email leads — revokes them always.
Each revocation is an ``api.key_revoked`` event, and the count is in the password event.
"""

from __future__ import annotations

import pytest

from api import services as api_services
from api.models import ApiKey
from tests.accounts.conftest import PASSWORD, events, login

pytestmark = pytest.mark.django_db

NEW = "a brand new passphrase 77"


def _keys(user, count=2):
    return [
        api_services.api_key_issue(actor=user, owner=user, name=f"key {n}", scopes=["memories:read"]).api_key
        for n in range(count)
    ]


def _change(client, capture, **extra):
    with capture(execute=True):
        return client.post("/accounts/password/change/", {"new_password1": NEW, "new_password2": NEW, **extra})


def test_the_page_offers_revocation_ticked(client, user):
    import re

    login(client, "alice")
    page = client.get("/accounts/password/change/").content.decode()
    [checkbox] = re.findall(r'<input[^>]*name="revoke_api_keys"[^>]*>', page)
    assert 'type="checkbox"' in checkbox and "checked" in checkbox


@pytest.mark.audit_coverage("auth.password_changed", "api.key_revoked")
def test_with_the_box_ticked_every_key_of_the_user_is_revoked(
    client, user, other_user, django_capture_on_commit_callbacks
):
    mine, theirs = _keys(user), _keys(other_user, 1)
    login(client, "alice")
    response = _change(client, django_capture_on_commit_callbacks, revoke_api_keys="on")
    assert response.status_code == 302
    assert all(ApiKey.objects.get(pk=key.pk).revocation_reason == "password_changed" for key in mine)
    assert ApiKey.objects.get(pk=theirs[0].pk).revoked_at is None
    assert len(events("api.key_revoked")) == 2
    assert events("auth.password_changed")[0]["context"]["api_keys_revoked"] == 2


def test_with_the_box_unticked_the_keys_stay(client, user, django_capture_on_commit_callbacks):
    mine = _keys(user)
    login(client, "alice")
    assert _change(client, django_capture_on_commit_callbacks).status_code == 302
    assert not ApiKey.objects.filter(pk__in=[key.pk for key in mine], revoked_at__isnull=False).exists()
    assert events("auth.password_changed")[0]["context"]["api_keys_revoked"] == 0


def test_a_password_reset_revokes_every_key(client, user, django_capture_on_commit_callbacks):
    import re

    from django.core import mail

    mine = _keys(user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/password/reset/", {"email": "alice@example.org"})
    link = re.search(r"http://testserver(/accounts/\S+)", mail.outbox[-1].body).group(1)
    form = client.get(link, follow=True)
    assert form.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(form.redirect_chain[-1][0], {"new_password1": NEW, "new_password2": NEW})
    assert done.status_code == 302
    assert all(ApiKey.objects.get(pk=key.pk).revocation_reason == "password_reset" for key in mine)
    assert events("auth.password_reset_completed")[-1]["context"] == {"api_keys_revoked": 2}
    assert login(client, "alice", NEW).status_code == 302 and PASSWORD != NEW
