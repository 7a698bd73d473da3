"""Monitoring of the platform itself (OWASP Logging Cheat Sheet: detect when logging stops).

* ``audit_silence``: requests are being served but no request-driven audit event arrives.
* ``job_late``: a scheduled job has not started on time.
* ``job_failed``: a scheduled job failed (``system.scheduled_job_failed``).
* ``audit_chain_failure``: the audit chain failed verification.
* ``backup_failure``: a backup or its verification failed.
* ``key_rotation_failure``: an encryption key rotation failed.
* ``process_posture``: a web, worker or beat process started as root, on a writable root
  filesystem, or with effective capabilities beyond the baseline (``system.process_started``).
"""

from __future__ import annotations

import datetime

from django.db.models import Max, Sum

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from audit.schema import declared_key
from monitoring import conf
from monitoring.detectors.base import Detector, EventDetector, Finding
from monitoring.models import JobRun, Severity, SubjectType, Tally
from monitoring.posture import capabilities_beyond_baseline, posture_problems
from monitoring.schedule import scheduled_task_names

FAILED_OUTCOMES = (Outcome.FAILURE.value, Outcome.ERROR.value)
# Events the platform records by itself; they do not prove that requests are being audited.
SELF_RECORDED_PREFIXES = ("system.", "monitoring.")
# The context keys read here, as audit/schema.py declares them for these actions.
JOB_TASK = declared_key("task", Action.SCHEDULED_JOB_FAILED)
JOB_ERROR = declared_key("error", Action.SCHEDULED_JOB_FAILED)
FIRST_BAD_SEQUENCE = declared_key("first_bad_sequence", Action.AUDIT_VERIFIED, Action.AUDIT_HEAD_PUBLISHED)
FORGED_COUNT = declared_key("count", Action.AUDIT_FORGED_ROW_SKIPPED)
FORGED_SEQUENCES = declared_key("sequences", Action.AUDIT_FORGED_ROW_SKIPPED)
JUMP_HEAD = declared_key("chain_head", Action.AUDIT_SEQUENCE_JUMPED)
JUMP_PUBLISHED = declared_key("published_sequence", Action.AUDIT_SEQUENCE_JUMPED)
PROCESS_ROLE = declared_key("role", Action.PROCESS_STARTED)
PROCESS_HOST = declared_key("host", Action.PROCESS_STARTED)
PROCESS_UID = declared_key("uid", Action.PROCESS_STARTED)
PROCESS_ROOT_FS_WRITABLE = declared_key("root_fs_writable", Action.PROCESS_STARTED)
PROCESS_CAP_EFFECTIVE = declared_key("cap_effective", Action.PROCESS_STARTED)


class AuditSilenceDetector(Detector):
    """No request-driven audit event for ``MONITORING_AUDIT_SILENCE_SECONDS`` while at least
    ``MONITORING_AUDIT_SILENCE_MIN_REQUESTS`` requests were served: auditing has stopped."""

    name = "audit_silence"
    title = "Audit events stopped while requests are served"
    severity = Severity.CRITICAL

    def sweep(self, *, now: datetime.datetime) -> list[Finding]:
        silence = conf.seconds("MONITORING_AUDIT_SILENCE_SECONDS")
        since = now - silence
        minute = since.replace(second=0, microsecond=0)
        requests = (
            Tally.objects.filter(name__startswith="http.", minute__gte=minute, minute__lte=now).aggregate(
                total=Sum("count")
            )["total"]
            or 0
        )
        if requests < conf.get("MONITORING_AUDIT_SILENCE_MIN_REQUESTS"):
            return []
        recent = AuditEvent.objects.filter(timestamp__lte=now)
        for prefix in SELF_RECORDED_PREFIXES:
            recent = recent.exclude(action__startswith=prefix)
        last = recent.order_by("-timestamp").values("id", "timestamp").first()
        if last is not None and last["timestamp"] > since:
            return []
        silent_since = last["timestamp"] if last is not None else since
        return [
            Finding(
                detector=self.name,
                severity=self.severity,
                subject_type=SubjectType.SYSTEM,
                subject="audit",
                summary=(
                    f"no request-driven audit event since {silent_since:%Y-%m-%d %H:%M:%S} UTC "
                    f"while {requests} requests were served in the last {int(silence.total_seconds())} s"
                ),
                dedupe_key=self.name,
                counts={"requests": requests, "silent_seconds": int((now - silent_since).total_seconds())},
                first_seen=silent_since,
                last_seen=silent_since,
                triggered_at=silent_since + silence,
                event_ids=[last["id"]] if last is not None else [],
                last_event_id=None,
            )
        ]


