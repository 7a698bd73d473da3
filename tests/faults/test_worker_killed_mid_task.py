"""A Celery worker killed (``kill -9``) in the middle of a detection or of the daily report: the work is
redone once, with no second alert, report or email.

The worker is stopped at a known point of its task: the test holds a PostgreSQL lock the task needs
and kills the worker once the worker waits for it (``pg_stat_activity``), so nothing depends on
timing. Tasks are acknowledged late (``CELERY_TASK_ACKS_LATE``): the killed worker's message stays
unacknowledged in Redis and the broker hands it out again after its visibility timeout (one hour by
default; a few seconds for the second worker here). Detection is redone by that redelivery and by
the minute's detection sweep, which finds the burst in the record and recognises the alert it
raised; a report is redone by the redelivery, which finds the report its task id already made
(``Report.task_id``) when the killed run had committed it.
"""

from __future__ import annotations

import email
import json
import signal
import time
from pathlib import Path

import psycopg
import pytest
from celery import Celery
from django.db import connection

import audit
from audit.actions import Action
from monitoring.models import Alert, JobRun, Notification, NotificationStatus, Report
from tests.monitoring.worker import publishing_to, wait_for, wait_until_drained
from tests.support.servers import celery_worker, redis_server

pytestmark = [pytest.mark.postgresql, pytest.mark.worker, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

RECIPIENT = "security-team@example.org"
# The second worker's broker hands out again a message unacknowledged for 3 s, looking every second
# (kombu's defaults: after an hour, looking every 10 x 10 s).
REDELIVER_AFTER = {"visibility_timeout": 3, "unacked_restore_interval": 1, "unacked_restore_throttle": 1}


def _environment(mail: Path, **extra: str) -> dict:
    return {
        "DJANGO_SETTINGS_MODULE": "tests.faults.worker_settings",
        "FAULT_MAIL_DIR": str(mail),
        "MONITORING_ALERT_EMAILS": RECIPIENT,
        "MONITORING_NOTIFICATION_ROUTES": '{"critical": ["email"], "high": ["email"], "medium": [], "low": []}',
        **extra,
    }


def _emails(mail: Path) -> list[str]:
    """The subjects of the emails the workers sent (Django's file backend: messages between rules of dashes)."""
    if not mail.exists():
        return []
    subjects = []
    for path in sorted(mail.iterdir()):
        for chunk in path.read_text(errors="replace").split("-" * 79):
            if chunk.strip():
                subjects.append(email.message_from_string(chunk.strip() + "\n")["Subject"])
    return subjects


def _connect(**options) -> psycopg.Connection:
    """Another connection to the test database (the locks the worker meets; the view of its sessions)."""
    s = connection.settings_dict
    return psycopg.connect(
        host=s["HOST"], port=s["PORT"], user=s["USER"], password=s["PASSWORD"], dbname=s["NAME"], **options
    )


def _lock_holder() -> psycopg.Connection:
    return _connect()  # its own transaction: the locks last until it ends


def _wait_until_blocked(statement: str, *, timeout: float = 90.0) -> None:
    """Wait until another session waits for a lock while running a statement that contains ``statement``.

    On a connection of its own, outside any transaction: PostgreSQL shows a transaction one snapshot
    of ``pg_stat_activity``.
    """
    with _connect(autocommit=True) as observer:

        def blocked() -> bool:
            row = observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE %s",
                [f"%{statement}%"],
            ).fetchone()
            return row[0] > 0

        wait_for(blocked, timeout=timeout, interval=0.1)


def _kill(worker) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)


def _deliver_all(url: str) -> None:
    """What beat sends every minute, until the outbox holds nothing unsent."""
    beat = Celery("test-beat", broker=url, set_as_current=False)
    try:

        def delivered() -> bool:
            beat.send_task("monitoring.notifications_deliver")
            time.sleep(0.5)
            return not Notification.objects.exclude(status=NotificationStatus.SENT).exists()

        wait_for(delivered, timeout=90, interval=1.0)
    finally:
        beat.close()


