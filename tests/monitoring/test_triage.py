"""Triage on the alert's own page: steps with notes (the history), assignment, the list in words.

Every page action is a POST through the triage services: audited, ``monitoring.triage_alert``
needed (the Security auditor sees the page and gets 403 + ``authz.permission_denied`` when it
posts), CSRF-checked, and refused without a fresh step-up re-authentication.
"""

from __future__ import annotations

import datetime
import importlib
import time

import pytest
from django.apps import apps as global_apps
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from accounts import roles
from accounts.services.sessions import REAUTHENTICATED_AT_KEY
from accounts.testing import login_with_mfa
from api import services as api_services
from audit.actions import Action
from audit.models import AuditEvent
from audit.services import write_held_events
from monitoring import subjects
from monitoring.detectors import detector_get
from monitoring.models import AlertNote, AlertStatus, Severity
from monitoring.services.alerts import alert_assign, alert_record_finding
from monitoring.summaries import alert_sentence, duration_text
from tests.monitoring.conftest import NOW, record
from tests.monitoring.test_alerts import finding

pytestmark = pytest.mark.django_db

ROLE_MIGRATION = importlib.import_module("accounts.migrations.0004_security_roles")
PASSWORD = "correct horse battery staple 42"
MINUTE = datetime.timedelta(minutes=1)


def role_client(username: str, role: str | None) -> tuple[Client, object]:
    """A client signed in with MFA (step-up fresh) as a staff user holding ``role``."""
    ROLE_MIGRATION.create_roles(global_apps, None)
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username, f"{username}@example.org", PASSWORD, is_staff=True)
    if role:
        user.groups.add(Group.objects.get(name=role))
    client = Client()
    login_with_mfa(client, user)
    return client, user


@pytest.fixture
def alert(now):
    raised, _ = alert_record_finding(finding=finding())
    return raised


@pytest.fixture
def administrator():
    return role_client("sam", roles.SECURITY_ADMINISTRATOR)


@pytest.fixture
def auditor():
    return role_client("aud", roles.SECURITY_AUDITOR)


def page_of(alert) -> str:
    return reverse("admin:monitoring_alert_change", args=[alert.pk])


def triage_url(alert, what: str = "triage") -> str:
    return reverse(f"admin:monitoring_alert_{what}", args=[alert.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


# --- steps with notes -----------------------------------------------------------------------------
@pytest.mark.audit_coverage("monitoring.alert_acknowledged", "monitoring.alert_resolved")
def test_acknowledge_then_resolve_from_the_page_writes_the_history_newest_first(alert, administrator):
    client, user = administrator
    response = client.post(triage_url(alert), {"to": "acknowledged", "note": "looking at the sign-in log"})
    assert response.status_code == 302 and response["Location"] == page_of(alert)
    client.post(triage_url(alert), {"to": "resolved", "note": "password reset, user warned"})
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED and alert.closed_by == user
    history = list(alert.notes.values_list("author_username", "from_status", "to_status", "text"))
    assert history == [
        ("sam", "acknowledged", "resolved", "password reset, user warned"),
        ("sam", "open", "acknowledged", "looking at the sign-in log"),
    ]
    html = client.get(page_of(alert)).content.decode()
    assert html.index("password reset, user warned") < html.index("looking at the sign-in log")
    write_held_events()
    events = AuditEvent.objects.filter(action__in=[Action.ALERT_ACKNOWLEDGED, Action.ALERT_RESOLVED]).order_by("id")
    assert [(event.action, event.actor_username, event.context["note_given"]) for event in events] == [
        (Action.ALERT_ACKNOWLEDGED.value, "sam", True), (Action.ALERT_RESOLVED.value, "sam", True),
    ]
    # The note stays on the alert: the audit event says a note was given, never what it says.
    assert all("sign-in log" not in str(event.context) for event in events)


@pytest.mark.audit_coverage("monitoring.alert_dismissed")
def test_a_false_positive_without_a_note_is_refused_with_a_clear_message(alert, administrator):
    client, _ = administrator
    response = client.post(triage_url(alert), {"to": "false_positive", "note": "  "}, follow=True)
    assert response.status_code == 200
    assert any("note is required" in message for message in messages_of(response))
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN and not alert.notes.exists()
    client.post(triage_url(alert), {"to": "false_positive", "note": "our load test from the office"})
    alert.refresh_from_db()
    assert alert.status == AlertStatus.FALSE_POSITIVE


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"to": "reopened", "note": "x"}, "Choose a triage step"),
        ({"to": "resolved", "note": "x" * 2001}, "at most 2000 characters"),
    ],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(alert, administrator, data, expected):
    client, _ = administrator
    response = client.post(triage_url(alert), data, follow=True)
    assert response.status_code == 200 and any(expected in message for message in messages_of(response))
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN and not alert.notes.exists()


