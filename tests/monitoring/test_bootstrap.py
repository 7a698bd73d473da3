"""A quiet bootstrap: ensure_admin and load_demo_data leave a newcomer no open alert.

Before this, a fresh install raised 13 open privilege-escalation alerts: staff and superuser
granted to the first administrator "by the system" (ensure_admin) and eleven owner/admin roles of
the demo organizations and teams (load_demo_data). They are now raised already resolved, each
with a note naming the command, and notify nobody; the same grants outside a bootstrap run
still open alerts.
"""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from audit.actions import Action
from audit.models import AuditEvent
from audit.services import write_held_events
from core import context as request_context
from monitoring.models import ACTIVE_STATUSES, Alert, AlertStatus, Notification
from monitoring.services.detection import detection_sweep

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fresh_install(monkeypatch, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("ADMIN_PASSWORD", "a long enough first password 42")
    monkeypatch.setenv("DEMO_PASSWORD", "a long enough demo password 42")
    settings.MONITORING_ALERT_EMAILS = ["soc@example.org"]


@pytest.mark.audit_coverage("system.bootstrap_started", "monitoring.alert_raised")
def test_ensure_admin_and_the_demo_data_leave_no_open_alert(fresh_install):
    call_command("ensure_admin", stdout=io.StringIO())
    call_command("load_demo_data", stdout=io.StringIO())
    write_held_events()
    detection_sweep()
    write_held_events()
    alerts = Alert.objects.all()
    # The grants are in the record (as alerts, so a reviewer can see them), none of them open.
    assert alerts.count() == 13
    assert not alerts.filter(status__in=ACTIVE_STATUSES).exists()
    assert set(alerts.values_list("detector", flat=True)) == {"privilege_escalation"}
    first_admin = alerts.filter(subject="admin")
    assert first_admin.count() == 2
    for alert in first_admin:
        [note] = alert.notes.all()
        assert note.author is None and note.to_status == AlertStatus.RESOLVED
        assert "first administrator of a fresh install, created by manage.py ensure_admin" in note.text
    for alert in alerts.exclude(subject="admin"):
        assert "demo data loaded by manage.py load_demo_data" in alert.notes.get().text
    # Nobody was emailed about them.
    assert not Notification.objects.exists()
    raised = AuditEvent.objects.filter(action=Action.ALERT_RAISED)
    assert raised.count() == 13 and all(event.context["status"] == "resolved" for event in raised)


def test_running_them_again_adds_nothing_open(fresh_install):
    for _ in range(2):
        call_command("ensure_admin", stdout=io.StringIO())
        call_command("load_demo_data", stdout=io.StringIO())
    write_held_events()
    detection_sweep()
    assert not Alert.objects.filter(status__in=ACTIVE_STATUSES).exists()
    # ensure_admin marks only the run that creates the first administrator.
    markers = AuditEvent.objects.filter(action=Action.BOOTSTRAP_STARTED)
    assert [event.context["command"] for event in markers.order_by("id")].count("ensure_admin") == 1


def test_the_same_grant_outside_a_bootstrap_run_still_opens_an_alert(fresh_install):
    call_command("ensure_admin", stdout=io.StringIO())
    write_held_events()
    later = get_user_model().objects.create_user("mallory", "mallory@example.org", "a long enough password 42")
    later.is_superuser = True
    later.save()  # granted by the system from a shell: not a bootstrap command
    write_held_events()
    detection_sweep()
    [alert] = Alert.objects.filter(subject="mallory", status=AlertStatus.OPEN)
    assert alert.severity == 40


def test_a_request_that_borrows_a_bootstrap_run_id_is_not_quietened(fresh_install):
    call_command("ensure_admin", stdout=io.StringIO())
    write_held_events()
    run_id = AuditEvent.objects.get(action=Action.BOOTSTRAP_STARTED).request_id
    assert run_id.startswith("cmd-")
    victim = get_user_model().objects.create_user("eve", "eve@example.org", "a long enough password 42")
    # A request may send any well-formed X-Request-ID, this one included; it always has a client IP.
    with request_context.bound(request_id=run_id, client_ip="203.0.113.7"):
        victim.is_staff = True
        victim.save()
    write_held_events()
    detection_sweep()
    [alert] = Alert.objects.filter(subject="eve")
    assert alert.status == AlertStatus.OPEN


def test_events_of_a_run_later_than_its_window_count_as_usual(fresh_install, settings):
    import datetime

    import time_machine

    import audit

    settings.MONITORING_BOOTSTRAP_WINDOW_SECONDS = 3600
    start = datetime.datetime(2031, 3, 12, 9, 0, tzinfo=datetime.UTC)
    target = get_user_model().objects.create_user("late", "late@example.org", "a long enough password 42")
    with request_context.bound(request_id="cmd-" + "a" * 32):
        with time_machine.travel(start, tick=False):
            audit.record(action=Action.BOOTSTRAP_STARTED, context={"command": "load_demo_data"})
        with time_machine.travel(start + datetime.timedelta(hours=2), tick=False):
            audit.record(action=Action.STAFF_GRANTED, subject=target)
            write_held_events()
            detection_sweep()
    [alert] = Alert.objects.filter(subject="late")
    assert alert.status == AlertStatus.OPEN
