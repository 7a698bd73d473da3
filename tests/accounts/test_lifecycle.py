"""Sign-up with email verification, password reset, email change: links tampered, reused, expired."""

from __future__ import annotations

import datetime
import re
import time

import pytest
import time_machine
from django.core import mail

from accounts.models import TrackedSession, User
from tests.accounts.conftest import NEW_PASSWORD, PASSWORD, START, events, login

pytestmark = pytest.mark.django_db


def _link(message) -> str:
    return re.search(r"http://testserver(/accounts/\S+)", message.body).group(1)


def _sign_up(client, capture, username="carol", email="carol@example.org"):
    with capture(execute=True):
        return client.post(
            "/accounts/signup/",
            {"username": username, "email": email, "password1": PASSWORD, "password2": PASSWORD},
        )


@pytest.mark.audit_coverage("auth.signup", "auth.email_verification_sent", "auth.email_verified")
def test_sign_up_verify_then_log_in(client, django_capture_on_commit_callbacks):
    response = _sign_up(client, django_capture_on_commit_callbacks, username="Carol ")
    assert response.status_code == 302 and response["Location"] == "/accounts/signup/done/"
    carol = User.objects.get(username="carol")
    assert not carol.email_verified
    assert b"Confirm your email address first" in login(client, "carol").content
    link = _link(mail.outbox[0])
    assert client.get(link).status_code == 200  # a page with a button: GET changes nothing
    assert not User.objects.get(pk=carol.pk).email_verified
    assert client.post(link).status_code == 302
    assert User.objects.get(pk=carol.pk).email_verified
    assert login(client, "carol").status_code == 302
    # Single use.
    response = client.post(link)
    assert response.status_code == 400 and b"already used" in response.content
    assert [row["action"] for row in events("auth.signup", "auth.email_verification_sent", "auth.email_verified")] == [
        "auth.signup",
        "auth.email_verification_sent",
        "auth.email_verified",
        "auth.email_verified",
    ]
    assert events("auth.email_verified")[-1]["context"] == {"reason": "used"}
    assert mail.outbox[0].alternatives and "text/html" in mail.outbox[0].alternatives[0][1]


def test_tampered_and_expired_verification_links_are_refused(client, django_capture_on_commit_callbacks):
    with time_machine.travel(START, tick=False) as machine:
        _sign_up(client, django_capture_on_commit_callbacks)
        link = _link(mail.outbox[0])
        tampered = link.replace("/verify-email/", "/verify-email/x")
        assert client.post(tampered).status_code == 400
        machine.shift(datetime.timedelta(hours=25))
        assert client.post(link).status_code == 400
    assert not User.objects.get(username="carol").email_verified
    assert [row["context"]["reason"] for row in events("auth.email_verified")] == ["tampered", "expired"]


def test_sign_up_with_a_registered_email_reveals_nothing_and_tells_the_owner(
    client, user, django_capture_on_commit_callbacks
):
    response = _sign_up(client, django_capture_on_commit_callbacks, username="mallory", email="ALICE@example.org")
    assert response.status_code == 302 and response["Location"] == "/accounts/signup/done/"
    assert not User.objects.filter(username="mallory").exists()
    assert mail.outbox[0].to == ["alice@example.org"]
    assert mail.outbox[0].subject == "Someone tried to sign up with your email address"


def test_sign_up_with_a_taken_username_is_a_field_error(client, user, django_capture_on_commit_callbacks):
    response = _sign_up(client, django_capture_on_commit_callbacks, username="ALICE", email="new@example.org")
    assert response.status_code == 400 and b"already exists" in response.content


@pytest.mark.audit_coverage("auth.password_reset_requested", "auth.password_reset_completed")
def test_password_reset_same_answer_either_way_and_link_works_once(
    client, user, settings, django_capture_on_commit_callbacks
):
    settings.ACCOUNTS_PASSWORD_RESET_RESPONSE_FLOOR = 0.3
    other = __import__("django.test", fromlist=["Client"]).Client(REMOTE_ADDR="192.0.2.33")
    login(other, "alice")  # (a login changes last_login, which Django's reset tokens depend on)
    timings = {}
    for email in ["alice@example.org", "nobody@example.org"]:
        with django_capture_on_commit_callbacks(execute=True):  # emails are sent after the response
            started = time.monotonic()
            response = client.post("/accounts/password/reset/", {"email": email})
            timings[email] = time.monotonic() - started
        assert response.status_code == 302 and response["Location"] == "/accounts/password/reset/done/"
    assert abs(timings["alice@example.org"] - timings["nobody@example.org"]) < 0.15
    assert all(value >= 0.3 for value in timings.values())
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.org"]
    assert [row["outcome"] for row in events("auth.password_reset_requested")] == ["success", "failure"]
    link = _link(mail.outbox[0])
    response = client.get(link)
    assert response.status_code == 302 and response["Location"].endswith("/set-password/")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(response["Location"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert User.objects.get(pk=user.pk).check_password(NEW_PASSWORD)
    assert TrackedSession.objects.get().end_reason == "password_reset"
    assert other.get("/accounts/security/").status_code == 302
    # Reused link: refused, nothing changes.
    response = client.get(link)
    assert response.status_code == 400 and b"already used" in response.content
    assert events("auth.password_reset_completed")[-1]["outcome"] == "failure"
    assert mail.outbox[-1].subject == "Your password was changed"


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/password/reset/MQ/bad-token/",
        "/accounts/password/reset/!!!/x/",
        "/accounts/password/reset/MQ/set-password/",
    ],
)
def test_tampered_reset_links_are_refused(client, user, path):
    response = client.get(path)
    assert response.status_code == 400 and b"This link does not work" in response.content
    assert User.objects.get(pk=user.pk).check_password(PASSWORD)


def test_reset_link_expires_within_an_hour(client, user, django_capture_on_commit_callbacks):
    with time_machine.travel(START, tick=False) as machine:
        with django_capture_on_commit_callbacks(execute=True):
            client.post("/accounts/password/reset/", {"email": "alice@example.org"})
        machine.shift(datetime.timedelta(minutes=61))
        assert client.get(_link(mail.outbox[0])).status_code == 400


@pytest.mark.audit_coverage("auth.email_changed")
def test_email_change_confirms_at_the_new_address_and_notifies_both(client, user, django_capture_on_commit_callbacks):
    login(client, "alice")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/email/change/", {"email": "alice.new@example.org"})
    assert response.status_code == 302
    assert mail.outbox[0].to == ["alice.new@example.org"]
    link = _link(mail.outbox[0])
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(link).status_code == 302
    assert User.objects.get(pk=user.pk).email == "alice.new@example.org"
    notified = sorted(message.to[0] for message in mail.outbox[1:])
    assert notified == ["alice.new@example.org", "alice@example.org"]
    assert client.post(link).status_code == 400
    assert [row["outcome"] for row in events("auth.email_changed")] == ["success", "failure"]
