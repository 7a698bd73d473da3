"""The security dashboard at /admin/: sections with real data, access, unlock with step-up,
bounded queries, and the idempotent rollup behind it."""

from __future__ import annotations

import datetime
import importlib
import re

import pytest
from django.apps import apps as global_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

import audit
from accounts import roles
from accounts.models import FailureCounter
from accounts.services.sessions import REAUTHENTICATED_AT_KEY
from accounts.testing import login_with_mfa
from audit.models import AuditEvent
from monitoring.models import Alert, DailySecurityCount, JobOutcome, JobRun, SecuritySnapshot
from monitoring.services.detection import detection_sweep
from monitoring.services.rollup import security_counts_rollup
from tests.monitoring.conftest import bulk, events_of, record

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"
ROLE_MIGRATION = importlib.import_module("accounts.migrations.0004_security_roles")


@pytest.fixture
def admin_user(make_user):
    return make_user("sec-admin", is_staff=True, is_superuser=True)


@pytest.fixture
def console(admin_user):
    client = Client()
    login_with_mfa(client, admin_user)
    return client


def fail_logins(username: str, times: int, ip: str = "198.51.100.7") -> None:
    """Wrong passwords through the real login page (the login service, lockout, audit, detection)."""
    client = Client(REMOTE_ADDR=ip)
    for _ in range(times):
        client.post("/accounts/login/", {"username": username, "password": "not the password"})


def section(html: str, name: str) -> str:
    match = re.search(rf'<section[^>]*id="dash-{name}".*?</section>', html, re.S)
    assert match, f"section {name} missing"
    return match.group(0)


def test_home_is_the_dashboard_and_the_app_list_moved():
    assert reverse("admin:index") == "/admin/"
    assert reverse("admin-apps") == "/admin/apps/"


def test_dashboard_shows_every_section_with_real_data(console, make_user):
    victim = make_user("victim")
    fail_logins("victim", 5)  # the per-IP limit: the fifth failure locks victim from that IP
    assert FailureCounter.objects.filter(username="victim", locked_until__gt=timezone.now()).exists()
    record(audit.Action.BACKUP_CREATED, at=timezone.now() - datetime.timedelta(hours=3))
    record(audit.Action.BACKUP_VERIFIED, at=timezone.now() - datetime.timedelta(hours=2))
    record(audit.Action.AUDIT_VERIFIED, at=timezone.now() - datetime.timedelta(minutes=30))
    detection_sweep()  # the scheduled sweep (real-time detection waits for a commit that never comes)
    JobRun.objects.create(
        task_name="monitoring.heartbeat", task_id="run-1", started_at=timezone.now(), finished_at=timezone.now(),
        outcome=JobOutcome.SUCCESS,
    )
    security_counts_rollup()

    response = console.get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "<script" not in html.split("</head>")[1]  # no inline script on the page

    alerts = section(html, "alerts")
    alert = Alert.objects.filter(detector="lockout").get()
    assert reverse("admin:monitoring_alert_change", args=[alert.pk]) in alerts
    assert "victim" in alerts

    metrics = section(html, "metrics")
    assert "Authentication flow completion" in metrics and "0 of 5 logins" in metrics
    assert "MFA adoption, staff" in metrics and "1 of 1 staff" in metrics
    assert "no result of the security gate here" in metrics  # the suite's VAR_DIR holds no gate result

    charts = section(html, "charts")
    assert "Failed logins</strong>: 5 in 14 days" in charts
    assert "Lockouts</strong>: 1 in 14 days" in charts

    top = section(html, "top")
    assert "198.51.100.7" in top and "victim" in top
    # Every account the dashboard names leads to its user's security page.
    security_page = reverse("admin:accounts_user_security", args=[victim.pk])
    assert f'<a href="{security_page}">victim</a>' in top
    assert f'<a href="{security_page}">victim</a>' in section(html, "locked")

    locked = section(html, "locked")
    assert "Locked accounts: 1" in locked
    assert 'name="username" value="victim"' in locked and reverse("admin-account-unlock") in locked

    assert "restored and checked" in section(html, "backup")
    assert "passed" in section(html, "audit-chain")
    assert "field" in section(html, "key-rings")
    assert "usable key(s)" in section(html, "api-keys")
    jobs = section(html, "jobs")
    assert "monitoring.heartbeat" in jobs and "monitoring.security_counts_rollup" in jobs
    assert victim.username  # the account exists: the lock is on a real user


def test_the_page_takes_its_styles_with_the_nonce(console):
    response = console.get("/admin/")
    nonce = re.search(r"<style nonce=\"([^\"]+)\"", response.content.decode()).group(1)
    assert f"'nonce-{nonce}'" in response["Content-Security-Policy"]
    assert 'style="' not in response.content.decode()


@pytest.mark.parametrize("kind", ["anonymous", "not staff", "staff without MFA"])
def test_refuses_anonymous_non_staff_and_non_mfa(kind, make_user):
    client = Client()
    if kind == "not staff":
        user = make_user("plain")
        login_with_mfa(client, user)
    elif kind == "staff without MFA":
        client.force_login(make_user("staffer", is_staff=True, is_superuser=True))
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "Security dashboard" not in response.content.decode()
    assert client.get("/admin/apps/").status_code == 302


