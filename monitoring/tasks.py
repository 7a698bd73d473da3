"""Celery tasks of the monitoring app: thin wrappers that take ids and call one service each.

Every task is idempotent (safe to run twice and to retry). The scheduled ones are named in
``monitoring/schedule.py``; their runs are recorded as ``JobRun`` rows by ``monitoring.receivers``.
"""

from __future__ import annotations

import datetime
import socket

from celery import shared_task
from django.db import DatabaseError
from django.utils import timezone

from monitoring.services import detection, jobs, notifications, reports, rollup


@shared_task(name="monitoring.health_ping", ignore_result=False)  # the answer is the point
def health_ping(token: str) -> dict:
    """Answer a ping through the worker: proves a worker consumes the broker and runs Django code."""
    return {"token": token, "answered_at": timezone.now().isoformat()}


@shared_task(
    name="monitoring.detect_event",
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def detect_event(event_id: int) -> dict:
    """Real-time detection for one committed audit event (``detection_run_for_event``)."""
    return detection.detection_run_for_event(event_id=event_id)


@shared_task(
    name="monitoring.detect_principal",
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def detect_principal(detector: str, principal: str, since: str) -> dict:
    """Real-time detection for a principal's batch of events (``detection_run_for_principal``)."""
    return detection.detection_run_for_principal(
        detector_name=detector, principal=principal, since=datetime.datetime.fromisoformat(since)
    )


@shared_task(name="monitoring.detection_sweep")
def detection_sweep() -> dict:
    """Every detector over the recent audit record (``detection_sweep``)."""
    return detection.detection_sweep()


@shared_task(name="monitoring.job_health_check")
def job_health_check() -> dict:
    """Late scheduled jobs, and pruning of old job runs and tallies (``job_health_check``)."""
    return detection.job_health_check()


@shared_task(
    name="monitoring.notifications_deliver",
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=5,
)
def notifications_deliver() -> dict:
    """Deliver due outbox notifications (``notifications_deliver_due``)."""
    return notifications.notifications_deliver_due()


@shared_task(name="monitoring.heartbeat")
def heartbeat() -> dict:
    """Write the worker heartbeat that ``/readyz`` reads (``heartbeat_record``)."""
    beat = jobs.heartbeat_record(name="worker", detail={"host": socket.gethostname()[:100]})
    return {"beat_at": beat.beat_at.isoformat()}


@shared_task(name="monitoring.security_report", bind=True)
def security_report(self, period: str = "daily", email: bool = False) -> dict:
    """Generate and store the daily or weekly security report; queue its email (``report_generate``).

    The task id is the report's idempotency key: a delivery of the same message again (its worker
    died before acknowledging it) returns the stored report and emails nobody twice.
    """
    report = reports.report_generate(period=period, email=email, task_id=self.request.id)
    return {"report_id": report.pk, "emailed": int(email)}


@shared_task(name="monitoring.security_counts_rollup")
def security_counts_rollup() -> dict:
    """Today's and yesterday's dashboard counts and the 24-hour top lists (``security_counts_rollup``)."""
    return rollup.security_counts_rollup()
