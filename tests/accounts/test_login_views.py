"""The two-step login page, logout and step-up re-authentication, with bad input of every kind."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.test import Client

from accounts.models import FailureCounter, TrackedSession
from tests.accounts.conftest import PASSWORD, START, actions, audit_dump, enroll, events, login

pytestmark = pytest.mark.django_db


@pytest.mark.audit_coverage("auth.session_created", "auth.login_succeeded")
def test_password_only_login_creates_a_tracked_session_and_records_it(client, user):
    response = login(client, " ALICE ")
    assert response.status_code == 302 and response["Location"] == "/accounts/security/"
    assert actions() == ["auth.session_created", "auth.login_succeeded"]
    login_event = events("auth.login_succeeded")[0]
    assert login_event["subject_username"] == "alice" and login_event["context"] == {"method": "password"}
    tracked = TrackedSession.objects.get()
    assert tracked.method == "password" and not tracked.mfa_verified
    assert client.session["_accounts_tracked_session"] == tracked.pk
    assert client.get("/accounts/security/").status_code == 200


def test_login_rotates_the_session_key(client, user):
    client.get("/accounts/login/")
    client.cookies["sessionid"] = "attacker-fixed-session-key-000000"
    login(client, "alice")
    assert client.cookies["sessionid"].value != "attacker-fixed-session-key-000000"


@pytest.mark.audit_coverage("auth.login_failed")
def test_wrong_password_is_refused_recorded_and_counted(client, user):
    response = login(client, "Alice", "wrong password")
    assert response.status_code == 200
    assert b"The username or password is not right." in response.content
    failed = events("auth.login_failed")
    assert [(row["outcome"], row["subject_username"], row["context"]["reason"]) for row in failed] == [
        ("failure", "alice", "bad_credentials")
    ]
    assert sorted(FailureCounter.objects.values_list("address", "failure_count")) == [("", 1), ("127.0.0.1", 1)]
    assert not TrackedSession.objects.exists()


def test_unknown_username_gets_the_same_answer_and_is_recorded_normalised(client, db):
    response = login(client, "  NoBody ", "whatever password")
    assert b"The username or password is not right." in response.content
    failed = events("auth.login_failed")[0]
    assert failed["subject_username"] == "nobody" and failed["subject_id"] == ""


@pytest.mark.parametrize("username", ["ali\x00ce", "alice\x1b[31m", "ali\u202ece", "a\u200bb"])
def test_usernames_with_control_characters_are_refused_and_recorded(client, user, username):
    response = login(client, username)
    assert response.status_code == 400
    assert b"Usernames cannot contain control characters." in response.content or (
        b"Null characters are not allowed." in response.content
    )
    assert b'aria-describedby="id_username_error"' in response.content
    failed = events("auth.login_failed")[0]
    assert failed["context"]["reason"] == "invalid_input"
    assert not FailureCounter.objects.exists()


def test_login_post_without_csrf_token_is_refused_with_a_clear_page_and_recorded(user):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert b"This form could not be accepted" in response.content
    denied = events("auth.login_failed")[0]
    assert denied["outcome"] == "denied" and denied["context"]["reason"] == "csrf_failed"
    assert not TrackedSession.objects.exists() and not FailureCounter.objects.exists()
    # With the token it works.
    client.get("/accounts/login/")
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302


@pytest.mark.audit_coverage("auth.mfa_verify_succeeded")
def test_two_step_login_with_mfa(client, user):
    with time_machine.travel(START, tick=False):
        app, _ = enroll(user)
    with time_machine.travel(START + datetime.timedelta(seconds=40), tick=False):
        response = login(client, "alice")
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/verify/")
        # Not logged in yet.
        assert client.get("/accounts/security/").status_code == 302
        response = client.post("/accounts/login/verify/", {"code": app.now()})
        assert response.status_code == 302
        tracked = TrackedSession.objects.get()
        assert tracked.method == "password+totp" and tracked.mfa_verified
        assert client.get("/accounts/security/").status_code == 200
    login_event = events("auth.login_succeeded")[0]
    assert login_event["context"] == {"method": "password+totp"}
    assert "auth.mfa_verify_succeeded" in actions()


@pytest.mark.audit_coverage("auth.mfa_verify_failed")
def test_mfa_step_rejects_bad_codes_with_clear_messages(client, user):
    with time_machine.travel(START, tick=False) as machine:
        app, _ = enroll(user)
        machine.shift(datetime.timedelta(seconds=30))
        login(client, "alice")
        response = client.post("/accounts/login/verify/", {"code": "abc"})
        assert response.status_code == 400 and b"Enter the 6 digits" in response.content
        response = client.post("/accounts/login/verify/", {"code": "123456"})
        assert response.status_code == 429 and b"Too many wrong codes" in response.content
        machine.shift(datetime.timedelta(seconds=3))
        response = client.post("/accounts/login/verify/", {"code": "9" * 200})
        assert response.status_code == 400 and b"Enter the 6 digits" in response.content
        machine.shift(datetime.timedelta(seconds=5))
        response = client.post("/accounts/login/verify/", {"code": app.now()})
        assert response.status_code == 302
    assert not FailureCounter.objects.get(kind="mfa").failure_count


def test_the_code_step_times_out(client, user):
    with time_machine.travel(START, tick=False) as machine:
        app, _ = enroll(user)
        login(client, "alice")
        machine.shift(datetime.timedelta(minutes=6))
        response = client.post("/accounts/login/verify/", {"code": app.now()})
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
        assert not TrackedSession.objects.exists()


@pytest.mark.audit_coverage("auth.backup_code_used")
def test_backup_code_login_shows_how_many_remain(client, user):
    with time_machine.travel(START, tick=False):
        _app, codes = enroll(user)
        login(client, "alice")
        response = client.post("/accounts/login/verify/", {"code": codes[3]}, follow=True)
    assert b"You signed in with a backup code. 9 backup codes left." in response.content
    assert TrackedSession.objects.get().method == "password+backup_code"


def test_unverified_email_cannot_log_in_and_gets_a_new_link(client, user, django_capture_on_commit_callbacks):
    from django.core import mail

    user.email_verified = False
    user.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = login(client, "alice")
    assert b"Confirm your email address first" in response.content
    assert not TrackedSession.objects.exists()
    assert [message.subject for message in mail.outbox] == ["Confirm your email address"]
    denied = events("auth.login_failed")[0]
    assert denied["outcome"] == "denied" and denied["context"]["reason"] == "email_unverified"


@pytest.mark.audit_coverage("auth.logout")
def test_logout_ends_the_tracked_session_and_records_it(client, user):
    login(client, "alice")
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert TrackedSession.objects.get().end_reason == "logout"
    assert events("auth.logout")[0]["subject_username"] == "alice"
    assert client.get("/accounts/security/").status_code == 302


@pytest.mark.audit_coverage("auth.reauthenticated")
def test_step_up_is_required_for_sensitive_pages_and_expires(client, user):
    with time_machine.travel(START, tick=False) as machine:
        login(client, "alice")
        assert client.get("/accounts/password/change/").status_code == 200  # fresh from the login
        machine.shift(datetime.timedelta(minutes=11))
        response = client.get("/accounts/password/change/")
        assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
        response = client.post("/accounts/reauthenticate/?next=/accounts/password/change/", {"password": "nope"})
        assert response.status_code == 400 and b"That password is not right." in response.content
        response = client.post(
            "/accounts/reauthenticate/", {"password": PASSWORD, "next": "/accounts/password/change/"}
        )
        assert response.status_code == 302 and response["Location"] == "/accounts/password/change/"
        assert client.get("/accounts/password/change/").status_code == 200
    assert events("auth.reauthenticated")[0]["context"] == {"method": "password"}
    assert events("auth.login_failed")[-1]["context"]["purpose"] == "step_up"


def test_step_up_with_mfa_asks_for_a_code(client, user):
    with time_machine.travel(START, tick=False) as machine:
        app, _ = enroll(user)
        machine.shift(datetime.timedelta(seconds=30))
        login(client, "alice", code=app.now())
        machine.shift(datetime.timedelta(minutes=11))
        response = client.post("/accounts/reauthenticate/", {"password": PASSWORD, "code": "", "next": "/"})
        assert response.status_code == 400
        response = client.post("/accounts/reauthenticate/", {"password": PASSWORD, "code": app.now(), "next": "/x/"})
        assert response.status_code == 302 and response["Location"] == "/x/"
    assert events("auth.reauthenticated")[0]["context"] == {"method": "totp"}


def test_open_redirects_are_refused(client, user):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"}
    )
    assert response["Location"] == "/accounts/security/"


def test_no_secret_reaches_an_audit_event(client, user):
    with time_machine.travel(START, tick=False) as machine:
        app, codes = enroll(user)
        login(client, "alice", "wrong " + PASSWORD)
        machine.shift(datetime.timedelta(seconds=31))
        code = app.now()
        login(client, "alice", code=code)
        session_key = client.cookies["sessionid"].value
        client.post("/accounts/logout/")
        login(client, "alice", code=codes[0])
    dump = audit_dump()
    from accounts import totp
    from accounts.models import TOTPDevice

    device = TOTPDevice.objects.get()
    key, key_base32 = device.key, totp.key_to_base32(device.bin_key)
    for secret in [PASSWORD, code, key, key_base32, session_key, *codes, *(c.replace("-", "") for c in codes)]:
        assert secret not in dump