def test_a_closed_alert_offers_no_further_step_and_a_forged_one_is_refused(alert, administrator):
    client, _ = administrator
    client.post(triage_url(alert), {"to": "resolved", "note": "done"})
    html = client.get(page_of(alert)).content.decode()
    assert 'name="to"' not in html
    response = client.post(triage_url(alert), {"to": "acknowledged", "note": "again"}, follow=True)
    assert any("cannot become acknowledged" in message for message in messages_of(response))
    assert alert.notes.count() == 1


# --- who may, and how -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("what", "data"),
    [
        ("triage", {"to": "acknowledged", "note": "x"}),
        ("assign", {"assignee": ""}),
        ("suppress", {"until": "2031-03-15", "reason": "x"}),
    ],
)
def test_the_auditor_sees_the_page_but_every_action_is_refused_and_recorded(alert, auditor, what, data):
    client, user = auditor
    page = client.get(page_of(alert))
    assert page.status_code == 200
    html = page.content.decode()
    assert "triage needs the Security administrator role" in html and triage_url(alert, what) not in html
    write_held_events()
    before = AuditEvent.objects.filter(action=Action.PERMISSION_DENIED).count()
    response = client.post(triage_url(alert, what), data)
    assert response.status_code == 403
    write_held_events()
    [denied] = AuditEvent.objects.filter(action=Action.PERMISSION_DENIED).order_by("id")[before:]
    assert (denied.actor_username, denied.context["reason"]) == ("aud", "console_permission")
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN and alert.assigned_to is None and not alert.notes.exists()
    assert not alert.suppression_rules.exists()


@pytest.mark.parametrize("what", ["triage", "assign", "suppress"])
def test_a_stale_sign_in_is_sent_to_re_authenticate_and_nothing_changes(alert, administrator, what):
    client, _ = administrator
    session = client.session
    session[REAUTHENTICATED_AT_KEY] = time.time() - 24 * 3600
    session.save()
    data = {"to": "acknowledged", "assignee": "", "until": "2031-03-15", "reason": "x", "note": "x"}
    response = client.post(triage_url(alert, what), data)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:reauthenticate"))
    assert "next=" in response["Location"]
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN and not alert.notes.exists() and not alert.suppression_rules.exists()


def test_the_actions_are_posts_with_a_csrf_token(alert, administrator):
    client, user = administrator
    assert client.get(triage_url(alert)).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    login_with_mfa(strict, user)
    assert strict.post(triage_url(alert), {"to": "acknowledged", "note": "x"}).status_code == 403
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN


# --- assignment ---------------------------------------------------------------------------------------
@pytest.mark.audit_coverage("monitoring.alert_assigned")
def test_assign_to_an_administrator_audited_shown_and_filtered(alert, administrator, now):
    client, sam = administrator
    other, _ = alert_record_finding(finding=finding(key="brute_force:subject_username:bob", last_event_id=11))
    response = client.post(triage_url(alert, "assign"), {"assignee": str(sam.pk), "note": "mine"})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.assigned_to == sam and alert.assigned_at == NOW
    assert alert.notes.get().text == "Assigned to sam. mine"
    write_held_events()
    [event] = AuditEvent.objects.filter(action=Action.ALERT_ASSIGNED)
    assert event.actor_username == "sam" and event.subject_username == "sam"
    assert event.context == {"detector": "brute_force", "assignee": "sam", "previous_assignee": "", "note_given": True}
    changelist = reverse("admin:monitoring_alert_changelist")
    mine = client.get(changelist, {"assigned": "me"})
    assert [row.pk for row in mine.context["cl"].result_list] == [alert.pk]
    everything = client.get(changelist)
    assert {row.pk for row in everything.context["cl"].result_list} == {alert.pk, other.pk}
    assert ">sam<" in everything.content.decode()
    client.post(triage_url(alert, "assign"), {"assignee": ""})
    alert.refresh_from_db()
    assert alert.assigned_to is None and alert.notes.first().text == "Unassigned."


