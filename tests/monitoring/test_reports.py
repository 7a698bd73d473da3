"""The security report on a seeded database: every figure checked against a hand count."""

from __future__ import annotations

import csv
import datetime
import io
import secrets

import pytest
import time_machine
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.models import BackupCodeDevice, TOTPDevice, TrackedSession
from audit.actions import Action, Outcome
from monitoring.models import Alert, AlertStatus, JobOutcome, JobRun, Notification, Report, Severity, Tally
from tests.monitoring.conftest import NOW, record

pytestmark = pytest.mark.django_db

START = datetime.datetime(2031, 3, 11, tzinfo=datetime.UTC)  # the daily report for 11 March 2031
END = START + datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)


def at(hours: float) -> datetime.datetime:
    return START + datetime.timedelta(hours=hours)


def _alert(key, severity, created, detection, status=AlertStatus.OPEN):
    return Alert.objects.create(
        detector="brute_force", severity=severity, status=status, dedupe_key=key, subject_type="user", subject=key,
        summary=key, first_seen=created, last_seen=created, triggered_at=created, created_at=created,
        detection_seconds=detection,
    )


@pytest.fixture
def seeded(make_user):
    """A day of activity, and some just outside it, with the hand count in comments."""
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    dave = make_user("dave", is_staff=True)
    boss = make_user("boss", is_staff=True, is_superuser=True)
    make_user("gone", is_active=False)  # inactive: not counted
    # Active users 5, staff 2. MFA: alice and dave confirmed (2/5 = 40 %, staff 1/2 = 50 %);
    # bob's authenticator unconfirmed; carol only has backup codes (not a second factor).
    for user, confirmed in ((alice, True), (dave, True), (bob, False)):
        TOTPDevice.objects.create(user=user, name="Phone", confirmed=confirmed, key=secrets.token_hex(20))
    BackupCodeDevice.objects.create(user=carol, name="Backup codes")
    # Active sessions: 2 open, 1 ended.
    for user, ended in ((alice, None), (dave, None), (bob, NOW)):
        TrackedSession.objects.create(user=user, created_at=NOW, last_seen_at=NOW, ended_at=ended)

    # Authentication: 7 failed logins (alice 4 from .1, bob 3 from .2), 2 outside the day.
    for index in range(4):
        record(Action.LOGIN_FAILED, at=at(1 + index / 10), ip="192.0.2.1", subject=alice, outcome=Outcome.FAILURE)
    for index in range(3):
        record(Action.LOGIN_FAILED, at=at(2 + index / 10), ip="192.0.2.2", subject="bob", outcome=Outcome.FAILURE)
    record(Action.LOGIN_FAILED, at=START - HOUR, ip="192.0.2.1", subject="alice")
    record(Action.LOGIN_FAILED, at=END, ip="192.0.2.1", subject="alice")  # the end is excluded
    for _ in range(2):
        record(Action.MFA_VERIFY_FAILED, at=at(3), subject=dave, outcome=Outcome.FAILURE)
    for _ in range(2):
        record(Action.ACCOUNT_LOCKED, at=at(4), subject=alice, outcome=Outcome.DENIED)  # 2 lockouts, 1 account
    for index in range(13):
        record(Action.LOGIN_SUCCEEDED, at=at(5 + index / 10), actor=alice, subject=alice)
    # Logins started 7 + 13 = 20, completed 13: 65 %.

    # API: 9 key uses (k1 x6, k2 x3), 2 refused, 1 rate limited, 1 signature failure,
    # 3 deprecated calls by 2 callers.
    for key, count in (("k1", 6), ("k2", 3)):
        for _ in range(count):
            record(Action.API_KEY_USED, at=at(6), api_key_id=key)
    for _ in range(2):
        record(Action.API_KEY_REFUSED, at=at(6), ip="198.51.100.1", outcome=Outcome.DENIED)
    record(Action.RATE_LIMITED, at=at(6), api_key_id="k1", outcome=Outcome.DENIED)
    record(Action.REQUEST_SIGNATURE_FAILED, at=at(6), api_key_id="k2", outcome=Outcome.FAILURE)
    for key in ("k1", "k1", "k3"):
        record(Action.DEPRECATED_ENDPOINT_CALLED, at=at(7), api_key_id=key)

    # Audit chain: verified at 08:00, head publication failed at 09:00 -> status failed.
    record(Action.AUDIT_VERIFIED, at=at(8), outcome=Outcome.SUCCESS)
    head = record(Action.AUDIT_HEAD_PUBLISHED, at=at(9), outcome=Outcome.FAILURE)
    # Encryption: rotation finished at 10:00; 1 decryption failure.
    rotation = record(Action.KEY_ROTATION_FINISHED, at=at(10))
    record(Action.DECRYPTION_FAILED, at=at(10), outcome=Outcome.ERROR)
    # Backups: created 11:00, verification failed 12:00 -> status failed, 1 failure.
    record(Action.BACKUP_CREATED, at=at(11))
    backup_check = record(Action.BACKUP_VERIFIED, at=at(12), outcome=Outcome.FAILURE)
    # One admin change audited of the two Django's admin log holds.
    record(Action.ADMIN_CHANGED, at=at(13), actor=boss)

    # Observed outside the audit record: 13 logins and 8 failed logins (one not audited),
    # 2 admin log entries -> 23 observed, 13 + 7 + 1 = 21 audited: 91.30 %.
    Tally.objects.bulk_create(
        [
            Tally(name="auth.login_succeeded", minute=at(5), count=13),
            Tally(name="auth.login_failed", minute=at(1), count=8),
            Tally(name="http.2xx", minute=at(6), count=100),
            Tally(name="http.4xx", minute=at(6), count=7),
            Tally(name="http.2xx", minute=END, count=50),  # outside
        ]
    )
    user_type = ContentType.objects.get_for_model(type(alice))
    LogEntry.objects.bulk_create(
        [
            LogEntry(user=boss, content_type=user_type, object_id=str(alice.pk), object_repr="alice",
                     action_flag=CHANGE, change_message="[]", action_time=at(13))
            for _ in range(2)
        ]
    )

    # Alerts raised in the day: critical 2 s; high 4 s and 6 s -> mean 4 s. One before the day.
    _alert("a", Severity.CRITICAL, at(14), 2.0, status=AlertStatus.RESOLVED)
    _alert("b", Severity.HIGH, at(15), 4.0)
    _alert("c", Severity.HIGH, at(16), 6.0, status=AlertStatus.ACKNOWLEDGED)
    _alert("d", Severity.LOW, START - HOUR, 1.0)
    # Scheduled jobs: 3 runs in the day, 1 failed.
    for index, outcome in enumerate((JobOutcome.SUCCESS, JobOutcome.SUCCESS, JobOutcome.FAILURE)):
        JobRun.objects.create(task_name="audit.tasks.audit_archive" if index == 2 else "monitoring.heartbeat",
                              task_id=f"t{index}", started_at=at(17 + index), outcome=outcome)
    return {"head": head, "rotation": rotation, "backup_check": backup_check}


