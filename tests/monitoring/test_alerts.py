"""Alerts: deduplication, detection time, the triage workflow (audited), and the admin console."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from monitoring.detectors.base import Finding
from monitoring.models import Alert, AlertStatus, Notification, Severity
from monitoring.services.alerts import (
    AlertTransitionError,
    alert_acknowledge,
    alert_mark_false_positive,
    alert_record_finding,
    alert_resolve,
)
from tests.monitoring.conftest import NOW, record

pytestmark = pytest.mark.django_db

MINUTE = datetime.timedelta(minutes=1)


def finding(*, last_event_id=10, at=NOW - MINUTE, key="brute_force:subject_username:alice", severity=Severity.HIGH,
            event_ids=None):
    return Finding(
        detector="brute_force",
        severity=severity,
        subject_type="user",
        subject="alice",
        summary="10 failed logins against account alice",
        dedupe_key=key,
        counts={"count": 10},
        first_seen=at - 5 * MINUTE,
        last_seen=at,
        triggered_at=at,
        event_ids=event_ids or [last_event_id],
        last_event_id=last_event_id,
    )


# --- raising and deduplication -----------------------------------------------------------------
def test_a_new_finding_raises_an_alert_with_its_detection_time_and_an_audit_event(now):
    alert, outcome = alert_record_finding(finding=finding(at=NOW - datetime.timedelta(seconds=2.5)))
    assert outcome == "created"
    assert alert.status == AlertStatus.OPEN and alert.count == 1
    assert alert.created_at == NOW and alert.detection_seconds == pytest.approx(2.5)
    [event] = AuditEvent.objects.filter(action=Action.ALERT_RAISED.value)
    assert event.target_type == "monitoring.alert" and event.target_id == str(alert.pk)
    assert event.actor_id == "" and event.context["detector"] == "brute_force"
    assert event.context["severity"] == "high" and event.context["detection_seconds"] == 2.5


def test_repeated_triggers_within_the_window_update_one_alert(now, settings):
    settings.MONITORING_ALERT_DEDUPE_WINDOW_SECONDS = 3600
    first, _ = alert_record_finding(finding=finding(last_event_id=10, at=NOW - 30 * MINUTE))
    second, outcome = alert_record_finding(finding=finding(last_event_id=11, at=NOW - MINUTE, event_ids=[11, 10]))
    assert outcome == "updated" and second.pk == first.pk
    second.refresh_from_db()
    assert second.count == 2 and second.last_seen == NOW - MINUTE and second.last_event_id == 11
    assert second.evidence["event_ids"] == [11, 10]
    assert AuditEvent.objects.filter(action=Action.ALERT_RAISED.value).count() == 1


def test_the_same_evidence_again_changes_nothing(now):
    alert, _ = alert_record_finding(finding=finding(last_event_id=10))
    again, outcome = alert_record_finding(finding=finding(last_event_id=10))
    older, outcome_older = alert_record_finding(finding=finding(last_event_id=9))
    assert outcome == outcome_older == "duplicate" and again.pk == older.pk == alert.pk
    alert.refresh_from_db()
    assert alert.count == 1


def test_a_trigger_after_the_window_raises_a_new_alert(now, settings):
    settings.MONITORING_ALERT_DEDUPE_WINDOW_SECONDS = 600
    first, _ = alert_record_finding(finding=finding(last_event_id=10, at=NOW - 30 * MINUTE))
    second, outcome = alert_record_finding(finding=finding(last_event_id=20, at=NOW - MINUTE))
    assert outcome == "created" and second.pk != first.pk


def test_new_evidence_after_resolution_raises_a_new_alert(now, security_admin):
    first, _ = alert_record_finding(finding=finding(last_event_id=10))
    alert_resolve(actor=security_admin, alert_id=first.pk)
    assert alert_record_finding(finding=finding(last_event_id=10))[1] == "duplicate"
    second, outcome = alert_record_finding(finding=finding(last_event_id=11))
    assert outcome == "created" and second.pk != first.pk


def test_a_higher_severity_escalates_the_alert_and_notifies_again(now, security_admin, settings):
    settings.MONITORING_NOTIFICATION_ROUTES = {"critical": ["email"], "high": ["email"], "medium": [], "low": []}
    alert, _ = alert_record_finding(finding=finding(last_event_id=10, severity=Severity.HIGH))
    escalated, outcome = alert_record_finding(finding=finding(last_event_id=11, severity=Severity.CRITICAL))
    assert outcome == "updated" and escalated.severity == Severity.CRITICAL
    assert list(Notification.objects.filter(alert=alert).order_by("id").values_list("event_type", flat=True)) == [
        "alert.raised", "alert.escalated",
    ]


# --- triage --------------------------------------------------------------------------------------
def _triage_events(alert):
    return list(
        AuditEvent.objects.filter(target_type="monitoring.alert", target_id=str(alert.pk))
        .exclude(action=Action.ALERT_RAISED.value)
        .order_by("id")
        .values_list("action", "actor_username", "context")
    )


def test_open_acknowledged_resolved_each_step_audited(now, security_admin):
    alert, _ = alert_record_finding(finding=finding())
    alert = alert_acknowledge(actor=security_admin, alert_id=alert.pk, note="looking")
    assert alert.status == AlertStatus.ACKNOWLEDGED
    assert alert.acknowledged_by == security_admin and alert.acknowledged_at == NOW
    alert = alert_resolve(actor=security_admin, alert_id=alert.pk, note="password reset, IP blocked")
    assert alert.status == AlertStatus.RESOLVED and alert.closed_by == security_admin and alert.closed_at == NOW
    assert "password reset, IP blocked" in alert.note and "looking" in alert.note
    assert _triage_events(alert) == [
        (Action.ALERT_ACKNOWLEDGED.value, "sec-admin",
         {"from": "open", "to": "acknowledged", "detector": "brute_force", "note_given": True}),
        (Action.ALERT_RESOLVED.value, "sec-admin",
         {"from": "acknowledged", "to": "resolved", "detector": "brute_force", "note_given": True}),
    ]


def test_an_open_alert_can_be_dismissed_as_a_false_positive(now, security_admin):
    alert, _ = alert_record_finding(finding=finding())
    alert = alert_mark_false_positive(actor=security_admin, alert_id=alert.pk, note="our own load test")
    assert alert.status == AlertStatus.FALSE_POSITIVE
    assert [row[0] for row in _triage_events(alert)] == [Action.ALERT_DISMISSED.value]


def test_a_false_positive_needs_a_note_and_without_one_nothing_changes(now, security_admin):
    alert, _ = alert_record_finding(finding=finding())
    before = AuditEvent.objects.count()
    for blank in ("", "   "):
        with pytest.raises(AlertTransitionError, match="note is required"):
            alert_mark_false_positive(actor=security_admin, alert_id=alert.pk, note=blank)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN and not alert.notes.exists()
    assert AuditEvent.objects.count() == before


@pytest.mark.parametrize("closed", [AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE])
def test_a_closed_alert_cannot_move_and_stays_as_it_was(now, security_admin, closed):
    alert, _ = alert_record_finding(finding=finding())
    (alert_resolve if closed == AlertStatus.RESOLVED else alert_mark_false_positive)(
        actor=security_admin, alert_id=alert.pk, note="checked"
    )
    before = AuditEvent.objects.count()
    for service in (alert_acknowledge, alert_resolve, alert_mark_false_positive):
        with pytest.raises(AlertTransitionError):
            service(actor=security_admin, alert_id=alert.pk, note="again")
    alert.refresh_from_db()
    assert alert.status == closed and "again" not in alert.note
    assert AuditEvent.objects.count() == before


def test_acknowledging_twice_is_refused(now, security_admin):
    alert, _ = alert_record_finding(finding=finding())
    alert_acknowledge(actor=security_admin, alert_id=alert.pk)
    with pytest.raises(AlertTransitionError):
        alert_acknowledge(actor=security_admin, alert_id=alert.pk)


def test_triage_needs_the_permission_and_a_refusal_is_audited(now, make_user):
    alert, _ = alert_record_finding(finding=finding())
    staff = make_user("helpdesk", is_staff=True)
    with pytest.raises(PermissionDenied):
        alert_resolve(actor=staff, alert_id=alert.pk)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN
    [denied] = AuditEvent.objects.filter(action=Action.PERMISSION_DENIED.value)
    assert denied.actor_username == "helpdesk" and denied.outcome == Outcome.DENIED
    staff.user_permissions.add(Permission.objects.get(codename="triage_alert"))
    staff = type(staff).objects.get(pk=staff.pk)  # fresh permission cache
    assert alert_resolve(actor=staff, alert_id=alert.pk).status == AlertStatus.RESOLVED


# --- the admin console ---------------------------------------------------------------------------
def test_changelist_shows_the_severity_chart_and_bulk_actions_call_the_services(console, security_admin):
    login = record(Action.LOGIN_FAILED, at=NOW - MINUTE, subject="alice", ip="192.0.2.1")
    first, _ = alert_record_finding(finding=finding(last_event_id=login.pk, event_ids=[login.pk]))
    second, _ = alert_record_finding(finding=finding(last_event_id=1, key="other", severity=Severity.LOW))
    url = reverse("admin:monitoring_alert_changelist")
    page = console.get(url)
    assert page.status_code == 200, page.content[:500]
    html = page.content.decode()
    assert "<svg" in html and "Alerts raised per day by severity" in html and "<script" not in html.split("<svg")[1]
    assert "2 in all" in html
    response = console.post(
        url, {"action": "acknowledge_selected", "_selected_action": [first.pk, second.pk]}, follow=True
    )
    assert response.status_code == 200
    assert set(Alert.objects.values_list("status", flat=True)) == {AlertStatus.ACKNOWLEDGED}
    console.post(url, {"action": "resolve_selected", "_selected_action": [first.pk]})
    first.refresh_from_db()
    assert first.status == AlertStatus.RESOLVED and first.closed_by == security_admin
    assert AuditEvent.objects.filter(action=Action.ALERT_ACKNOWLEDGED.value, actor_username="sec-admin").count() == 2
    detail = console.get(reverse("admin:monitoring_alert_change", args=[first.pk])).content.decode()
    assert reverse("admin:audit_auditevent_change", args=[login.pk]) in detail


def test_changelist_filters_by_severity_and_status(console):
    alert_record_finding(finding=finding(last_event_id=1, key="a", severity=Severity.CRITICAL))
    alert_record_finding(finding=finding(last_event_id=2, key="b", severity=Severity.LOW))
    url = reverse("admin:monitoring_alert_changelist")
    html = console.get(url, {"severity__exact": Severity.CRITICAL.value, "status__exact": "open"}).content.decode()
    assert "CRITICAL" in html and ">LOW<" not in html