def _lock(username: str) -> None:
    FailureCounter.objects.create(
        kind=FailureCounter.Kind.PASSWORD, username=username, address="", failure_count=20,
        locked_until=timezone.now() + datetime.timedelta(minutes=15),
    )


def test_unlock_needs_step_up(console, make_user):
    make_user("victim")
    _lock("victim")
    session = console.session
    session[REAUTHENTICATED_AT_KEY] = timezone.now().timestamp() - 3600
    session.save()
    response = console.post(reverse("admin-account-unlock"), {"username": "victim"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:reauthenticate"))
    assert FailureCounter.objects.filter(username="victim", locked_until__gt=timezone.now()).exists()
    assert events_of(audit.Action.ACCOUNT_UNLOCKED) == []


def test_unlock_after_step_up_unlocks_and_records_the_event(console, admin_user, make_user):
    make_user("victim")
    _lock("victim")
    session = console.session
    session[REAUTHENTICATED_AT_KEY] = timezone.now().timestamp()
    session.save()
    response = console.post(reverse("admin-account-unlock"), {"username": " Victim "})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert not FailureCounter.objects.filter(username="victim", locked_until__gt=timezone.now()).exists()
    (event,) = events_of(audit.Action.ACCOUNT_UNLOCKED)
    assert event.actor_username == admin_user.username and event.subject_username == "victim"
    assert event.context == {"locks_cleared": 1}


def test_unlock_refuses_get_and_bad_input(console):
    session = console.session
    session[REAUTHENTICATED_AT_KEY] = timezone.now().timestamp()
    session.save()
    assert console.get(reverse("admin-account-unlock")).status_code == 405
    for username in ("", "   ", "x" * 151):
        response = console.post(reverse("admin-account-unlock"), {"username": username})
        assert response.status_code == 302
    assert events_of(audit.Action.ACCOUNT_UNLOCKED) == []


def test_unlock_refuses_staff_without_the_permission(make_user):
    client = Client()
    login_with_mfa(client, make_user("helper", is_staff=True))
    response = client.post(reverse("admin-account-unlock"), {"username": "victim"})
    assert response.status_code == 403
    assert events_of(audit.Action.ACCOUNT_UNLOCKED) == []


SECTIONS = ("metrics", "alerts", "locked", "charts", "top", "api-keys", "audit-chain", "backup", "key-rings",
            "security-gate", "deployments", "jobs")


def _sections_shown(client) -> set[str]:
    return set(re.findall(r'<section[^>]*id="dash-([a-z-]+)"', client.get("/admin/").content.decode()))


@pytest.mark.parametrize("role", [roles.SECURITY_AUDITOR, roles.SECURITY_ADMINISTRATOR])
def test_both_security_roles_see_every_section(role, make_user):
    ROLE_MIGRATION.create_roles(global_apps, None)
    member = make_user("member", is_staff=True)
    member.groups.add(Group.objects.get(name=role))
    client = Client()
    login_with_mfa(client, member)
    assert _sections_shown(client) == set(SECTIONS)


def test_staff_in_no_role_see_no_section_and_each_permission_opens_its_own(make_user):
    """Staff in neither role see an empty console (docs/PERMISSIONS.md): no alert, lock, key or job."""
    make_user("victim")
    _lock("victim")
    staffer = make_user("staffer", is_staff=True)
    client = Client()
    login_with_mfa(client, staffer)
    html = client.get("/admin/").content.decode()
    assert _sections_shown(client) == set()
    assert "victim" not in html and "Open alerts" not in html
    assert "No part of the security dashboard is open to your account" in html

    staffer.user_permissions.add(Permission.objects.get(codename="view_alert", content_type__app_label="monitoring"))
    assert _sections_shown(client) == {"alerts"}


@pytest.mark.parametrize(
    ("role", "offered"), [(roles.SECURITY_AUDITOR, False), (roles.SECURITY_ADMINISTRATOR, True)]
)
def test_the_unlock_button_is_offered_only_to_whoever_may_unlock(role, offered, make_user):
    """Both roles see the locked account; only the administrator, who may unlock, gets the button."""
    ROLE_MIGRATION.create_roles(global_apps, None)
    member = make_user(f"member-{role.split()[-1]}", is_staff=True)
    member.groups.add(Group.objects.get(name=role))
    client = Client()
    login_with_mfa(client, member)
    make_user("victim")
    _lock("victim")

    locked = section(client.get("/admin/").content.decode(), "locked")
    assert "Locked accounts: 1" in locked and "victim" in locked
    assert ("Unlock victim" in locked) is offered
    assert (reverse("admin-account-unlock") in locked) is offered
    # What the button would do is what the page promised: the view agrees with the template.
    response = client.post(reverse("admin-account-unlock"), {"username": "victim"})
    assert response.status_code == (302 if offered else 403)
    assert FailureCounter.objects.filter(username="victim", locked_until__gt=timezone.now()).exists() is not offered


def test_query_count_is_bounded_and_does_not_grow_with_events(console, django_assert_max_num_queries):
    def render() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as queries:
            assert console.get("/admin/").status_code == 200
        return len(queries)

    now = timezone.now()
    # One failed login first: an account named on the page costs one lookup of its user's id.
    bulk(audit.Action.LOGIN_FAILED, times=[now], ip="203.0.113.9", subject="target")
    security_counts_rollup()
    few = render()
    bulk(audit.Action.LOGIN_FAILED, times=[now - datetime.timedelta(minutes=minute) for minute in range(3000)],
         ip="203.0.113.9", subject="target")
    bulk(audit.Action.LOGIN_SUCCEEDED, times=[now - datetime.timedelta(hours=hour) for hour in range(300)])
    security_counts_rollup()
    with django_assert_max_num_queries(60):
        assert console.get("/admin/").status_code == 200
    assert render() == few


def test_the_view_never_counts_the_audit_table(console):
    """Counts come from the rollup: the view's reads of the audit table fetch single rows."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    security_counts_rollup()
    with CaptureQueriesContext(connection) as queries:
        console.get("/admin/")
    audit_table = AuditEvent._meta.db_table
    reads = [query["sql"] for query in queries if audit_table in query["sql"]]
    assert reads, "the backup and verification reads touch the audit table"
    for sql in reads:
        # Single rows, and the few newest deployments (tests/monitoring/test_dashboard_release.py).
        assert "COUNT(" not in sql.upper() and re.search(r"LIMIT (1|5)\b", sql.upper()), sql


def test_rollup_is_idempotent_and_recomputes_today_and_yesterday(make_user):
    now = timezone.now()
    yesterday = now - datetime.timedelta(days=1)
    long_ago = now - datetime.timedelta(days=5)
    bulk(audit.Action.LOGIN_FAILED, times=[now, now, yesterday, long_ago], ip="192.0.2.1", subject="someone")
    first = security_counts_rollup(now=now)
    rows = set(DailySecurityCount.objects.values_list("day", "name", "count"))
    assert security_counts_rollup(now=now) == first
    assert set(DailySecurityCount.objects.values_list("day", "name", "count")) == rows
    counts = {(day, name): count for day, name, count in rows}
    assert counts[(now.date(), "auth.login_failed")] == 2
    assert counts[(yesterday.date(), "auth.login_failed")] == 1
    assert not DailySecurityCount.objects.filter(day=long_ago.date()).exists()  # older days are left alone
    snapshot = SecuritySnapshot.objects.get(name="failed_logins_24h")
    assert snapshot.data["ips"] == [{"ip": "192.0.2.1", "failures": 3, "accounts": 1}]
    # A later event changes today's row on the next run, and nothing else.
    bulk(audit.Action.LOGIN_FAILED, times=[now], ip="192.0.2.1", subject="someone")
    security_counts_rollup(now=now)
    assert DailySecurityCount.objects.get(day=now.date(), name="auth.login_failed").count == 3
    assert DailySecurityCount.objects.count() == len(rows)


def test_rollup_is_a_scheduled_job():
    from monitoring.schedule import scheduled_task_names

    assert "monitoring.security_counts_rollup" in scheduled_task_names()


def test_key_ring_ages_come_from_dated_key_ids():
    from encryption.selectors import _date_of_key_id, key_ring_overview

    assert _date_of_key_id("20261128-a1b2c3") == datetime.date(2026, 11, 28)
    assert _date_of_key_id("k1") is None and _date_of_key_id("20261399-a1b2c3") is None
    rings = key_ring_overview(today=datetime.date(2031, 1, 1))
    assert {ring["purpose"] for ring in rings} >= {"field", "blind_index", "audit_chain", "backup"}
    assert all("material" not in ring for ring in rings)


def test_api_keys_expiring_or_unused_are_listed(make_user):
    from api.models import ApiKey
    from config.dashboard import api_keys_section

    owner = make_user("robot")
    now = timezone.now()

    def key(prefix: str, **fields) -> ApiKey:
        values = {"expires_at": now + datetime.timedelta(days=200), "last_used_at": now, **fields}
        return ApiKey.objects.create(prefix=prefix, name=prefix, user=owner, secret_hash="0" * 64,
                                     signing_secret="s", **values)

    key("soon", expires_at=now + datetime.timedelta(days=3))
    key("idle", last_used_at=now - datetime.timedelta(days=120))
    key("fine")
    key("gone", revoked_at=now, expires_at=now + datetime.timedelta(days=3))
    section_data = api_keys_section(now)
    assert {row["name"]: row["reasons"] for row in section_data["keys"]} == {
        "soon": ["expires soon"], "idle": ["unused"],
    }
    assert section_data["total"] == 2
    assert all(row["link"] for row in section_data["keys"])
    assert get_user_model().objects.filter(username="robot").exists()