class JobLateDetector(Detector):
    """A scheduled job (a task of ``monitoring/schedule.py``, as scheduled in django-celery-beat now)
    that has not started ``MONITORING_JOB_LATE_GRACE_SECONDS`` after it was due.

    "Started" means a ``JobRun`` exists, i.e. a worker ran it, not merely that beat sent it.
    A job that never ran is measured from the first job run of any scheduled job (the moment
    the scheduler demonstrably worked), so a job nobody registered is reported too.
    """

    name = "job_late"
    title = "Scheduled job late"
    severity = Severity.HIGH
    in_detection_sweep = False  # run by the job-health check

    def sweep(self, *, now: datetime.datetime) -> list[Finding]:
        from django_celery_beat.models import PeriodicTask

        grace = conf.seconds("MONITORING_JOB_LATE_GRACE_SECONDS")
        names = scheduled_task_names()
        last_starts = dict(
            JobRun.objects.filter(task_name__in=names)
            .values("task_name")
            .annotate(last=Max("started_at"))
            .values_list("task_name", "last")
        )
        first_ever = (
            JobRun.objects.filter(task_name__in=names)
            .order_by("started_at")
            .values_list("started_at", flat=True)
            .first()
        )
        findings = []
        tasks = PeriodicTask.objects.filter(enabled=True, one_off=False, task__in=names, clocked__isnull=True)
        for task in tasks.select_related("interval", "crontab", "solar"):
            reference = last_starts.get(task.task) or first_ever
            if reference is None:
                continue
            if task.start_time and task.start_time > reference:
                reference = task.start_time
            try:
                due_at = now + task.schedule.remaining_estimate(reference)
            except Exception:  # noqa: S112 - an unreadable schedule is not a late job
                continue
            overdue = now - due_at
            if overdue <= grace:
                continue
            findings.append(
                Finding(
                    detector=self.name,
                    severity=self.severity,
                    subject_type=SubjectType.JOB,
                    subject=task.task,
                    summary=(
                        f"scheduled job '{task.name}' ({task.task}) was due at {due_at:%Y-%m-%d %H:%M:%S} UTC "
                        f"and has not started ({int(overdue.total_seconds())} s late)"
                    ),
                    dedupe_key=f"{self.name}:{task.task}",
                    counts={
                        "due_at": due_at.isoformat(),
                        "last_started_at": last_starts[task.task].isoformat() if task.task in last_starts else None,
                        "overdue_seconds": int(overdue.total_seconds()),
                    },
                    first_seen=due_at,
                    last_seen=due_at,
                    triggered_at=due_at + grace,
                )
            )
        return findings


class JobFailedDetector(EventDetector):
    """A scheduled job run failed (recorded by the job-run hooks as ``system.scheduled_job_failed``)."""

    name = "job_failed"
    title = "Scheduled job failed"
    severity = Severity.HIGH
    actions = frozenset({Action.SCHEDULED_JOB_FAILED.value})

    def judge(self, event: AuditEvent):
        context = event.context if isinstance(event.context, dict) else {}
        task = str(context.get(JOB_TASK) or event.target_repr or "unknown job")
        error = context.get(JOB_ERROR) or "an error"
        return (
            self.severity,
            SubjectType.JOB,
            task,
            f"scheduled job {task} failed with {error}",
            f"{self.name}:{task}",
        )


class AuditChainFailureDetector(EventDetector):
    """The audit chain failed verification (full check or the scheduled head publication), or the
    sealer met tampering on its way: a forged row holding the next number, or a head behind what was
    published (the newest events removed)."""

    name = "audit_chain_failure"
    title = "Audit chain verification failed"
    severity = Severity.CRITICAL
    actions = frozenset(
        {
            Action.AUDIT_VERIFIED.value,
            Action.AUDIT_HEAD_PUBLISHED.value,
            Action.AUDIT_FORGED_ROW_SKIPPED.value,
            Action.AUDIT_SEQUENCE_JUMPED.value,
        }
    )

    def judge(self, event: AuditEvent):
        if event.outcome not in FAILED_OUTCOMES:
            return None
        context = event.context if isinstance(event.context, dict) else {}
        if event.action == Action.AUDIT_FORGED_ROW_SKIPPED:
            sequences = context.get(FORGED_SEQUENCES) or []
            return (
                self.severity,
                SubjectType.SYSTEM,
                "audit chain",
                f"audit sealer skipped {context.get(FORGED_COUNT, len(sequences))} number(s) held by forged rows "
                f"(first #{sequences[0] if sequences else '?'})",
                self.name,
            )
        if event.action == Action.AUDIT_SEQUENCE_JUMPED:
            return (
                self.severity,
                SubjectType.SYSTEM,
                "audit chain",
                f"audit chain head #{context.get(JUMP_HEAD)} is behind #{context.get(JUMP_PUBLISHED)} published "
                "outside the database (newest events removed)",
                self.name,
            )
        context = event.context if isinstance(event.context, dict) else {}
        first_bad = context.get(FIRST_BAD_SEQUENCE)
        detail = f" at sequence {first_bad}" if first_bad is not None else ""
        return (
            self.severity,
            SubjectType.SYSTEM,
            "audit chain",
            f"audit chain verification failed{detail} ({event.get_action_display().lower()})",
            self.name,
        )


