"""The security auditor and security administrator roles (accounts/roles.py, docs/PERMISSIONS.md).

Each role logs into the console through Django's test client with a verified-MFA session and
fresh step-up (``accounts.testing.login_with_mfa``). ``CASES`` is the one table of what each
role gets from each page and action: extend it when a new console page arrives (the dashboard,
the audit explorer). "staff" is a staff user in neither group, who must get nothing.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib

import pytest
from django.apps import apps as global_apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone

from accounts import roles
from accounts.models import FailureCounter, TOTPDevice, TrackedSession, User
from accounts.testing import login_with_mfa
from api import services as api_services
from api.models import ApiKey
from audit.models import AuditEvent
from audit.services import write_held_events
from memories.models import Organization
from monitoring.detectors import detector_get
from monitoring.models import Alert, AlertStatus, JobOutcome, JobRun, Notification, Report, Severity

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple 42"
ROLE_MIGRATION = importlib.import_module("accounts.migrations.0004_security_roles")
GROUP_OF = {"auditor": roles.SECURITY_AUDITOR, "administrator": roles.SECURITY_ADMINISTRATOR, "staff": None}


def ensure_role_groups() -> None:
    """The migration's own forward function (idempotent): groups exist even after a flush."""
    ROLE_MIGRATION.create_roles(global_apps, None)


@dataclasses.dataclass
class World:
    """One of each thing the console shows, around a user ``mallory``."""

    mallory: User
    session: TrackedSession
    device: TOTPDevice
    counter: FailureCounter
    alert: Alert
    report: Report
    job: JobRun
    notification: Notification
    api_key: ApiKey
    event: AuditEvent
    organization: Organization

    def ids(self) -> dict[str, int]:
        return {
            "user": self.mallory.pk, "session": self.session.pk, "device": self.device.pk,
            "counter": self.counter.pk, "alert": self.alert.pk, "report": self.report.pk, "job": self.job.pk,
            "notification": self.notification.pk, "api_key": self.api_key.pk, "event": self.event.pk,
            "organization": self.organization.pk,
        }


@pytest.fixture
def world(db) -> World:
    now = timezone.now()
    superuser = User.objects.create_superuser("root-admin", "root@example.org", PASSWORD)
    mallory = User.objects.create_user("mallory", "mallory@example.org", PASSWORD, is_staff=True)
    device = login_with_mfa(Client(), mallory)  # an authenticator and a live tracked session
    session = TrackedSession.objects.get(user=mallory, ended_at__isnull=True)
    counter = FailureCounter.objects.create(
        kind=FailureCounter.Kind.PASSWORD, username="mallory", failure_count=5, lock_count=1,
        last_failure_at=now, locked_until=now + datetime.timedelta(hours=1),
    )
    alert = Alert.objects.create(
        detector="brute_force", severity=Severity.HIGH, dedupe_key="k", subject_type="user", subject="mallory",
        summary="failed logins", first_seen=now, last_seen=now, triggered_at=now, created_at=now,
        detection_seconds=1.0,
    )
    report = Report.objects.create(
        period="daily", period_start=now - datetime.timedelta(days=1), period_end=now, generated_at=now,
        html="<p>report</p>", text="report", csv="a,b\n",
    )
    job = JobRun.objects.create(
        task_name="monitoring.heartbeat", task_id="t-1", started_at=now, finished_at=now, outcome=JobOutcome.SUCCESS
    )
    notification = Notification.objects.create(
        alert=alert, channel="email", destination="soc@example.org", event_type="alert.raised",
        next_attempt_at=now, created_at=now,
    )
    issued = api_services.api_key_issue(actor=superuser, owner=mallory, name="laptop", scopes=["memories:read"])
    organization = Organization.objects.create(name="Acme", slug="acme")
    write_held_events()
    return World(
        mallory=mallory, session=session, device=device, counter=counter, alert=alert, report=report, job=job,
        notification=notification, api_key=issued.api_key, event=AuditEvent.objects.order_by("id").first(),
        organization=organization,
    )


