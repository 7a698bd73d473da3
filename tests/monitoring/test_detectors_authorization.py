"""Privilege escalation and permission probing."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import Group

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from audit.services import write_held_events
from monitoring.detectors import detector_get
from monitoring.models import Alert, Severity
from monitoring.services.detection import detection_run_for_event, detection_sweep
from tests.monitoring.conftest import NOW, record

pytestmark = pytest.mark.django_db

MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture
def granter(make_user):
    return make_user("root-admin", is_staff=True, is_superuser=True)


@pytest.fixture
def grantee(make_user):
    return make_user("mallory")


@pytest.mark.parametrize(
    ("action", "context", "severity", "what"),
    [
        (Action.STAFF_GRANTED, {}, Severity.HIGH, "staff status"),
        (Action.SUPERUSER_GRANTED, {}, Severity.CRITICAL, "superuser status"),
        (Action.GROUP_MEMBERSHIP_CHANGED, {"added": ["Security"], "removed": []}, Severity.HIGH, "security group"),
        (Action.GROUP_MEMBERSHIP_CHANGED, {}, Severity.MEDIUM, "groups not recorded"),
        (Action.MEMBERSHIP_ROLE_SET, {"role": "owner"}, Severity.HIGH, "role owner"),
        (Action.MEMBERSHIP_ADDED, {"role": "admin"}, Severity.HIGH, "role admin"),
        (Action.MEMBERSHIP_ROLE_SET, {"previous_role": "member", "role": "admin"}, Severity.HIGH, "role admin"),
        (Action.USER_PERMISSIONS_CHANGED, {"added": ["memories.delete_memory"]}, Severity.MEDIUM, "permissions"),
    ],
)
def test_every_privilege_grant_alerts_naming_who_granted_it(granter, grantee, action, context, severity, what):
    event = record(action, at=NOW, actor=granter, subject=grantee, context=context)
    [finding] = detector_get("privilege_escalation").on_event(event)
    assert finding.severity == severity
    assert what in finding.summary and "mallory" in finding.summary and "by root-admin" in finding.summary
    assert finding.counts["granted_by"] == "root-admin"
    assert finding.dedupe_key == f"privilege_escalation:{event.pk}"


@pytest.mark.parametrize(
    ("action", "context", "outcome"),
    [
        (Action.GROUP_MEMBERSHIP_CHANGED, {"added": ["editors"]}, Outcome.SUCCESS),
        (Action.GROUP_MEMBERSHIP_CHANGED, {"added": [], "removed": ["security"]}, Outcome.SUCCESS),
        (Action.MEMBERSHIP_ROLE_SET, {"role": "member"}, Outcome.SUCCESS),
        (Action.STAFF_GRANTED, {}, Outcome.DENIED),  # an attempt refused by policy grants nothing
        (Action.STAFF_REVOKED, {}, Outcome.SUCCESS),
        (Action.USER_PERMISSIONS_CHANGED, {"added": [], "removed": ["x.y"]}, Outcome.SUCCESS),
        # What the producer writes for a removal: only the names removed.
        (Action.GROUP_MEMBERSHIP_CHANGED, {"removed": ["security"]}, Outcome.SUCCESS),
        (Action.USER_PERMISSIONS_CHANGED, {"removed": ["memories.delete_memory"]}, Outcome.SUCCESS),
        (Action.GROUP_PERMISSIONS_CHANGED, {"removed": ["memories.delete_memory"], "group": "editors"},
         Outcome.SUCCESS),
    ],
)
def test_changes_that_grant_nothing_privileged_are_quiet(granter, grantee, action, context, outcome):
    event = record(action, at=NOW, actor=granter, subject=grantee, context=context, outcome=outcome)
    assert detector_get("privilege_escalation").on_event(event) == []


def test_joining_a_security_group_alerts_and_leaving_it_does_not(settings, grantee):
    """Through the real producer (the groups m2m receiver), which names what changed and the sets around it."""
    settings.MONITORING_PRIVILEGED_GROUPS = ["security"]
    group = Group.objects.create(name="Security")
    grantee.groups.add(group)
    grantee.groups.remove(group)
    write_held_events()
    added, removed = AuditEvent.objects.filter(action=Action.GROUP_MEMBERSHIP_CHANGED).order_by("id")
    assert (added.context, removed.context) == (
        {"added": ["Security"], "old": [], "new": ["Security"]},
        {"removed": ["Security"], "old": ["Security"], "new": []},
    )
    detector = detector_get("privilege_escalation")
    [finding] = detector.on_event(added)
    assert finding.severity == Severity.HIGH and "security group security" in finding.summary
    assert detector.on_event(removed) == []


def test_each_grant_is_its_own_alert_and_the_sweep_adds_none(granter, grantee, now):
    first = record(Action.STAFF_GRANTED, at=NOW - 2 * MINUTE, actor=granter, subject=grantee)
    second = record(Action.SUPERUSER_GRANTED, at=NOW - MINUTE, actor=granter, subject=grantee)
    for event in (first, second):
        assert detection_run_for_event(event_id=event.pk)["alerts_created"] == 1
    assert detection_sweep(now=NOW)["alerts_created"] == 0
    assert Alert.objects.filter(detector="privilege_escalation").count() == 2


def test_a_grant_whose_real_time_hand_off_was_lost_is_found_by_the_sweep(granter, grantee, now):
    record(Action.SUPERUSER_GRANTED, at=NOW - 5 * MINUTE, actor=granter, subject=grantee)
    assert detection_sweep(now=NOW)["alerts_created"] == 1
    alert = Alert.objects.get(detector="privilege_escalation")
    assert alert.severity == Severity.CRITICAL and alert.subject == "mallory"
    assert alert.detection_seconds == pytest.approx(300)


def test_permission_probing_by_user_key_and_ip(settings, make_user, now):
    settings.MONITORING_PROBING_THRESHOLD = 3
    prober = make_user("prober")
    detector = detector_get("permission_probing")
    events = [
        record(Action.PERMISSION_DENIED, at=NOW - 3 * MINUTE + index * MINUTE, ip=f"192.0.2.{index}", actor=prober,
               outcome=Outcome.DENIED)
        for index in range(3)
    ]
    assert detector.on_event(events[1]) == []
    [finding] = detector.on_event(events[2])
    assert finding.subject == "prober" and finding.subject_type == "user"  # one user across three IPs
    for _ in range(2):
        record(Action.PERMISSION_DENIED, at=NOW - MINUTE, ip="198.51.100.1", api_key_id="key-7", outcome=Outcome.DENIED)
    for _ in range(3):
        record(Action.PERMISSION_DENIED, at=NOW - MINUTE, ip="198.51.100.2", outcome=Outcome.DENIED)
    swept = sorted((f.subject_type, f.subject) for f in detector.sweep(now=NOW))
    assert swept == [("ip", "198.51.100.2"), ("user", "prober")]  # the key has 2: under