class BackupFailureDetector(EventDetector):
    """A backup failed, or a backup failed its verification."""

    name = "backup_failure"
    title = "Backup or backup verification failed"
    severity = Severity.HIGH
    actions = frozenset({Action.BACKUP_VERIFIED.value, Action.BACKUP_FAILED.value})

    def judge(self, event: AuditEvent):
        if event.action == Action.BACKUP_VERIFIED and event.outcome not in FAILED_OUTCOMES:
            return None
        what = "backup verification failed" if event.action == Action.BACKUP_VERIFIED else "backup failed"
        target = f" ({event.target_repr})" if event.target_repr else ""
        return self.severity, SubjectType.SYSTEM, "backup", f"{what}{target}", self.name


class KeyRotationFailureDetector(EventDetector):
    """An encryption key rotation failed: some rows may still be under the old key."""

    name = "key_rotation_failure"
    title = "Encryption key rotation failed"
    severity = Severity.HIGH
    actions = frozenset({Action.KEY_ROTATION_FAILED.value})

    def judge(self, event: AuditEvent):
        return self.severity, SubjectType.SYSTEM, "encryption keys", "encryption key rotation failed", self.name


class ProcessPostureDetector(EventDetector):
    """A process started with more privilege than it needs: as root, on a writable root filesystem,
    or with effective capabilities beyond ``MONITORING_POSTURE_CAPABILITY_BASELINE``.

    One alert per host and role (``process_posture:<host>:<role>``) names every problem found;
    later starts of that role on that host fold into it while it is open, within
    ``MONITORING_POSTURE_DEDUPE_WINDOW_SECONDS``. The checks that apply are
    ``MONITORING_POSTURE_CHECKS``; the severity is ``MONITORING_POSTURE_SEVERITY`` (high; low on the
    embedded default, where a developer's processes usually run as themselves or as root on a
    writable disk). A value the process could not read is not a problem by itself.
    """

    name = "process_posture"
    title = "Process runs with more privilege than it needs"
    severity = Severity.HIGH
    actions = frozenset({Action.PROCESS_STARTED.value})

    @staticmethod
    def _context(event: AuditEvent) -> dict:
        return event.context if isinstance(event.context, dict) else {}

    @staticmethod
    def _problems(context: dict) -> dict[str, str]:
        return posture_problems(
            uid=context.get(PROCESS_UID),
            root_fs_writable=context.get(PROCESS_ROOT_FS_WRITABLE),
            cap_effective=context.get(PROCESS_CAP_EFFECTIVE),
        )

    def judge(self, event: AuditEvent):
        context = self._context(event)
        problems = self._problems(context)
        if not problems:
            return None
        role = str(context.get(PROCESS_ROLE) or "unknown")
        host = str(context.get(PROCESS_HOST) or "unknown")
        severity = Severity[str(conf.get("MONITORING_POSTURE_SEVERITY")).upper()]
        return (
            severity,
            SubjectType.SYSTEM,
            f"{role} on {host}",
            f"the {role} process on {host} " + "; ".join(problems.values()),
            f"{self.name}:{host}:{role}",
        )

    def on_event(self, event: AuditEvent) -> list[Finding]:
        findings = super().on_event(event)
        context = self._context(event)
        for finding in findings:
            finding.counts["problems"] = list(self._problems(context))
            finding.counts["extra_capabilities"] = capabilities_beyond_baseline(context.get(PROCESS_CAP_EFFECTIVE))
            finding.dedupe_window = conf.seconds("MONITORING_POSTURE_DEDUPE_WINDOW_SECONDS")
        return findings