def console_client(role: str) -> tuple[Client, User]:
    ensure_role_groups()
    user = User.objects.create_user(f"{role}-user", f"{role}@example.org", PASSWORD, is_staff=True)
    if GROUP_OF[role]:
        user.groups.add(Group.objects.get(name=GROUP_OF[role]))
    client = Client()
    login_with_mfa(client, user)
    return client, user


@dataclasses.dataclass(frozen=True)
class Page:
    """A GET of a console page."""

    url: str

    def send(self, client: Client, world: World):
        return client.get(self.url.format(**world.ids()))

    def __str__(self) -> str:
        return f"GET {self.url}"


@dataclasses.dataclass(frozen=True)
class Post:
    """A POST of a form (a change form, the key rotation)."""

    url: str
    data: tuple = ()

    def send(self, client: Client, world: World):
        return client.post(self.url.format(**world.ids()), dict(self.data))

    def __str__(self) -> str:
        return f"POST {self.url}"


@dataclasses.dataclass(frozen=True)
class Action:
    """A bulk action POSTed on a changelist with one selected row (as the page's form sends it)."""

    changelist: str
    name: str
    selected: str

    def send(self, client: Client, world: World):
        data = {"action": self.name, "index": "0", "_selected_action": [str(world.ids()[self.selected])]}
        return client.post(self.changelist, data)

    def __str__(self) -> str:
        return f"action {self.name} on {self.changelist}"


A, B, S = "auditor", "administrator", "staff"
OK, REDIRECT, DENIED = 200, 302, 403


def both(auditor: int, administrator: int) -> dict[str, int]:
    """The two roles' statuses; a staff user in neither group always gets 403."""
    return {A: auditor, B: administrator, S: DENIED}


