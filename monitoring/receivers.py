"""How monitoring listens: the audit signal, Celery's task and start signals, Django's auth signals.

No rule lives here. Each receiver hands an id to a Celery task or calls one service, and none
can break its sender: errors are logged (the scheduled sweep and the outbox catch up).
Connected in ``MonitoringConfig.ready()``.
"""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction

from monitoring.detectors import watched_actions
from monitoring.schedule import scheduled_task_names

logger = logging.getLogger("monitoring.receivers")


# --- audit.signals.event_recorded → real-time detection -------------------------------------
def _enqueue_detection(event) -> None:
    from monitoring.services.detection import detection_hand_off
    from monitoring.tasks import detect_event, detect_principal

    # broker down: the sweep finds it within a minute
    detection_hand_off(event=event, event_task=detect_event, principal_task=detect_principal)


def audit_event_recorded(sender, event=None, **kwargs) -> None:
    """Hand a committed audit event to real-time detection (``detection_hand_off``), after commit.

    Only actions some detector watches are handed over (``monitoring.detectors``), so the
    worker is not woken for every memory created or alert raised; reads and lists are counted
    per user and handed over in batches.
    """
    if event is None or event.pk is None or event.action not in watched_actions():
        return
    transaction.on_commit(partial(_enqueue_detection, event), robust=True)


# --- Celery task signals → JobRun -----------------------------------------------------------
def _is_scheduled(task) -> bool:
    return task is not None and getattr(task, "name", None) in scheduled_task_names()


def task_started(sender=None, task_id=None, task=None, **kwargs) -> None:
    if not _is_scheduled(task):
        return
    from monitoring.services.jobs import job_run_start

    try:
        job_run_start(task_name=task.name, task_id=task_id)
    except Exception:
        logger.exception("could not record the start of job %s", task.name)


def task_finished(sender=None, task_id=None, task=None, retval=None, state=None, **kwargs) -> None:
    if not _is_scheduled(task):
        return
    from monitoring.services.jobs import job_run_finish

    try:
        job_run_finish(task_id=task_id, state=state or "", result=retval)
    except Exception:
        logger.exception("could not record the end of job %s", task.name)


def task_failed(sender=None, task_id=None, exception=None, **kwargs) -> None:
    if not _is_scheduled(sender):
        return
    from monitoring.services.jobs import job_run_fail

    try:
        job_run_fail(task_name=sender.name, task_id=task_id, error=exception or RuntimeError())
    except Exception:
        logger.exception("could not record the failure of job %s", sender.name)


# --- Celery's start signals → the process's posture -------------------------------------------
# worker_ready, not worker_process_init: it is sent once by the worker's main process when it
# consumes (Celery clears its callback after the first call, so a broker reconnection does not send
# it again), whatever the pool. worker_process_init is sent in every pool child, again each time
# one is replaced (max-tasks-per-child, a crash), never by the prefork main process: a record per
# child of a posture the children inherit unchanged from the main process (fork keeps uid,
# capabilities and mounts) would be noise. Celery's own --uid/--gid drop happens before, so the main process shows
# the posture its children run with.
def worker_ready(sender=None, **kwargs) -> None:
    """Record the worker's posture (``system.process_started``, role ``worker``)."""
    from monitoring.services.posture import process_started_record_once

    process_started_record_once(role="worker")


def beat_init(sender=None, **kwargs) -> None:
    """Record beat's posture (``system.process_started``, role ``beat``)."""
    from monitoring.services.posture import process_started_record_once

    process_started_record_once(role="beat")


# --- Django auth signals → independent tallies (audit coverage) ------------------------------
def _tally_after_commit(name: str) -> None:
    from monitoring.services.jobs import tally_add

    def add() -> None:
        tally_add(name=name)

    transaction.on_commit(add, robust=True)


def user_logged_in(sender, request=None, user=None, **kwargs) -> None:
    """Count logins as Django saw them, to compare with the audit record's ``auth.login_succeeded``."""
    _tally_after_commit("auth.login_succeeded")


def user_login_failed(sender, credentials=None, request=None, **kwargs) -> None:
    """Count failed logins as Django saw them (never the credentials)."""
    _tally_after_commit("auth.login_failed")