@pytest.mark.parametrize("who", ["auditor", "plain staff", "inactive administrator", "nonsense"])
def test_an_alert_goes_only_to_an_active_administrator_who_may_triage(alert, administrator, who, make_user):
    client, sam = administrator
    if who == "auditor":
        target = role_client("aud2", roles.SECURITY_AUDITOR)[1].pk
    elif who == "plain staff":
        target = make_user("helpdesk", is_staff=True).pk
    elif who == "inactive administrator":
        gone = role_client("gone", roles.SECURITY_ADMINISTRATOR)[1]
        gone.is_active = False
        gone.save()
        target = gone.pk
    else:
        target = "first"
    response = client.post(triage_url(alert, "assign"), {"assignee": str(target)}, follow=True)
    assert response.status_code == 200
    assert any("administrator" in message for message in messages_of(response))
    alert.refresh_from_db()
    assert alert.assigned_to is None and not alert.notes.exists()


def test_the_assignee_list_offers_exactly_the_administrators(alert, administrator, make_user):
    client, _ = administrator
    role_client("aud3", roles.SECURITY_AUDITOR)
    make_user("helpdesk", is_staff=True)
    html = client.get(page_of(alert)).content.decode()
    options = html.split('id="assign-to"')[1].split("</select>")[0]
    assert ">sam<" in options and ">aud3<" not in options and ">helpdesk<" not in options


def test_the_service_checks_the_permission_itself(alert, auditor):
    from django.core.exceptions import PermissionDenied

    _, user = auditor
    with pytest.raises(PermissionDenied):
        alert_assign(actor=user, alert_id=alert.pk, assignee_id=None)


# --- the list -----------------------------------------------------------------------------------------
def test_the_list_says_each_alert_in_words_and_puts_open_before_closed(now, administrator):
    client, _ = administrator
    for index, ip in enumerate(["192.0.2.1", "192.0.2.2", "192.0.2.3"] * 4):
        record(Action.LOGIN_FAILED, at=NOW - 10 * MINUTE + index * 10 * datetime.timedelta(seconds=1), ip=ip,
               subject="alice", outcome="failure")
    [brute] = [f for f in detector_get("brute_force").sweep(now=NOW)]
    raised, _ = alert_record_finding(finding=brute)
    assert raised.evidence["counts"]["addresses"] == 3
    closed, _ = alert_record_finding(finding=finding(key="x", last_event_id=1, severity=Severity.CRITICAL))
    client.post(triage_url(closed), {"to": "resolved", "note": "done"})
    low, _ = alert_record_finding(finding=finding(key="y", last_event_id=2, severity=Severity.LOW))
    response = client.get(reverse("admin:monitoring_alert_changelist"))
    rows = [row.pk for row in response.context["cl"].result_list]
    # Open ones first (high before low), then the closed critical one.
    assert rows == [raised.pk, low.pk, closed.pk]
    assert "12 failed sign-ins for alice from 3 addresses in 15 minutes" in response.content.decode()


def test_a_user_subject_links_to_the_users_security_page_when_it_exists(alert, administrator, monkeypatch):
    client, _ = administrator
    from django.contrib.auth import get_user_model

    alice = get_user_model().objects.create_user("alice", "alice@example.org", PASSWORD)
    changelist = reverse("admin:monitoring_alert_changelist")
    # Not mounted (yet): the subject is plain text, and the page still renders.
    html = client.get(changelist).content.decode()
    assert client.get(changelist).status_code == 200
    # Mounted: linked by its URL name with the user's id (any admin page with one id stands in).
    monkeypatch.setattr(subjects, "USER_SECURITY_PAGE", "admin:accounts_user_change")
    linked = client.get(changelist).content.decode()
    user_page = reverse("admin:accounts_user_change", args=[alice.pk])
    assert f'href="{user_page}"' in linked and f'href="{user_page}"' not in html