# The table: (request, expected status per role). Allowed actions answer 302 (back to the list).
CASES: list[tuple[object, dict[str, int]]] = [
    # --- pages both roles may read ---------------------------------------------------------
    (Page("/admin/audit/auditevent/"), both(OK, OK)),
    (Page("/admin/audit/auditevent/{event}/change/"), both(OK, OK)),
    (Page("/admin/monitoring/alert/"), both(OK, OK)),
    (Page("/admin/monitoring/alert/{alert}/change/"), both(OK, OK)),
    (Page("/admin/monitoring/jobrun/"), both(OK, OK)),
    (Page("/admin/monitoring/jobrun/{job}/change/"), both(OK, OK)),
    (Page("/admin/monitoring/report/"), both(OK, OK)),
    (Page("/admin/monitoring/report/{report}/change/"), both(OK, OK)),
    (Page("/admin/monitoring/report/{report}/html/"), both(OK, OK)),
    (Page("/admin/monitoring/report/{report}/text/"), both(OK, OK)),
    (Page("/admin/monitoring/report/{report}/csv/"), both(OK, OK)),
    (Page("/admin/monitoring/notification/"), both(OK, OK)),
    (Page("/admin/monitoring/notification/{notification}/change/"), both(OK, OK)),
    (Page("/admin/accounts/user/"), both(OK, OK)),
    (Page("/admin/accounts/user/{user}/change/"), both(OK, OK)),
    (Page("/admin/accounts/trackedsession/"), both(OK, OK)),
    (Page("/admin/accounts/trackedsession/{session}/change/"), both(OK, OK)),
    (Page("/admin/accounts/failurecounter/"), both(OK, OK)),
    (Page("/admin/accounts/totpdevice/"), both(OK, OK)),
    (Page("/admin/accounts/totpdevice/{device}/change/"), both(OK, OK)),
    (Page("/admin/api/apikey/"), both(OK, OK)),
    (Page("/admin/api/apikey/{api_key}/change/"), both(OK, OK)),
    (Page("/admin/encryption/keys/"), both(OK, OK)),
    # --- the administrator's operations; refused to the auditor ------------------------------
    (Action("/admin/monitoring/alert/", "acknowledge_selected", "alert"), both(DENIED, REDIRECT)),
    (Action("/admin/monitoring/alert/", "resolve_selected", "alert"), both(DENIED, REDIRECT)),
    (Action("/admin/monitoring/alert/", "mark_false_positive_selected", "alert"), both(DENIED, REDIRECT)),
    (Action("/admin/accounts/user/", "unlock_accounts", "user"), both(DENIED, REDIRECT)),
    (Action("/admin/accounts/user/", "end_all_sessions", "user"), both(DENIED, REDIRECT)),
    (Action("/admin/accounts/failurecounter/", "unlock", "counter"), both(DENIED, REDIRECT)),
    (Action("/admin/accounts/trackedsession/", "revoke_sessions", "session"), both(DENIED, REDIRECT)),
    (Action("/admin/accounts/totpdevice/", "remove_devices", "device"), both(DENIED, REDIRECT)),
    (Action("/admin/api/apikey/", "revoke_selected", "api_key"), both(DENIED, REDIRECT)),
    (Post("/admin/encryption/keys/"), both(DENIED, REDIRECT)),
    # --- superuser only: refused to both roles ----------------------------------------------
    (Action("/admin/accounts/user/", "revoke_staff_status", "user"), both(DENIED, DENIED)),
    (Action("/admin/accounts/user/", "delete_selected", "user"), both(DENIED, DENIED)),
    (Action("/admin/accounts/trackedsession/", "delete_selected", "session"), both(DENIED, DENIED)),
    (Action("/admin/api/apikey/", "rotate_selected", "api_key"), both(DENIED, DENIED)),
    (Action("/admin/audit/auditevent/", "delete_selected", "event"), both(DENIED, DENIED)),
    (Action("/admin/monitoring/alert/", "delete_selected", "alert"), both(DENIED, DENIED)),
    (Action("/admin/monitoring/alert/", "no_such_action", "alert"), both(DENIED, DENIED)),
    (Page("/admin/accounts/user/add/"), both(DENIED, DENIED)),
    (Post("/admin/accounts/user/add/", (("username", "eve"), ("password1", PASSWORD), ("password2", PASSWORD))),
     both(DENIED, DENIED)),
    (Post("/admin/accounts/user/{user}/change/", (("username", "mallory"), ("is_superuser", "on"))),
     both(DENIED, DENIED)),
    (Page("/admin/accounts/user/{user}/delete/"), both(DENIED, DENIED)),
    (Page("/admin/accounts/user/{user}/password/"), both(DENIED, DENIED)),
    (Page("/admin/auth/group/"), both(DENIED, DENIED)),
    (Page("/admin/auth/group/add/"), both(DENIED, DENIED)),
    (Page("/admin/api/apikey/add/"), both(DENIED, DENIED)),
    (Page("/admin/api/apikey/{api_key}/delete/"), both(DENIED, DENIED)),
    (Page("/admin/api/serviceaccount/"), both(DENIED, DENIED)),
    (Page("/admin/api/deprecatedcall/"), both(DENIED, DENIED)),
    (Page("/admin/audit/auditevent/{event}/delete/"), both(DENIED, DENIED)),
    (Page("/admin/monitoring/alert/{alert}/delete/"), both(DENIED, DENIED)),
    (Page("/admin/accounts/totpdevice/{device}/delete/"), both(DENIED, DENIED)),
    (Page("/admin/memories/organization/"), both(DENIED, DENIED)),
    (Page("/admin/memories/organization/add/"), both(DENIED, DENIED)),
    (Page("/admin/memories/organization/{organization}/change/"), both(DENIED, DENIED)),
    (Post("/admin/memories/organization/{organization}/change/", (("name", "Evil"), ("slug", "evil"))),
     both(DENIED, DENIED)),
    (Page("/admin/memories/memory/"), both(DENIED, DENIED)),
]