def test_every_figure_matches_the_hand_count(seeded, security_admin):
    with time_machine.travel(NOW, tick=False):
        call_command("security_report", "--period", "daily", "--until", "2031-03-12", stdout=io.StringIO())
    report = Report.objects.get()
    figures = report.figures
    assert (report.period, report.period_start, report.period_end) == ("daily", START, END)

    auth = figures["authentication"]
    assert {key: auth[key] for key in ("failed_logins", "mfa_failures", "lockouts", "accounts_locked",
                                       "logins_started", "logins_succeeded", "auth_completion_rate")} == {
        "failed_logins": 7, "mfa_failures": 2, "lockouts": 2, "accounts_locked": 1,
        "logins_started": 20, "logins_succeeded": 13, "auth_completion_rate": 65.0,
    }
    assert auth["top_failed_accounts"][0] == {"account": "alice", "failures": 4, "ips": 1}
    assert auth["top_failed_ips"][0] == {"ip": "192.0.2.1", "failures": 4, "accounts": 1}

    # The security admin (staff, superuser, no device) makes 6 active users and 3 staff.
    assert figures["mfa"] == {
        "users": 6, "users_with_mfa": 2, "adoption_rate": 33.33,
        "staff": 3, "staff_with_mfa": 1, "staff_adoption_rate": 33.33, "note": "",
    }
    assert figures["sessions"] == {"active": 2, "note": ""}
    assert figures["api"] == {
        "requests": 9, "keys_used": 2, "refused": 2, "rate_limited": 1, "signature_failures": 1,
        "deprecated_calls": 3, "deprecated_callers": 2, "http_requests": 107,
    }
    alerts = figures["alerts"]
    assert alerts["raised"] == 3 and alerts["mean_detection_seconds"] == 4.0
    by_severity = alerts["by_severity"]
    assert by_severity["critical"] == {"count": 1, "mean_detection_seconds": 2.0, "max_detection_seconds": 2.0}
    assert by_severity["high"] == {"count": 2, "mean_detection_seconds": 5.0, "max_detection_seconds": 6.0}
    assert alerts["by_severity"]["low"]["count"] == 0
    assert alerts["open_now"] == {"low": 1, "medium": 0, "high": 2, "critical": 0}

    audit_status = figures["audit"]
    # 7 + 2 + 2 + 13 failed/MFA/locked/succeeded, 16 API, 2 chain, 2 encryption, 2 backup, 1 admin.
    assert audit_status["events"] == 47 and audit_status["status"] == "failed"
    assert audit_status["last_head_published"]["event_id"] == seeded["head"].pk
    assert audit_status["last_verification"]["outcome"] == "success"
    assert figures["encryption"]["status"] == "ok" and figures["encryption"]["decryption_failures"] == 1
    assert figures["encryption"]["last_rotation"]["event_id"] == seeded["rotation"].pk
    assert figures["backups"]["status"] == "failed" and figures["backups"]["failures"] == 1
    assert figures["backups"]["last_verification"]["event_id"] == seeded["backup_check"].pk
    assert figures["jobs"] == {"runs": 3, "failed": 1, "failed_tasks": ["audit.tasks.audit_archive"]}

    metrics = figures["success_metrics"]
    assert metrics["audit_coverage_percent"] == {
        "value": 91.3, "target": 100.0, "met": False, "observed": 23, "audited": 21,
    }
    assert metrics["mfa_adoption_percent"] == {"value": 33.33, "target": 80.0, "met": False}
    assert metrics["mean_time_to_detection_seconds"] == {"value": 4.0, "target": 300.0, "met": True}
    assert metrics["auth_completion_percent"] == {"value": 65.0, "target": 95.0, "met": False}

    rows = {(row["section"], row["metric"]): row["value"] for row in csv.DictReader(io.StringIO(report.csv))}
    assert rows[("Authentication", "Failed logins")] == "7"
    assert rows[("Authentication", "Completion rate")] == "65.00 %"
    assert rows[("Success metrics", "Mean time to detection (target < 300 s)")] == "4.00 s - met"
    assert rows[("API", "HTTP requests served")] == "107"
    assert rows[("Alerts", "Raised, high")] == "2 (mean detection 5.00 s, worst 6.00 s)"
    assert rows[("MFA adoption", "Adoption, staff")] == "33.33 %"
    for label, value in rows.items():
        assert f"{label[1]}: {value}" in report.text
    assert "<th scope=\"row\">Failed logins</th><td>7</td>" in report.html


