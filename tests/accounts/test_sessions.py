"""Tracked sessions: opaque ids, timeouts, revocation in every process, rotation, few writes."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import TrackedSession
from tests.accounts.conftest import PASSWORD, START, actions, events, login

pytestmark = pytest.mark.django_db


def _client(user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", address="192.0.2.1"):
    return Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=address)


def test_sessions_page_lists_sessions_by_opaque_id_and_marks_the_current_one(user):
    phone = _client("Mozilla/5.0 (Linux; Android 14) Chrome/130.0 Mobile Safari/537.36", "192.0.2.7")
    laptop = _client()
    login(phone, "alice")
    login(laptop, "alice")
    response = laptop.get("/accounts/sessions/")
    content = response.content.decode()
    assert "Chrome on Android" in content and "Firefox on Linux" in content
    assert "(this session)" in content
    for session_key in Session.objects.values_list("session_key", flat=True):
        assert session_key not in content
    for tracked in TrackedSession.objects.all():
        assert len(tracked.public_id) >= 22


@pytest.mark.audit_coverage("auth.session_revoked")
def test_revoking_a_session_refuses_its_very_next_request(user):
    phone, laptop = _client(address="192.0.2.7"), _client()
    login(phone, "alice")
    login(laptop, "alice")
    phone_session = TrackedSession.objects.get(ip_address="192.0.2.7")
    response = laptop.post(f"/accounts/sessions/{phone_session.public_id}/revoke/")
    assert response.status_code == 302
    response = phone.get("/accounts/security/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    phone_session.refresh_from_db()
    assert phone_session.end_reason == "revoked"
    assert laptop.get("/accounts/security/").status_code == 200
    revoked, refused = events("auth.session_revoked")
    assert revoked["target_id"] == phone_session.public_id and revoked["actor_username"] == "alice"
    assert refused["outcome"] == "denied" and refused["target_id"] == phone_session.public_id
    assert refused["context"] == {"reason": "ended_session_used", "ended_by": "revoked"}
    assert b"Your session has ended" in phone.get("/accounts/login/").content


def test_a_session_id_of_another_user_or_a_revoked_one_is_refused(user, other_user):
    alice, bob = _client(), _client(address="192.0.2.8")
    login(alice, "alice")
    login(bob, "bob")
    bobs = TrackedSession.objects.get(user=other_user)
    assert alice.post(f"/accounts/sessions/{bobs.public_id}/revoke/").status_code == 404
    assert alice.post("/accounts/sessions/not-a-session-id/revoke/").status_code == 404
    assert bob.get("/accounts/security/").status_code == 200


@pytest.mark.audit_coverage("auth.session_revoked_all")
def test_log_out_all_other_sessions_needs_step_up_and_keeps_this_one(user):
    with time_machine.travel(START, tick=False) as machine:
        others = [_client(address=f"192.0.2.{index}") for index in range(10, 13)]
        for other in others:
            login(other, "alice")
        laptop = _client()
        login(laptop, "alice")
        machine.shift(datetime.timedelta(minutes=11))
        response = laptop.post("/accounts/sessions/revoke-others/")
        assert response["Location"].startswith("/accounts/reauthenticate/")
        laptop.post("/accounts/reauthenticate/", {"password": PASSWORD})
        laptop.post("/accounts/sessions/revoke-others/")
        assert all(other.get("/accounts/security/").status_code == 302 for other in others)
        assert laptop.get("/accounts/security/").status_code == 200
    assert events("auth.session_revoked_all")[0]["context"]["ended"] == 3


@pytest.mark.audit_coverage("auth.session_expired")
def test_idle_and_absolute_timeouts(user):
    with time_machine.travel(START, tick=False) as machine:
        client = _client()
        login(client, "alice")
        for _ in range(30):  # active every 25 minutes for 12.5 hours
            machine.shift(datetime.timedelta(minutes=25))
            if client.get("/accounts/security/").status_code != 200:
                break
        elapsed = datetime.datetime.now(tz=datetime.UTC) - START
        assert datetime.timedelta(hours=12) <= elapsed <= datetime.timedelta(hours=12, minutes=25)
        assert TrackedSession.objects.get().end_reason == "absolute_timeout"
        login(client, "alice")
        machine.shift(datetime.timedelta(minutes=31))
        assert client.get("/accounts/security/").status_code == 302
    assert [row["context"]["reason"] for row in events("auth.session_expired")] == ["absolute_timeout", "idle_timeout"]


def test_last_seen_is_written_at_most_once_a_minute(user):
    with time_machine.travel(START, tick=False) as machine:
        client = _client()
        login(client, "alice")
        machine.shift(datetime.timedelta(seconds=10))
        with CaptureQueriesContext(connection) as queries:
            for _ in range(5):
                client.get("/accounts/sessions/")
        writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("UPDATE", "INSERT"))]
        assert writes == []
        machine.shift(datetime.timedelta(seconds=60))
        with CaptureQueriesContext(connection) as queries:
            client.get("/accounts/sessions/")
            client.get("/accounts/sessions/")
        writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
        assert len(writes) == 1 and "accounts_trackedsession" in writes[0]


def test_password_change_ends_every_other_session(user, django_capture_on_commit_callbacks):
    from django.core import mail

    other, current = _client(address="192.0.2.50"), _client()
    login(other, "alice")
    login(current, "alice")
    with django_capture_on_commit_callbacks(execute=True):
        response = current.post(
            "/accounts/password/change/",
            {"new_password1": "a brand new passphrase 77", "new_password2": "a brand new passphrase 77"},
        )
    assert response.status_code == 302
    assert current.get("/accounts/security/").status_code == 200
    assert other.get("/accounts/security/").status_code == 302
    assert TrackedSession.objects.get(ip_address="192.0.2.50").end_reason == "password_changed"
    assert "Your password was changed" in [message.subject for message in mail.outbox]
    changed = events("auth.password_changed")[0]
    assert changed["context"] == {"others_ended": 1, "api_keys_revoked": 0}


def test_privilege_change_rotates_the_session_key(user, staff_user):
    client = _client()
    login(client, "alice")
    before = client.cookies["sessionid"].value
    client.get("/accounts/security/")
    assert client.cookies["sessionid"].value == before
    group = __import__("django.contrib.auth.models", fromlist=["Group"]).Group.objects.create(name="editors")
    user.groups.add(group)
    client.get("/accounts/security/")
    assert client.cookies["sessionid"].value != before
    assert "auth.session_created" in actions()


def test_mfa_pass_rotates_the_session_key(user):
    from tests.accounts.conftest import enroll

    with time_machine.travel(START, tick=False) as machine:
        client = _client()
        login(client, "alice")
        before = client.cookies["sessionid"].value
        enroll(user)  # (through the services: the page flow is in test_pages)
        machine.shift(datetime.timedelta(seconds=31))
        from tests.accounts.conftest import Authenticator

        device = user.totp_devices.get()
        from accounts import totp

        client.post(
            "/accounts/reauthenticate/",
            {"password": PASSWORD, "code": Authenticator(totp.key_to_base32(device.bin_key)).now()},
        )
        assert client.cookies["sessionid"].value != before
        assert TrackedSession.objects.get().mfa_verified


def test_new_device_login_is_emailed(user, django_capture_on_commit_callbacks):
    from django.core import mail

    with django_capture_on_commit_callbacks(execute=True):
        login(_client(), "alice")
        login(_client(), "alice")
        login(_client(address="203.0.113.9"), "alice")
    assert [message.subject for message in mail.outbox] == ["New sign-in to your account"]
    assert "203.0.113.9" in mail.outbox[0].body and "Firefox on Linux" in mail.outbox[0].body
    assert mail.outbox[0].alternatives[0][1] == "text/html"