EXPANDED = [(request, role, statuses[role]) for request, statuses in CASES for role in (A, B, S)]


@pytest.mark.parametrize(("request_", "role", "expected"), EXPANDED, ids=[f"{r}-{role}" for r, role, _ in EXPANDED])
def test_each_role_gets_exactly_what_the_table_says(world, request_, role, expected):
    client, user = console_client(role)
    write_held_events()
    before = AuditEvent.objects.filter(action="authz.permission_denied").count()
    response = request_.send(client, world)
    assert response.status_code == expected, response.content[:300]
    write_held_events()
    denials = AuditEvent.objects.filter(action="authz.permission_denied", id__gt=0).order_by("id")[before:]
    if expected == DENIED:
        # Every refusal is in the audit trail (OWASP ASVS 4.0.3 V7.2.2), naming who and where.
        assert [(e.actor_username, e.outcome, e.context.get("reason")) for e in denials] == [
            (user.username, "denied", "console_permission")
        ]
    else:
        assert list(denials) == []


# What an allowed operation does (the table says it is allowed; these say it took effect) and
# that the refused ones left everything as it was.
def _state(world: World) -> dict:
    return {
        "alert": Alert.objects.get(pk=world.alert.pk).status,
        "locked": FailureCounter.objects.filter(username="mallory", locked_until__isnull=False).exists(),
        "session_ended": TrackedSession.objects.get(pk=world.session.pk).ended_at is not None,
        "device": TOTPDevice.objects.filter(pk=world.device.pk).exists(),
        "key_revoked": ApiKey.objects.get(pk=world.api_key.pk).revoked_at is not None,
        "staff": User.objects.get(pk=world.mallory.pk).is_staff,
        "superuser": User.objects.get(pk=world.mallory.pk).is_superuser,
        "eve": User.objects.filter(username="eve").exists(),
        "rotations": AuditEvent.objects.filter(action="system.key_rotation_started").count(),
        "organization": Organization.objects.get(pk=world.organization.pk).name,
        "keys": ApiKey.objects.count(),
    }


EFFECTS = [
    (Action("/admin/monitoring/alert/", "acknowledge_selected", "alert"), {"alert": AlertStatus.ACKNOWLEDGED}),
    (Action("/admin/accounts/user/", "unlock_accounts", "user"), {"locked": False}),
    (Action("/admin/accounts/failurecounter/", "unlock", "counter"), {"locked": False}),
    (Action("/admin/accounts/user/", "end_all_sessions", "user"), {"session_ended": True}),
    (Action("/admin/accounts/trackedsession/", "revoke_sessions", "session"), {"session_ended": True}),
    (Action("/admin/accounts/totpdevice/", "remove_devices", "device"), {"device": False}),
    (Action("/admin/api/apikey/", "revoke_selected", "api_key"), {"key_revoked": True}),
    (Post("/admin/encryption/keys/"), {"rotations": 1}),
]


@pytest.mark.parametrize(("request_", "changes"), EFFECTS, ids=[str(r) for r, _ in EFFECTS])
def test_the_administrators_operations_take_effect_and_the_auditors_change_nothing(world, request_, changes):
    write_held_events()
    before = _state(world)
    auditor, _ = console_client(A)
    assert request_.send(auditor, world).status_code == DENIED
    write_held_events()
    assert _state(world) == before
    administrator, _ = console_client(B)
    assert request_.send(administrator, world).status_code == REDIRECT
    write_held_events()
    assert _state(world) == {**before, **changes}


def test_refused_superuser_operations_change_nothing(world):
    write_held_events()
    before = _state(world)
    for role in (A, B, S):
        client, _ = console_client(role)
        for request_, statuses in CASES:
            if statuses[B] == DENIED:
                request_.send(client, world)
    write_held_events()
    assert _state(world) == before


