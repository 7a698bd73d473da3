"""Audit coverage: every security-relevant action, driven through its real entry point.

One table. Each row performs an action the way a user, an administrator or an operator does it
(a page, the API, the admin's data paths, a management command) and names the exact audit
events it must leave, in order. The other suites check each area in depth; this one proves
nothing security-relevant happens without a record (seed metric: 100% audit coverage).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client

from accounts.testing import login_with_mfa
from audit.models import AuditEvent
from memories.models import Context, Memory

PASSWORD = "correct horse battery staple 42"
SECRET_CONTENT = "the root password is hunter2-hunter2"

pytestmark = pytest.mark.django_db


@dataclass
class Actors:
    alice: object
    admin: object
    context: Context


@pytest.fixture
def actors(settings) -> Actors:
    settings.ACCOUNTS_PASSWORD_RESET_RESPONSE_FLOOR = 0
    user_model = get_user_model()
    alice = user_model.objects.create_user(username="alice", email="alice@example.org", password=PASSWORD)
    admin = user_model.objects.create_superuser(username="root", email="root@example.org", password=PASSWORD)
    context = Context.objects.create(name="Notes", scope="personal", owner_user=alice, created_by=alice)
    return Actors(alice=alice, admin=admin, context=context)


def logged_in(user) -> Client:
    client = Client()
    login_with_mfa(client, user)
    return client


def login_ok(actors):
    Client().post("/accounts/login/", {"username": " Alice ", "password": PASSWORD})


def login_wrong_password(actors):
    Client().post("/accounts/login/", {"username": "alice", "password": "not the password"})


def logout(actors):
    client = Client()
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    client.post("/accounts/logout/")


def password_reset_request(actors):
    Client().post("/accounts/password/reset/", {"email": "alice@example.org"})


def staff_granted_by_queryset_update(actors):
    get_user_model().objects.filter(pk=actors.alice.pk).update(is_staff=True)


def group_membership_changed(actors):
    actors.alice.groups.add(Group.objects.create(name="security"))


def memory_created_through_the_api(actors):
    logged_in(actors.alice).post(
        "/api/v1/memories/", {"context": actors.context.pk, "content": SECRET_CONTENT}, content_type="application/json"
    )


def memory_read_denied_through_the_api(actors):
    memory = Memory.objects.create(context=actors.context, content=SECRET_CONTENT, author=actors.alice)
    outsider = get_user_model().objects.create_user(username="oscar", password=PASSWORD)
    client = Client()
    client.force_login(outsider)
    client.get(f"/api/v1/memories/{memory.pk}/")


def unlock_account_command(actors):
    call_command("unlock_account", "alice")


def audit_verify_command(actors):
    call_command("audit_verify")


def rotate_encryption_keys_command(actors):
    call_command("rotate_encryption_keys", "--no-progress")


def backup_database_command(actors):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        call_command("backup_database", "--output", str(Path(folder) / "backup.nvb"), "--no-progress")


@dataclass
class Case:
    name: str
    act: Callable
    expected: list[tuple[str, str]]
    # Actions recorded by the set-up inside ``act`` (a login before the action under test).
    ignore: tuple[str, ...] = ("auth.session_created", "auth.login_succeeded", "auth.reauthenticated")


CASES = [
    Case("login succeeded", login_ok, [("auth.session_created", "success"), ("auth.login_succeeded", "success")], ()),
    Case("login failed", login_wrong_password, [("auth.login_failed", "failure")], ()),
    Case("password reset requested", password_reset_request, [("auth.password_reset_requested", "success")]),
    Case("staff granted by QuerySet.update", staff_granted_by_queryset_update, [("authz.staff_granted", "success")]),
    Case("group membership changed", group_membership_changed, [("authz.group_membership_changed", "success")]),
    Case("logout", logout, [("auth.logout", "success")]),
    # API v1 is deprecated in favour of v2 (docs/API_CHANGES.md): each call is counted too.
    Case(
        "memory created (API v1)",
        memory_created_through_the_api,
        [("memory.created", "success"), ("api.deprecated_endpoint_called", "success")],
    ),
    Case(
        "memory read refused (API v1)",
        memory_read_denied_through_the_api,
        [("authz.permission_denied", "denied"), ("api.deprecated_endpoint_called", "success")],
    ),
    Case("account unlocked (command)", unlock_account_command, [("auth.account_unlocked", "success")]),
    Case("audit chain verified (command)", audit_verify_command, [("system.audit_verified", "success")]),
    Case(
        "encryption keys rotated (command)",
        rotate_encryption_keys_command,
        [("system.key_rotation_started", "success"), ("system.key_rotation_finished", "success")],
    ),
    Case("backup created (command)", backup_database_command, [("system.backup_created", "success")]),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_security_relevant_action_records_exactly_its_events(case, actors, settings, tmp_path):
    settings.AUDIT_DIR = str(tmp_path / "audit")
    first = AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    case.act(actors)
    recorded = [
        (action, outcome)
        for action, outcome in AuditEvent.objects.filter(pk__gt=first).order_by("pk").values_list("action", "outcome")
        if action not in case.ignore
    ]
    assert recorded == case.expected
    dump = json.dumps(list(AuditEvent.objects.values()), default=str)
    for secret in (PASSWORD, "not the password", SECRET_CONTENT, "hunter2"):
        assert secret not in dump
