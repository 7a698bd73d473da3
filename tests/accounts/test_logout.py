"""Every way out ends the tracked session and records ``auth.logout`` exactly once.

The account pages' sign-out, the console's *Log out*, and any code that calls
``django.contrib.auth.logout`` all go through ``accounts.services.sessions``.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import logout as django_logout
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, RequestFactory

from accounts.models import TrackedSession
from accounts.testing import login_with_mfa
from tests.accounts.conftest import events, login

pytestmark = pytest.mark.django_db


def _ended_by_logout(user) -> bool:
    tracked = TrackedSession.objects.get(user=user)
    return tracked.ended_at is not None and tracked.end_reason == TrackedSession.EndReason.LOGOUT


def _logout_events(user) -> list[dict]:
    return [row for row in events("auth.logout") if row["subject_username"] == user.username]


def test_the_account_pages_sign_out_records_one_event(client, user):
    login(client, "alice")
    assert client.post("/accounts/logout/").status_code == 302
    assert _ended_by_logout(user)
    [event] = _logout_events(user)
    assert event["actor_username"] == "alice" and event["target_type"] == "accounts.trackedsession"


def test_the_consoles_log_out_ends_the_tracked_session_and_records_one_event(staff_user):
    client = Client()
    login_with_mfa(client, staff_user)
    assert client.get("/admin/").status_code == 200
    response = client.post("/admin/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert _ended_by_logout(staff_user)
    [event] = _logout_events(staff_user)
    assert event["actor_username"] == staff_user.username
    assert event["target_id"] == TrackedSession.objects.get(user=staff_user).public_id
    # The browser session is gone too: the console asks for a login again.
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert "You are signed out." in client.get("/accounts/login/").content.decode()


def test_the_consoles_log_out_page_asks_for_a_post(staff_user):
    """A GET (a link, a prefetch) never logs anyone out: it shows the sign-out form."""
    client = Client()
    login_with_mfa(client, staff_user)
    response = client.get("/admin/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/logout/"
    assert TrackedSession.objects.get(user=staff_user).ended_at is None
    assert not _logout_events(staff_user)


def test_the_consoles_log_out_refuses_a_request_without_its_csrf_token_and_records_it(staff_user):
    client = Client(enforce_csrf_checks=True)
    login_with_mfa(client, staff_user)
    response = client.post("/admin/logout/")
    assert response.status_code == 403
    assert TrackedSession.objects.get(user=staff_user).ended_at is None
    assert not _logout_events(staff_user)
    [refusal] = events("authz.permission_denied")
    assert refusal["context"]["reason"] == "csrf_failed" and refusal["context"]["path"] == "/admin/logout/"


def test_any_call_of_django_logout_ends_the_tracked_session_once(user):
    client = Client()
    login(client, "alice")
    request = RequestFactory().get("/")
    request.session = SessionStore(session_key=client.session.session_key)
    request.user = user
    django_logout(request)
    assert _ended_by_logout(user)
    assert len(_logout_events(user)) == 1
    # The browser's session was flushed with it.
    assert client.get("/accounts/security/").status_code == 302


def test_logging_out_an_anonymous_request_records_nothing(client):
    assert client.post("/accounts/logout/").status_code == 302
    request = RequestFactory().get("/")
    request.session = SessionStore()
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    django_logout(request)
    assert not events("auth.logout")