def test_the_console_offers_each_role_only_its_own_actions_and_models(world):
    offered = {}
    for role in (A, B, S):
        client, _ = console_client(role)
        index = client.get("/admin/")
        assert index.status_code == OK
        offered[role] = {
            (app["app_label"], model["object_name"]) for app in index.context["app_list"] for model in app["models"]
        }
        for url in ("/admin/monitoring/alert/", "/admin/accounts/user/", "/admin/api/apikey/"):
            page = client.get(url)
            if page.status_code == OK:
                form = page.context["action_form"]
                choices = form.fields["action"].choices if form is not None else []
                offered[(role, url)] = {name for name, _ in choices} - {""}
    readable = {
        ("audit", "AuditEvent"), ("monitoring", "Alert"), ("monitoring", "JobRun"), ("monitoring", "Report"),
        ("monitoring", "Notification"), ("accounts", "User"), ("accounts", "TrackedSession"),
        ("accounts", "FailureCounter"), ("accounts", "TOTPDevice"), ("api", "ApiKey"),
    }
    assert offered[A] == offered[B] == readable
    assert offered[S] == set()
    assert offered[(A, "/admin/monitoring/alert/")] == set()
    assert offered[(B, "/admin/monitoring/alert/")] == {
        "acknowledge_selected", "resolve_selected", "mark_false_positive_selected"
    }
    assert offered[(A, "/admin/accounts/user/")] == set()
    assert offered[(B, "/admin/accounts/user/")] == {"unlock_accounts", "end_all_sessions"}
    assert offered[(A, "/admin/api/apikey/")] == set()
    assert offered[(B, "/admin/api/apikey/")] == {"revoke_selected"}


def test_the_key_page_shows_the_rotation_button_only_to_those_who_may_rotate(world):
    auditor, _ = console_client(A)
    administrator, _ = console_client(B)
    assert b"Rotate encryption keys now" not in auditor.get("/admin/encryption/keys/").content
    assert b"Rotate encryption keys now" in administrator.get("/admin/encryption/keys/").content


def test_the_roles_hold_no_superuser_or_staff_rights(world):
    ensure_role_groups()
    for group_name in (roles.SECURITY_AUDITOR, roles.SECURITY_ADMINISTRATOR):
        held = set(
            Group.objects.get(name=group_name).permissions.values_list("content_type__app_label", "codename")
        )
        forbidden = {
            ("accounts", "change_user"), ("accounts", "add_user"), ("accounts", "delete_user"),
            ("auth", "change_group"), ("auth", "add_group"), ("auth", "change_permission"),
            ("api", "add_apikey"), ("api", "change_apikey"),
        }
        assert not held & forbidden
        assert not {label for label, _ in held} & {"memories", "auth", "django_celery_beat"}


# --- joining a role is a privilege change ------------------------------------------------------
@pytest.mark.parametrize("group_name", [roles.SECURITY_AUDITOR, roles.SECURITY_ADMINISTRATOR])
def test_joining_a_role_is_audited_and_alerts_as_privilege_escalation(world, group_name):
    ensure_role_groups()
    write_held_events()
    world.mallory.groups.add(Group.objects.get(name=group_name))
    write_held_events()
    event = AuditEvent.objects.filter(action="authz.group_membership_changed").latest("id")
    assert (event.subject_username, event.context) == (
        "mallory", {"added": [group_name], "old": [], "new": [group_name]}
    )
    [finding] = detector_get("privilege_escalation").on_event(event)
    assert finding.severity == Severity.HIGH
    assert f"security group {group_name.casefold()}" in finding.summary


# --- the data migration ------------------------------------------------------------------------
def _role_permissions() -> dict[str, set[str]]:
    return {
        group.name: {
            f"{label}.{codename}"
            for label, codename in group.permissions.values_list("content_type__app_label", "codename")
        }
        for group in Group.objects.filter(name__in=roles.ROLES)
    }


