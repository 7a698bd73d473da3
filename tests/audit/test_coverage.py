"""Audit coverage: every security-relevant action, driven through its real entry point.

Provable coverage (issue #15): every value of ``audit.Action`` is recorded by the project's
code and proven by a test that drives a real entry point: a row of the table below, or a test
elsewhere marked ``@pytest.mark.audit_coverage("<action>")`` (checked while it runs by
``tests/conftest.py``: the test fails unless it recorded the action). The enumeration tests at the
end fail when an action is added without both a producer and such a test.

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


def _api(actors) -> Client:
    return logged_in(actors.alice)


def context_created_through_the_api(actors):
    _api(actors).post("/api/v2/contexts/", {"name": "Plans", "scope": "personal"}, content_type="application/json")


def context_listed_through_the_api(actors):
    _api(actors).get("/api/v2/contexts/")


def context_read_through_the_api(actors):
    _api(actors).get(f"/api/v2/contexts/{actors.context.pk}/")


def context_renamed_through_the_api(actors):
    _api(actors).patch(
        f"/api/v2/contexts/{actors.context.pk}/", {"name": "Renamed"}, content_type="application/json"
    )


def context_deleted_through_the_api(actors):
    _api(actors).delete(f"/api/v2/contexts/{actors.context.pk}/")


def superuser_granted_by_queryset_update(actors):
    get_user_model().objects.filter(pk=actors.alice.pk).update(is_superuser=True)


def superuser_revoked_by_queryset_update(actors):
    get_user_model().objects.filter(pk=actors.admin.pk).update(is_superuser=False)


def user_permissions_changed(actors):
    from django.contrib.auth.models import Permission

    actors.alice.user_permissions.add(Permission.objects.get(codename="view_memory"))


def group_permissions_changed(actors):
    from django.contrib.auth.models import Permission

    Group.objects.create(name="readers").permissions.add(Permission.objects.get(codename="view_memory"))


def admin_added_a_group(actors):
    logged_in(actors.admin).post("/admin/auth/group/add/", {"name": "on-call"})


def admin_changed_a_group(actors):
    group = Group.objects.create(name="on-call")
    logged_in(actors.admin).post(f"/admin/auth/group/{group.pk}/change/", {"name": "on-call-2"})


def admin_deleted_a_group(actors):
    group = Group.objects.create(name="on-call")
    logged_in(actors.admin).post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"})


def mfa_device_removed_from_the_security_page(actors):
    client = Client()
    device = login_with_mfa(client, actors.alice)
    client.post(f"/accounts/mfa/devices/{device.pk}/remove/")


def mfa_code_replayed_at_login(actors):
    from accounts import totp

    device = login_with_mfa(Client(), actors.alice)
    code = totp.code_at_step(device.bin_key, totp.time_step())
    for _attempt in range(2):
        client = Client()
        client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
        client.post("/accounts/login/verify/", {"code": code})


def backup_verified_command(actors):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "backup.nvb")
        call_command("backup_database", "--output", path, "--no-progress")
        call_command("verify_backup", path, "--no-progress")


def audit_head_published_task(actors):
    from audit import tasks

    tasks.audit_publish_head.apply()


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
    Case("backup verified (command)", backup_verified_command,
         [("system.backup_created", "success"), ("system.backup_verified", "success")]),
    Case("audit head published (task)", audit_head_published_task, [("system.audit_head_published", "success")]),
    Case("context created (API v2)", context_created_through_the_api, [("context.created", "success")]),
    Case("contexts listed (API v2)", context_listed_through_the_api, [("context.list", "success")]),
    Case("context read (API v2)", context_read_through_the_api, [("context.read", "success")]),
    Case("context renamed (API v2)", context_renamed_through_the_api, [("context.updated", "success")]),
    Case("context deleted (API v2)", context_deleted_through_the_api, [("context.deleted", "success")]),
    Case("superuser granted by QuerySet.update", superuser_granted_by_queryset_update,
         [("authz.superuser_granted", "success")]),
    Case("superuser revoked by QuerySet.update", superuser_revoked_by_queryset_update,
         [("authz.superuser_revoked", "success")]),
    Case("user permissions changed", user_permissions_changed, [("authz.user_permissions_changed", "success")]),
    Case("group permissions changed", group_permissions_changed, [("authz.group_permissions_changed", "success")]),
    Case("admin added a group", admin_added_a_group, [("admin.added", "success")]),
    Case("admin changed a group", admin_changed_a_group, [("admin.changed", "success")]),
    Case("admin deleted a group", admin_deleted_a_group, [("admin.deleted", "success")]),
    Case("authenticator removed (page)", mfa_device_removed_from_the_security_page,
         [("auth.mfa_device_removed", "success")]),
    Case("MFA code replayed (login page)", mfa_code_replayed_at_login,
         [("auth.mfa_verify_succeeded", "success"), ("auth.mfa_code_replayed", "denied")]),
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


# --- provable coverage: the enum against the tests and the producers -----------------------------


def _proven_here() -> dict[str, list[str]]:
    proven: dict[str, list[str]] = {}
    for case in CASES:
        for action, _outcome in case.expected:
            proven.setdefault(action, []).append(f"tests/audit/test_coverage.py::{case.name}")
    return proven


def _proofs() -> dict[str, list[str]]:
    from tests.support.audit_coverage import marked_tests

    proofs = {action: list(tests) for action, tests in _proven_here().items()}
    for action, marked in marked_tests().items():
        proofs.setdefault(action, []).extend(test_id for test_id, _direct in marked)
    return proofs


def test_every_action_of_the_enum_is_proven_by_a_test_through_a_real_entry_point():
    """Add an action and this fails until a test through a real entry point records it (or remove it)."""
    from audit.actions import Action

    unproven = sorted(action.value for action in Action if action.value not in _proofs())
    assert unproven == [], (
        "audit actions no test proves (mark a test that records one through a real entry point with "
        f"@pytest.mark.audit_coverage(...), or add a row to CASES): {unproven}"
    )


def test_every_marked_action_exists():
    """A mark naming an action the enum lacks proves nothing (a typo or a removed action)."""
    from audit.actions import Action

    assert sorted(set(_proofs()) - {action.value for action in Action}) == []


def test_no_marked_test_writes_its_events_itself_or_skips_the_entry_point():
    """A test that calls ``record()``, or no entry point, proves the recorder or a service, not the path a
    user takes: it may not carry the mark."""
    from tests.support.audit_coverage import marked_tests

    direct = sorted(test_id for marked in marked_tests().values() for test_id, calls in marked if calls)
    assert direct == []


# Modules that declare, document, watch or show actions rather than record them.
NOT_PRODUCERS = ("audit/actions.py", "audit/schema.py", "monitoring/detectors/", "monitoring/selectors.py")


def _producers() -> dict[str, list[str]]:
    """Member name -> project modules (not the tests) that call a recording function and name the member."""
    import ast

    from audit.actions import Action
    from tests.monitoring.test_watched_actions_are_recorded import (
        PROJECT_DIR,
        SOURCE_FOLDERS,
        _actions_named,
        _function_name,
    )

    # A producer that picks the member by name (``Action[f"{flag}_GRANTED"]``) names it as a string.
    by_string = {**{member.name: member.name for member in Action}, **{member.value: member.name for member in Action}}
    found: dict[str, list[str]] = {}
    for folder in SOURCE_FOLDERS:
        for path in sorted((PROJECT_DIR / folder).rglob("*.py")):
            relative = str(path.relative_to(PROJECT_DIR))
            if "migrations" in path.parts or relative.startswith(NOT_PRODUCERS):
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            if any(isinstance(node, ast.Call) and "record" in _function_name(node).lower() for node in ast.walk(tree)):
                named = _actions_named(tree) | {
                    by_string[node.value]
                    for node in ast.walk(tree)
                    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in by_string
                }
                for name in named:
                    found.setdefault(name, []).append(relative)
    return found


def test_every_action_of_the_enum_has_a_producer_outside_the_tests():
    """Each action is named by project code that records events (not only declared in the enum)."""
    from audit.actions import Action

    producers = _producers()
    assert "accounts/services/lifecycle.py" in producers["ACCOUNT_DELETED"]  # the scan finds a known producer
    assert sorted(action.value for action in Action if action.name not in producers) == []


def test_the_mark_scan_finds_a_known_mark():
    """The scan itself works: a mark known to exist is found, so an empty scan cannot pass."""
    from tests.support.audit_coverage import marked_tests

    assert any(
        test_id.endswith("test_account_deactivate_delete.py::test_reactivating_lets_the_account_in_again_and_is_recorded")
        for test_id, _ in marked_tests()["auth.account_reactivated"]
    )


@pytest.mark.audit_coverage("auth.security_notification_sent")
def test_a_password_change_on_its_page_sends_the_security_email_and_records_it(
    actors, mailoutbox, django_capture_on_commit_callbacks
):
    """The email goes out after commit through its Celery task, which records that it was sent (ASVS 2.2.3)."""
    client = logged_in(actors.alice)
    new_password = "a different horse battery 43"
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/accounts/password/change/", {"new_password1": new_password, "new_password2": new_password}
        )
    assert response.status_code == 302
    sent = AuditEvent.objects.filter(action="auth.security_notification_sent", subject_username="alice")
    assert sent.count() == 1 and len(mailoutbox) == 1
    assert new_password not in json.dumps(list(AuditEvent.objects.values()), default=str)