def test_an_api_key_subject_is_shown_by_its_name_and_owner(now, administrator, make_user):
    client, sam = administrator
    owner = make_user("olivia")
    boss = make_user("boss", is_staff=True, is_superuser=True)
    issued = api_services.api_key_issue(actor=boss, owner=owner, name="ci-deployer", scopes=["memories:read"])
    prefix = issued.api_key.prefix
    key_finding = finding(key=f"api_error_burst:api_key_id:{prefix}", last_event_id=5)
    key_finding.detector, key_finding.subject_type, key_finding.subject = "api_error_burst", "api_key", prefix
    key_finding.counts = {"count": 31, "threshold": 30, "window_seconds": 300}
    alert, _ = alert_record_finding(finding=key_finding)
    html = client.get(reverse("admin:monitoring_alert_changelist")).content.decode()
    assert f"ci-deployer (key {prefix}, owner olivia)" in html
    assert f"31 refused API requests (401/403/429) for ci-deployer (key {prefix}, owner olivia) in 5 minutes" in html
    assert reverse("admin:api_apikey_change", args=[issued.api_key.pk]) in html
    detail = client.get(page_of(alert)).content.decode()
    assert "owner olivia" in detail
    assert issued.key not in html and issued.key not in detail and issued.signing_secret not in detail


def test_without_a_describer_a_key_is_shown_as_stored(now, administrator, settings):
    client, _ = administrator
    settings.MONITORING_SUBJECT_DESCRIBERS = {}
    key_finding = finding(key="api_error_burst:api_key_id:abcd1234", last_event_id=5)
    key_finding.detector, key_finding.subject_type, key_finding.subject = "api_error_burst", "api_key", "abcd1234"
    alert_record_finding(finding=key_finding)
    response = client.get(reverse("admin:monitoring_alert_changelist"))
    assert response.status_code == 200 and "abcd1234" in response.content.decode()


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(900, "15 minutes"), (3600, "1 hour"), (86400, "1 day"), (45, "45 seconds"), (90, "90 seconds")],
)
def test_durations_read_as_words(seconds, text):
    assert duration_text(seconds) == text


def test_an_alert_without_the_figures_a_sentence_needs_keeps_its_summary():
    assert alert_sentence(detector="brute_force", subject="alice", counts={}, summary="old summary") == "Old summary"
    assert alert_sentence(detector="job_failed", subject="x", counts={"count": 1}, summary="job x failed") == (
        "Job x failed"
    )


def test_history_notes_have_a_bounded_length():
    assert AlertNote._meta.get_field("text").max_length == 2000


def test_the_alert_page_is_csp_strict(alert, administrator):
    """No inline style attribute or script: the page's own styles are one element with the nonce."""
    client, _ = administrator
    response = client.get(page_of(alert))
    html = response.content.decode()
    body = html.split("<body", 1)[1]
    assert ' style="' not in body and "<script>" not in body and "onclick" not in body
    nonce = response.wsgi_request.csp_nonce
    assert f'<style nonce="{nonce}">' in html and ".triage-history" in html
    assert "'unsafe-inline'" not in response["Content-Security-Policy"].split("style-src")[1].split(";")[0]


def test_the_list_costs_the_same_queries_for_3_alerts_as_for_30(now, administrator):
    """Subjects are described per page (one query per kind), never per row."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client, _ = administrator
    changelist = reverse("admin:monitoring_alert_changelist")

    def raise_alerts(first: int, last: int) -> None:
        for index in range(first, last):
            made = finding(key=f"k{index}", last_event_id=100 + index)
            if index % 2:
                made.subject_type, made.subject, made.detector = "api_key", f"key{index:04d}", "api_error_burst"
                made.counts = {"count": 31, "window_seconds": 300}
            else:
                made.subject = f"user{index}"
            alert_record_finding(finding=made)

    counts = []
    for first, last in ((0, 3), (3, 30)):
        raise_alerts(first, last)
        client.get(changelist)  # warm: sessions, content types
        with CaptureQueriesContext(connection) as queries:
            assert client.get(changelist).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]