def _snapshot() -> tuple:
    return (
        sorted(Group.objects.values_list("id", "name")),
        sorted(Permission.objects.values_list("id", "content_type_id", "codename", "name")),
        sorted(ContentType.objects.values_list("id", "app_label", "model")),
        sorted(Group.permissions.through.objects.values_list("group_id", "permission_id")),
    )


def test_the_migration_keeps_a_frozen_copy_that_matches_the_roles():
    assert {
        name: list(permissions) for name, permissions in roles.ROLES.items()
    } == {"Security auditor": ROLE_MIGRATION.AUDITOR, "Security administrator": ROLE_MIGRATION.ADMINISTRATOR}
    # Its permission names are those Django (or the models' Meta) gives them.
    for dotted, (app_label, model, name) in ROLE_MIGRATION.PERMISSIONS.items():
        assert Permission.objects.get(content_type__app_label=app_label, content_type__model=model,
                                      codename=dotted.split(".")[1]).name == name


def test_the_migration_creates_exactly_the_listed_permissions_and_a_second_run_changes_nothing():
    Group.objects.filter(name__in=roles.ROLES).delete()
    editors = Group.objects.create(name="editors")
    editors.permissions.add(Permission.objects.get(codename="view_user"))
    ROLE_MIGRATION.create_roles(global_apps, None)
    assert _role_permissions() == {name: set(permissions) for name, permissions in roles.ROLES.items()}
    assert set(editors.permissions.values_list("codename", flat=True)) == {"view_user"}
    once = _snapshot()
    ROLE_MIGRATION.create_roles(global_apps, None)
    assert _snapshot() == once


def test_the_migration_grants_nothing_to_a_group_that_exists_already():
    Group.objects.filter(name__in=roles.ROLES).delete()
    existing = Group.objects.create(name=roles.SECURITY_AUDITOR)
    ROLE_MIGRATION.create_roles(global_apps, None)
    assert list(existing.permissions.all()) == []
    # Nor does the reverse delete it: it is not what the migration made.
    ROLE_MIGRATION.delete_roles(global_apps, None)
    assert list(Group.objects.filter(name__in=roles.ROLES).values_list("name", flat=True)) == [roles.SECURITY_AUDITOR]


@pytest.mark.django_db(transaction=True)
def test_the_migration_is_reversible_through_the_migration_executor():
    ensure_role_groups()
    target = ("accounts", "0004_security_roles")
    executor = MigrationExecutor(connection)
    executor.migrate([("accounts", "0003_security_permissions")])
    assert not Group.objects.filter(name__in=roles.ROLES).exists()
    # The permissions belong to the models' Meta, not to the roles: they stay.
    assert Permission.objects.filter(codename__in=["unlock_user", "rotate_keys", "revoke_apikey"]).count() == 3
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    assert _role_permissions() == {name: set(permissions) for name, permissions in roles.ROLES.items()}
    # Back to the latest accounts migration, so later tests find every table.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("accounts"))
    assert _role_permissions() == {name: set(permissions) for name, permissions in roles.ROLES.items()}
    once = _snapshot()
    ROLE_MIGRATION.create_roles(global_apps, None)
    assert _snapshot() == once


def test_the_revocation_service_itself_lets_the_administrator_revoke_and_refuses_the_auditor(world):
    """``api_key_revoke`` checks permission itself, whatever calls it (not only the admin)."""
    _, auditor = console_client(A)
    _, administrator = console_client(B)
    with pytest.raises(PermissionDenied):
        api_services.api_key_revoke(actor=auditor, api_key=world.api_key)
    assert ApiKey.objects.get(pk=world.api_key.pk).revoked_at is None
    api_services.api_key_revoke(actor=administrator, api_key=world.api_key)
    assert ApiKey.objects.get(pk=world.api_key.pk).revoked_by == administrator
