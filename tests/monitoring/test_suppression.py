"""Suppression rules: made from an alert, audited, listed, honoured by alert raising, expiring.

A rule stops new alerts only for its detector and subject and only until its end; a suppressed
detection raises nothing and notifies nobody but is counted on the rule (and in the detection
job's counts), once per new evidence.
"""

from __future__ import annotations

import datetime
import importlib

import pytest
import time_machine
from django.apps import apps as global_apps
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse

from accounts import roles
from accounts.testing import login_with_mfa
from audit.actions import Action
from audit.models import AuditEvent
from audit.services import write_held_events
from monitoring.models import Alert, Notification, SuppressionRule
from monitoring.services.alerts import alert_record_finding
from monitoring.services.detection import detection_sweep
from monitoring.services.suppression import suppression_create, suppression_delete, suppression_end
from tests.monitoring.conftest import NOW, record
from tests.monitoring.test_alerts import finding

pytestmark = pytest.mark.django_db

ROLE_MIGRATION = importlib.import_module("accounts.migrations.0004_security_roles")
DAY = datetime.timedelta(days=1)
MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture
def administrator(db):
    from django.contrib.auth import get_user_model

    ROLE_MIGRATION.create_roles(global_apps, None)
    user = get_user_model().objects.create_user("sam", "sam@example.org", "correct horse battery 42", is_staff=True)
    user.groups.add(Group.objects.get(name=roles.SECURITY_ADMINISTRATOR))
    client = Client()
    login_with_mfa(client, user)
    return client, get_user_model().objects.get(pk=user.pk)


def a_finding(*, detector="brute_force", subject="alice", last_event_id=10, at=NOW - MINUTE):
    made = finding(key=f"{detector}:subject_username:{subject}", last_event_id=last_event_id, at=at)
    made.detector, made.subject = detector, subject
    return made


def rule_for(actor, *, detector="brute_force", subject="alice", days=3, **extra):
    return suppression_create(
        actor=actor, detector=detector, subject_type="user", subject=subject, reason="pen test this week",
        expires_at=NOW + days * DAY, **extra,
    )


@pytest.mark.audit_coverage("monitoring.suppression_created")
def test_a_rule_made_from_the_alert_page_silences_that_detector_for_that_subject_until_its_date(now, administrator):
    client, sam = administrator
    alert, _ = alert_record_finding(finding=a_finding(last_event_id=10))
    response = client.post(
        reverse("admin:monitoring_alert_suppress", args=[alert.pk]),
        {"until": "2031-03-14", "reason": "red team exercise, ticket SEC-12"},
    )
    assert response.status_code == 302
    rule = SuppressionRule.objects.get()
    # "Until the 14th" includes the 14th: the rule ends at the end of that day, UTC.
    assert rule.expires_at == datetime.datetime(2031, 3, 15, tzinfo=datetime.UTC)
    assert (rule.detector, rule.subject_type, rule.subject) == ("brute_force", "user", "alice")
    assert rule.source_alert == alert
    assert "red team exercise" in alert.notes.get().text
    notifications = Notification.objects.count()
    alerts = Alert.objects.count()

    # Same detector, same subject, new evidence after the alert was closed: suppressed, counted.
    alert.status = "resolved"
    alert.save()
    created, outcome = alert_record_finding(finding=a_finding(last_event_id=20))
    assert (created, outcome) == (None, "suppressed")
    # Another subject, or another detector for the same subject: alerts as before.
    assert alert_record_finding(finding=a_finding(subject="bob", last_event_id=21))[1] == "created"
    assert alert_record_finding(finding=a_finding(detector="lockout", last_event_id=22))[1] == "created"
    assert Alert.objects.count() == alerts + 2
    rule.refresh_from_db()
    assert rule.suppressed_count == 1 and rule.last_suppressed_at == NOW
    # No notification for the suppressed one (the two new alerts route as usual).
    assert Notification.objects.filter(alert__subject="alice", alert__detector="brute_force").count() == notifications

    # After the end of the 14th (UTC) the rule no longer applies.
    with time_machine.travel(datetime.datetime(2031, 3, 15, 0, 0, 1, tzinfo=datetime.UTC), tick=False):
        later, outcome = alert_record_finding(finding=a_finding(last_event_id=30))
        login_with_mfa(client, sam)  # days later: a new sign-in
        listed = client.get(reverse("admin:monitoring_suppressionrule_changelist")).content.decode()
    assert outcome == "created" and later.subject == "alice"
    assert "expired" in listed and ">1<" in listed  # its state and what it kept from alerting


def test_a_detection_is_counted_once_however_often_the_sweep_finds_it(now, administrator):
    _, sam = administrator
    rule = rule_for(sam)
    for index in range(10):
        record(Action.LOGIN_FAILED, at=NOW - 5 * MINUTE + index * datetime.timedelta(seconds=10),
               subject="alice", ip="192.0.2.9", outcome="failure")
    first = detection_sweep(now=NOW)
    again = detection_sweep(now=NOW)
    assert first["suppressed"] == 1 and again["suppressed"] == 1
    assert not Alert.objects.filter(detector="brute_force").exists()
    rule.refresh_from_db()
    assert rule.suppressed_count == 1
    record(Action.LOGIN_FAILED, at=NOW - MINUTE, subject="alice", ip="192.0.2.9", outcome="failure")
    detection_sweep(now=NOW)
    rule.refresh_from_db()
    assert rule.suppressed_count == 2