@pytest.mark.parametrize(("output", "marker"), [("text", "Failed logins: 7"), ("html", "<!DOCTYPE html>"),
                                                  ("csv", "section,metric,value")])
def test_the_command_prints_each_format(seeded, output, marker):
    out = io.StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("security_report", "--period", "daily", "--until", "2031-03-12", "--format", output, stdout=out)
    assert marker in out.getvalue()


def test_weekly_covers_seven_days(seeded):
    with time_machine.travel(NOW, tick=False):
        call_command("security_report", "--period", "weekly", "--until", "2031-03-13", stdout=io.StringIO())
    report = Report.objects.get()
    assert report.period_start == START - datetime.timedelta(days=5)
    assert report.figures["authentication"]["failed_logins"] == 9  # the two outside the day are in the week


def test_email_sends_html_text_and_csv(seeded, settings):
    settings.MONITORING_REPORT_EMAILS = ["soc@example.org"]
    err = io.StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("security_report", "--period", "daily", "--until", "2031-03-12", "--email",
                     stdout=io.StringIO(), stderr=err)
    assert "1 email(s) sent" in err.getvalue()
    [message] = mail.outbox
    assert message.to == ["soc@example.org"]
    assert message.subject == "[Ninaivalaigal] Daily security report 2031-03-11"
    assert "Failed logins: 7" in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html" and "<h1>" in html
    [(filename, content, attachment_type)] = message.attachments
    assert filename == "security-report-daily-2031-03-11.csv" and attachment_type == "text/csv"
    assert "Authentication,Failed logins,7" in content
    assert Notification.objects.get().status == "sent"


def test_a_bad_date_is_refused_and_nothing_is_stored(db):
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("security_report", "--until", "yesterday", stdout=io.StringIO())
    assert not Report.objects.exists()


def test_the_report_is_shown_in_the_console(seeded, console):
    with time_machine.travel(NOW, tick=False):
        call_command("security_report", "--until", "2031-03-12", stdout=io.StringIO())
    report = Report.objects.get()
    detail = console.get(reverse("admin:monitoring_report_change", args=[report.pk])).content.decode()
    assert "Failed logins: 7" in detail
    html = console.get(reverse("admin:monitoring_report_html", args=[report.pk]))
    assert html.status_code == 200 and "sandbox" in html["Content-Security-Policy"]
    download = console.get(reverse("admin:monitoring_report_csv", args=[report.pk]))
    assert download["Content-Disposition"].startswith("attachment;") and b"Failed logins,7" in download.content
