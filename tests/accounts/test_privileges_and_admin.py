"""Privilege changes are audited on every path; the admin needs MFA and step-up; admin unlock and sessions."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.contrib.auth.models import Group, Permission
from django.test import Client

from accounts.models import FailureCounter, TrackedSession, User
from core.context import acting_as
from tests.accounts.conftest import PASSWORD, START, Authenticator, enroll, events, login

pytestmark = pytest.mark.django_db


def _flag_events():
    return [
        (row["action"], row["subject_username"], row["actor_username"])
        for row in events(
            "authz.staff_granted", "authz.staff_revoked", "authz.superuser_granted", "authz.superuser_revoked"
        )
    ]


def test_save_queryset_update_and_bulk_update_are_all_audited(user, other_user, staff_user):
    baseline = len(_flag_events())
    with acting_as(staff_user):
        user.is_staff = True
        user.save()
        User.objects.filter(pk__in=[user.pk, other_user.pk]).update(is_superuser=True)
        user.is_staff = False
        other_user.is_staff = True
        User.objects.bulk_update([user, other_user], ["is_staff"])
        User.objects.filter(pk=user.pk).update(first_name="Alice")  # not a privilege: no event
    assert _flag_events()[baseline:] == [
        ("authz.staff_granted", "alice", "root-admin"),
        ("authz.superuser_granted", "alice", "root-admin"),
        ("authz.superuser_granted", "bob", "root-admin"),
        ("authz.staff_revoked", "alice", "root-admin"),
        ("authz.staff_granted", "bob", "root-admin"),
    ]
    assert User.objects.get(pk=user.pk).privilege_version == 3


def test_group_and_permission_changes_are_audited_in_both_directions(user, other_user):
    """Each event names what changed and the whole set before and after (``old``, ``new``)."""
    editors = Group.objects.create(name="editors")
    Group.objects.create(name="auditors").user_set.add(user)
    permission = Permission.objects.get(codename="view_user")
    user.groups.add(editors)
    editors.user_set.add(other_user)
    user.groups.clear()
    user.user_permissions.add(permission)
    editors.permissions.add(permission)
    rows = events("authz.group_membership_changed", "authz.user_permissions_changed", "authz.group_permissions_changed")
    assert [(row["action"], row["subject_username"], row["context"]) for row in rows] == [
        ("authz.group_membership_changed", "alice", {"added": ["auditors"], "old": [], "new": ["auditors"]}),
        ("authz.group_membership_changed", "alice",
         {"added": ["editors"], "old": ["auditors"], "new": ["auditors", "editors"]}),
        ("authz.group_membership_changed", "bob", {"added": ["editors"], "old": [], "new": ["editors"]}),
        ("authz.group_membership_changed", "alice",
         {"removed": ["auditors", "editors"], "old": ["auditors", "editors"], "new": []}),
        ("authz.user_permissions_changed", "alice",
         {"added": ["accounts.view_user"], "old": [], "new": ["accounts.view_user"]}),
        ("authz.group_permissions_changed", "",
         {"added": ["accounts.view_user"], "group": "editors", "old": [], "new": ["accounts.view_user"]}),
    ]


def _staff_client(staff_user, machine):
    app, _ = enroll(staff_user)
    machine.shift(datetime.timedelta(seconds=31))
    client = Client()
    login(client, staff_user.username, code=app.now())
    return client, app


def test_admin_login_redirects_to_the_two_step_login(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_admin_refuses_a_staff_session_without_mfa_and_sends_staff_to_enrollment(staff_user):
    client = Client()
    response = login(client, staff_user.username)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/mfa/setup/")
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/mfa/setup/")
    response = client.get("/accounts/sessions/")
    assert response["Location"].startswith("/accounts/mfa/setup/")
    assert client.get("/accounts/mfa/setup/").status_code == 200


def test_staff_with_a_device_but_an_unverified_session_is_sent_to_reauthenticate(staff_user):
    enroll(staff_user)
    client = Client()
    client.force_login(staff_user)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")


def test_admin_after_mfa(staff_user):
    with time_machine.travel(START, tick=False) as machine:
        client, _ = _staff_client(staff_user, machine)
        assert client.get("/admin/").status_code == 200
        assert client.get("/admin/accounts/trackedsession/").status_code == 200
        assert client.get("/admin/accounts/failurecounter/").status_code == 200


@pytest.mark.audit_coverage("authz.staff_granted")
def test_admin_privilege_change_needs_step_up_and_is_audited(staff_user, user):
    with time_machine.travel(START, tick=False) as machine:
        client, app = _staff_client(staff_user, machine)
        machine.shift(datetime.timedelta(minutes=11))
        url = f"/admin/accounts/user/{user.pk}/change/"
        form = {
            "username": "alice",
            "email": "alice@example.org",
            "is_active": "on",
            "is_staff": "on",
            "date_joined_0": "2026-03-01",
            "date_joined_1": "09:00:00",
            "initial-date_joined_0": "2026-03-01",
            "initial-date_joined_1": "09:00:00",
            "email_verified": "on",
            "tracked_sessions-TOTAL_FORMS": "0",
            "tracked_sessions-INITIAL_FORMS": "0",
            "tracked_sessions-MIN_NUM_FORMS": "0",
            "tracked_sessions-MAX_NUM_FORMS": "0",
        }
        response = client.post(url, form)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
        assert not User.objects.get(pk=user.pk).is_staff
        client.post("/accounts/reauthenticate/", {"password": PASSWORD, "code": app.now()})
        response = client.post(url, form)
        assert response.status_code == 302, response.content[:3000]
    assert User.objects.get(pk=user.pk).is_staff
    assert ("authz.staff_granted", "alice", "root-admin") in _flag_events()


@pytest.mark.audit_coverage("authz.staff_revoked")
def test_admin_bulk_action_revoking_staff_is_audited_per_user(staff_user, user, other_user):
    User.objects.filter(pk__in=[user.pk, other_user.pk]).update(is_staff=True)
    with time_machine.travel(START, tick=False) as machine:
        client, _ = _staff_client(staff_user, machine)
        response = client.post(
            "/admin/accounts/user/",
            {"action": "revoke_staff_status", "_selected_action": [user.pk, other_user.pk, staff_user.pk]},
        )
        assert response.status_code == 302
    revoked = [row for row in _flag_events() if row[0] == "authz.staff_revoked"]
    assert sorted(revoked) == [
        ("authz.staff_revoked", "alice", "root-admin"),
        ("authz.staff_revoked", "bob", "root-admin"),
    ]
    assert User.objects.get(pk=staff_user.pk).is_staff


def test_admin_unlock_action_and_session_revocation(staff_user, user):
    victim = Client(REMOTE_ADDR="198.51.100.9")
    login(victim, "alice")
    with time_machine.travel(START, tick=False) as machine:
        for _ in range(5):
            Client(REMOTE_ADDR="203.0.113.1").post("/accounts/login/", {"username": "alice", "password": "x"})
        client, _ = _staff_client(staff_user, machine)
        response = client.post("/admin/accounts/user/", {"action": "unlock_accounts", "_selected_action": [user.pk]})
        assert response.status_code == 302
        assert not FailureCounter.objects.filter(username="alice").exists()
        tracked = TrackedSession.objects.get(user=user)
        response = client.post(
            "/admin/accounts/trackedsession/", {"action": "revoke_sessions", "_selected_action": [tracked.pk]}
        )
        assert response.status_code == 302
    assert victim.get("/accounts/security/").status_code == 302
    assert TrackedSession.objects.get(pk=tracked.pk).end_reason == "revoked_by_admin"
    assert events("auth.account_unlocked")[0]["actor_username"] == "root-admin"
    revoked = events("auth.session_revoked")[0]
    assert revoked["actor_username"] == "root-admin" and revoked["subject_username"] == "alice"


def test_mfa_for_all_with_a_grace_period(user, settings):
    settings.ACCOUNTS_MFA_REQUIRED_FOR_ALL = True
    settings.ACCOUNTS_MFA_GRACE_DAYS = 7
    with time_machine.travel(START, tick=False) as machine:
        client = Client()
        response = login(client, "alice", follow=True)
        assert b"Multi-factor authentication becomes required for your account on 2026-03-09" in response.content
        assert client.get("/accounts/sessions/").status_code == 200
        machine.shift(datetime.timedelta(days=7, seconds=1))
        client = Client()
        response = login(client, "alice")
        assert response["Location"].startswith("/accounts/mfa/setup/")
        assert client.get("/accounts/sessions/")["Location"].startswith("/accounts/mfa/setup/")


def test_the_grace_period_starts_at_the_first_login_and_a_later_login_does_not_extend_it(user, settings):
    settings.ACCOUNTS_MFA_REQUIRED_FOR_ALL = True
    settings.ACCOUNTS_MFA_GRACE_DAYS = 7
    with time_machine.travel(START, tick=False) as machine:
        login(Client(), "alice")
        assert User.objects.get(pk=user.pk).mfa_grace_started_at == START
        machine.shift(datetime.timedelta(days=3))
        response = login(Client(), "alice", follow=True)
        assert b"becomes required for your account on 2026-03-09" in response.content
        assert User.objects.get(pk=user.pk).mfa_grace_started_at == START


@pytest.mark.parametrize("who", ["staff", "enrolled", "policy_off"])
def test_no_grace_period_starts_for_staff_for_users_with_mfa_or_without_the_policy(user, staff_user, settings, who):
    """Staff need MFA from the first login; a user with MFA already needs no grace; the policy may be off."""
    from accounts.services.policy import mfa_grace_start

    settings.ACCOUNTS_MFA_REQUIRED_FOR_ALL = who != "policy_off"
    subject = staff_user if who == "staff" else user
    if who == "enrolled":
        enroll(user)
    mfa_grace_start(user=type(subject).objects.get(pk=subject.pk))
    assert User.objects.get(pk=subject.pk).mfa_grace_started_at is None


@pytest.mark.audit_coverage("auth.mfa_device_added", "auth.mfa_device_confirmed", "auth.backup_codes_generated")
def test_enrollment_page_shows_qr_svg_and_key_and_activates(user):
    with time_machine.travel(START, tick=False) as machine:
        client = Client()
        login(client, "alice")
        page = client.get("/accounts/mfa/setup/")
        assert b"Show the key" in page.content
        client.post("/accounts/mfa/setup/", {"action": "start", "name": "My phone"})
        page = client.get("/accounts/mfa/setup/").content.decode()
        assert "<svg" in page and "<script" not in page and "style=" not in page
        secret = page.split('id="totp-secret">')[1].split("<")[0]
        app = Authenticator(secret)
        response = client.post(
            "/accounts/mfa/setup/",
            {
                "action": "confirm",
                "device": user.totp_devices.get().pk,
                "code": "000000" if app.now() != "000000" else "111111",
            },
        )
        assert response.status_code == 400 and b'aria-describedby="id_code_help id_code_error"' in response.content
        before = client.cookies["sessionid"].value
        response = client.post(
            "/accounts/mfa/setup/", {"action": "confirm", "device": user.totp_devices.get().pk, "code": app.now()}
        )
        assert response.status_code == 200 and b"Your backup codes" in response.content
        assert client.cookies["sessionid"].value != before
        machine.shift(datetime.timedelta(minutes=11))
        security = client.get("/accounts/security/")
        assert b"My phone" in security.content and b"Backup codes left: 10" in security.content
        assert b"MFA device confirmed" in security.content


def test_security_page_lists_events_of_the_user_only(user, other_user):
    alice, bob = Client(), Client()
    login(alice, "alice")
    login(bob, "bob", "wrong password")
    page = alice.get("/accounts/security/").content.decode()
    assert "Login succeeded" in page and "Login failed" not in page


def test_login_with_mfa_helper_opens_the_admin_for_other_apps_tests(staff_user):
    from accounts.testing import login_with_mfa

    client = Client()
    login_with_mfa(client, staff_user)
    assert client.get("/admin/").status_code == 200
    assert client.get("/accounts/password/change/").status_code == 200  # step-up fresh


def test_unlocking_from_the_lockout_counters_needs_a_fresh_step_up(staff_user, user):
    with time_machine.travel(START, tick=False) as machine:
        for _ in range(5):
            Client(REMOTE_ADDR="203.0.113.1").post("/accounts/login/", {"username": "alice", "password": "x"})
        client, app = _staff_client(staff_user, machine)
        machine.shift(datetime.timedelta(minutes=11))
        selected = list(FailureCounter.objects.filter(username="alice").values_list("pk", flat=True))
        action = {"action": "unlock", "_selected_action": selected}
        response = client.post("/admin/accounts/failurecounter/", action)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
        assert FailureCounter.objects.filter(username="alice").exists()
        assert not events("auth.account_unlocked")
        client.post("/accounts/reauthenticate/", {"password": PASSWORD, "code": app.now()})
        assert client.post("/admin/accounts/failurecounter/", action).status_code == 302
    assert not FailureCounter.objects.filter(username="alice").exists()
    assert events("auth.account_unlocked")[0]["actor_username"] == "root-admin"