def test_create_end_and_delete_are_audited_without_the_reason(now, administrator):
    _, sam = administrator
    rule = rule_for(sam)
    suppression_end(actor=sam, rule_id=rule.pk)
    rule.refresh_from_db()
    assert rule.ended_at == NOW and rule.ended_by == sam
    assert alert_record_finding(finding=a_finding())[1] == "created"  # ended: no longer applies
    with pytest.raises(ValidationError, match="no longer in force"):
        suppression_end(actor=sam, rule_id=rule.pk)
    suppression_delete(actor=sam, rule_id=rule.pk)
    assert not SuppressionRule.objects.exists()
    write_held_events()
    events = AuditEvent.objects.filter(action__startswith="monitoring.suppression_").order_by("id")
    assert [(event.action, event.actor_username) for event in events] == [
        (Action.SUPPRESSION_CREATED.value, "sam"), (Action.SUPPRESSION_ENDED.value, "sam"),
        (Action.SUPPRESSION_DELETED.value, "sam"),
    ]
    assert events[0].context == {
        "detector": "brute_force", "subject_type": "user", "subject": "alice",
        "expires_at": (NOW + 3 * DAY).isoformat(), "reason_given": True,
    }
    assert all("pen test" not in str(event.context) for event in events)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reason": "  "}, "Say why"),
        ({"expires_at": NOW - MINUTE}, "in the future"),
        ({"expires_at": NOW + 31 * DAY}, "at most 30 days"),
        ({"expires_at": datetime.datetime(2031, 3, 14)}, "date and time"),
        ({"subject": ""}, "Name the subject"),
        ({"subject_type": "planet"}, "Unknown subject type"),
        ({"reason": "x" * 2001}, "At most 2000"),
    ],
)
def test_bad_rules_are_refused_and_nothing_is_written(now, administrator, changes, message):
    _, sam = administrator
    arguments = {
        "actor": sam, "detector": "brute_force", "subject_type": "user", "subject": "alice",
        "reason": "pen test", "expires_at": NOW + DAY, **changes,
    }
    write_held_events()
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationError, match=message):
        suppression_create(**arguments)
    write_held_events()
    assert not SuppressionRule.objects.exists() and AuditEvent.objects.count() == before


def test_the_maximum_duration_is_a_setting(now, administrator, settings):
    _, sam = administrator
    settings.MONITORING_SUPPRESSION_MAX_DAYS = 2
    with pytest.raises(ValidationError, match="at most 2 days"):
        rule_for(sam, days=3)
    assert rule_for(sam, days=2).expires_at == NOW + 2 * DAY


def test_a_bad_date_on_the_page_gets_a_clear_message(now, administrator):
    client, _ = administrator
    alert, _ = alert_record_finding(finding=a_finding())
    for until in ("next week", "2031-02-01", "2031-06-01"):
        response = client.post(
            reverse("admin:monitoring_alert_suppress", args=[alert.pk]), {"until": until, "reason": "x"}, follow=True
        )
        assert response.status_code == 200
        assert [str(m) for m in response.context["messages"]]
    assert not SuppressionRule.objects.exists()


def test_only_administrators_may_make_rules(now, make_user):
    helpdesk = make_user("helpdesk", is_staff=True)
    with pytest.raises(PermissionDenied):
        rule_for(helpdesk)
    assert not SuppressionRule.objects.exists()


@pytest.mark.audit_coverage("monitoring.suppression_ended", "monitoring.suppression_deleted")
def test_the_rules_list_ends_and_deletes_through_the_services_after_step_up(now, administrator):
    client, sam = administrator
    rule = rule_for(sam)
    url = reverse("admin:monitoring_suppressionrule_changelist")
    page = client.get(url).content.decode()
    assert "in force" in page and "pen test" not in page.split("<table")[0]
    client.post(url, {"action": "end_selected", "_selected_action": [rule.pk]})
    rule.refresh_from_db()
    assert rule.ended_at is not None
    client.post(url, {"action": "delete_rules_selected", "_selected_action": [rule.pk]})
    assert not SuppressionRule.objects.exists()
    assert client.post(url, {"action": "delete_selected", "_selected_action": [1]}).status_code == 403


def test_the_auditor_sees_the_rules_and_may_not_end_or_delete_them(now, administrator):
    _, sam = administrator
    rule = rule_for(sam)
    from django.contrib.auth import get_user_model

    auditor = get_user_model().objects.create_user("aud", "aud@example.org", "correct horse battery 42", is_staff=True)
    auditor.groups.add(Group.objects.get(name=roles.SECURITY_AUDITOR))
    client = Client()
    login_with_mfa(client, auditor)
    url = reverse("admin:monitoring_suppressionrule_changelist")
    page = client.get(url)
    assert page.status_code == 200 and "brute_force" in page.content.decode()
    assert "end_selected" not in page.content.decode()
    for action in ("end_selected", "delete_rules_selected"):
        assert client.post(url, {"action": action, "_selected_action": [rule.pk]}).status_code == 403
    rule.refresh_from_db()
    assert rule.ended_at is None
    write_held_events()
    assert AuditEvent.objects.filter(action=Action.PERMISSION_DENIED, actor_username="aud").count() == 2