def test_a_detection_cut_by_a_killed_worker_is_redone_with_one_alert_and_one_email(tmp_path):
    mail = tmp_path / "mail"
    with redis_server() as url, publishing_to(url):
        holder = _lock_holder()
        try:
            # The detection reads the alerts of its dedupe key inside its transaction: it waits here.
            holder.execute("LOCK TABLE monitoring_alert IN ACCESS EXCLUSIVE MODE")
            with celery_worker(broker_url=url, result_backend=url, extra_env=_environment(mail)) as first:
                audit.record(action=Action.SUPERUSER_GRANTED, subject="mallory")
                _wait_until_blocked("monitoring_alert")
                _kill(first)
            holder.rollback()
        finally:
            holder.close()
        assert not Alert.objects.exists()  # the killed transaction left nothing behind

        second_env = _environment(mail, CELERY_BROKER_TRANSPORT_OPTIONS=json.dumps(REDELIVER_AFTER))
        with celery_worker(broker_url=url, result_backend=url, extra_env=second_env):
            wait_for(lambda: Alert.objects.exists(), timeout=90, interval=0.5)  # the redelivered detect_event
            beat = Celery("test-beat", broker=url, set_as_current=False)
            beat.send_task("monitoring.detection_sweep")  # the minute's sweep finds the same burst
            beat.close()
            wait_for(
                lambda: JobRun.objects.filter(
                    task_name="monitoring.detection_sweep", finished_at__isnull=False
                ).exists(),
                timeout=90,
                interval=0.5,
            )
            _deliver_all(url)
            wait_until_drained(url)

    alert = Alert.objects.get()
    assert alert.detector == "privilege_escalation" and alert.count == 1
    assert Notification.objects.filter(alert=alert).count() == 1
    assert Notification.objects.get().status == NotificationStatus.SENT
    assert len(_emails(mail)) == 1 and "privilege_escalation" in _emails(mail)[0]


def _send_report(url: str) -> None:
    beat = Celery("test-beat", broker=url, set_as_current=False)
    beat.send_task("monitoring.security_report", kwargs={"period": "daily", "email": True})  # as beat sends it
    beat.close()


def test_a_report_cut_before_its_commit_is_generated_once_when_the_task_is_delivered_again(tmp_path):
    mail = tmp_path / "mail"
    with redis_server() as url, publishing_to(url):
        holder = _lock_holder()
        try:
            holder.execute("LOCK TABLE monitoring_report IN ACCESS EXCLUSIVE MODE")
            with celery_worker(broker_url=url, result_backend=url, extra_env=_environment(mail)) as first:
                _send_report(url)
                _wait_until_blocked("monitoring_report")
                _kill(first)
            holder.rollback()
        finally:
            holder.close()
        assert not Report.objects.exists()

        second_env = _environment(mail, CELERY_BROKER_TRANSPORT_OPTIONS=json.dumps(REDELIVER_AFTER))
        with celery_worker(broker_url=url, result_backend=url, extra_env=second_env):
            wait_for(lambda: Report.objects.exists(), timeout=90, interval=0.5)
            _deliver_all(url)
            wait_until_drained(url)

    report = Report.objects.get()
    assert Notification.objects.filter(report=report).count() == 1
    assert len(_emails(mail)) == 1 and "Daily security report" in _emails(mail)[0]


def test_a_report_done_but_not_acknowledged_when_the_worker_died_is_not_made_or_sent_twice(tmp_path):
    """The killed run committed its report and emails; the redelivered message finds them and stops."""
    mail = tmp_path / "mail"
    with redis_server() as url, publishing_to(url):
        gate, finish = _lock_holder(), _lock_holder()
        try:
            gate.execute("LOCK TABLE monitoring_report IN ACCESS EXCLUSIVE MODE")  # hold the run before its insert
            with celery_worker(broker_url=url, result_backend=url, extra_env=_environment(mail)) as first:
                _send_report(url)
                _wait_until_blocked("monitoring_report")
                # Its job run is recorded by now; lock it, so the run's end (after the commit, before
                # the acknowledgement) waits; then let the report through.
                finish.execute(
                    "SELECT id FROM monitoring_jobrun WHERE task_name = 'monitoring.security_report' FOR UPDATE"
                )
                gate.rollback()
                _wait_until_blocked("monitoring_jobrun")
                assert Report.objects.count() == 1  # committed, emails queued, message not acknowledged
                _kill(first)
            finish.rollback()
        finally:
            gate.close()
            finish.close()

        second_env = _environment(mail, CELERY_BROKER_TRANSPORT_OPTIONS=json.dumps(REDELIVER_AFTER))
        with celery_worker(broker_url=url, result_backend=url, extra_env=second_env):
            # The redelivered run ends (its job run is recorded finished) having found the report.
            wait_for(
                lambda: JobRun.objects.filter(
                    task_name="monitoring.security_report", finished_at__isnull=False
                ).exists(),
                timeout=90,
                interval=0.5,
            )
            _deliver_all(url)
            wait_until_drained(url)

    report = Report.objects.get()
    assert Notification.objects.filter(report=report).count() == 1
    assert len(_emails(mail)) == 1
