"""Job runs, heartbeats and tallies: the evidence that monitoring itself is alive.

``job_run_start`` / ``job_run_finish`` / ``job_run_fail`` are called by the Celery signal hooks
(``monitoring.receivers``) for tasks named in ``monitoring/schedule.py``, so the apps that own those
tasks never import monitoring. A failed run is recorded as ``system.scheduled_job_failed``,
which the ``job_failed`` detector turns into an alert.
"""

from __future__ import annotations

import datetime
import logging
import numbers

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

import audit
from audit.actions import Action, Outcome
from monitoring import conf
from monitoring.models import Heartbeat, JobOutcome, JobRun, Tally

logger = logging.getLogger("monitoring.jobs")

MAX_COUNT_KEYS = 20
CELERY_STATES = {"SUCCESS": JobOutcome.SUCCESS, "FAILURE": JobOutcome.FAILURE, "RETRY": JobOutcome.RETRY}


def _counts_from(result) -> dict:
    """The numbers a job returned (a dict of counts, or a dataclass with ``summary()``), bounded."""
    if hasattr(result, "summary") and callable(result.summary):
        try:
            result = result.summary()
        except Exception:  # a job's result is informative only
            return {}
    if not isinstance(result, dict):
        return {}
    counts = {}
    for key, value in list(result.items())[:MAX_COUNT_KEYS]:
        if isinstance(value, numbers.Number) and not isinstance(value, bool):
            counts[str(key)[:64]] = value
    return counts


def job_run_start(*, task_name: str, task_id: str) -> JobRun:
    """Record that a scheduled job started (a retry of the same task id restarts its run)."""
    run, _created = JobRun.objects.update_or_create(
        task_id=task_id,
        defaults={
            "task_name": task_name[:200],
            "started_at": timezone.now(),
            "outcome": JobOutcome.RUNNING,
            "finished_at": None,
        },
    )
    return run


def job_run_finish(*, task_id: str, state: str, result=None) -> None:
    """Record the end of a run: outcome from Celery's state, counts from the returned value."""
    updates = {"finished_at": timezone.now()}
    outcome = CELERY_STATES.get(state)
    if outcome is not None:
        updates["outcome"] = outcome
    if outcome == JobOutcome.SUCCESS:
        updates["counts"] = _counts_from(result)
    JobRun.objects.filter(task_id=task_id).exclude(outcome=JobOutcome.FAILURE).update(**updates)
    JobRun.objects.filter(task_id=task_id, finished_at__isnull=True).update(finished_at=updates["finished_at"])


def job_run_fail(*, task_name: str, task_id: str, error: BaseException) -> None:
    """Record a failed run and its ``system.scheduled_job_failed`` audit event (which raises an alert).

    Only the exception's class is kept: its message may hold data that must not reach the
    audit record.
    """
    error_name = type(error).__name__
    with transaction.atomic():
        run, _created = JobRun.objects.get_or_create(
            task_id=task_id, defaults={"task_name": task_name[:200], "started_at": timezone.now()}
        )
        run.outcome = JobOutcome.FAILURE
        run.finished_at = timezone.now()
        run.error = error_name[:200]
        run.save(update_fields=["outcome", "finished_at", "error"])
        audit.record(
            action=Action.SCHEDULED_JOB_FAILED,
            outcome=Outcome.ERROR,
            target=audit.Target("monitoring.jobrun", str(run.pk), task_name[:200]),
            context={"task": task_name, "task_id": task_id, "error": error_name},
        )


def heartbeat_record(*, name: str = "worker", detail: dict | None = None) -> Heartbeat:
    """Write ``name``'s heartbeat now (the heartbeat job; ``/readyz`` reads it)."""
    beat, _created = Heartbeat.objects.update_or_create(
        name=name, defaults={"beat_at": timezone.now(), "detail": detail or {}}
    )
    return beat


def tally_add(*, name: str, count: int = 1, at: datetime.datetime | None = None) -> None:
    """Add ``count`` to the per-minute tally ``name`` (an atomic UPDATE, or INSERT for a new minute)."""
    minute = (at or timezone.now()).replace(second=0, microsecond=0)
    if Tally.objects.filter(name=name, minute=minute).update(count=F("count") + count):
        return
    try:
        with transaction.atomic():
            Tally.objects.create(name=name, minute=minute, count=count)
    except IntegrityError:  # another process created the minute first
        Tally.objects.filter(name=name, minute=minute).update(count=F("count") + count)


def monitoring_records_prune(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Delete job runs and tallies past their retention (alerts and reports are kept)."""
    now = now or timezone.now()
    job_runs, _ = JobRun.objects.filter(
        started_at__lt=now - datetime.timedelta(days=conf.get("MONITORING_JOB_RUN_RETENTION_DAYS"))
    ).delete()
    tallies, _ = Tally.objects.filter(
        minute__lt=now - datetime.timedelta(days=conf.get("MONITORING_TALLY_RETENTION_DAYS"))
    ).delete()
    return {"job_runs_pruned": job_runs, "tallies_pruned": tallies}
