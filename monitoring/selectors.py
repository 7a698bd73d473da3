"""Reads of the monitoring app: alert lists, the severity chart, metrics, report figures, success metrics.

Everything about other apps is read here, read-only: the audit record (``audit.models``,
``audit.selectors``), the user model, django-otp's devices, Django's session table and admin
log, and django-celery-beat's schedule. Counting happens in the database (aggregates on
indexed columns); nothing loops over events in Python.
"""

from __future__ import annotations

import datetime
from collections import defaultdict

from django.db.models import Avg, Count, Max, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.selectors import mfa_adoption_counts, tracked_session_active_count
from audit.actions import Action, Outcome
from audit.models import AuditEvent
from audit.selectors import failed_logins_by_account, failed_logins_by_ip
from monitoring.models import (
    ACTIVE_STATUSES,
    Alert,
    Heartbeat,
    JobOutcome,
    JobRun,
    Notification,
    NotificationStatus,
    Severity,
    Tally,
)
from monitoring.schedule import scheduled_task_names

# The seed's success metrics and their targets (seed "Success Metrics").
TARGET_AUDIT_COVERAGE = 100.0  # percent of security-relevant events logged
TARGET_MFA_ADOPTION = 80.0  # percent of users with MFA
TARGET_MTTD_SECONDS = 300.0  # mean time to detection under 5 minutes
TARGET_AUTH_COMPLETION = 95.0  # percent of logins started that complete


# --- alerts ------------------------------------------------------------------------------------
def open_alert_counts() -> dict[str, int]:
    """Open or acknowledged alerts per severity name (every severity present, zeros included)."""
    counts = {severity.label: 0 for severity in Severity}
    rows = Alert.objects.filter(status__in=ACTIVE_STATUSES).values("severity").annotate(n=Count("id")).order_by()
    for row in rows:
        counts[Severity(row["severity"]).label] = row["n"]
    return counts


def alerts_by_severity_per_day(*, days: int, now: datetime.datetime | None = None) -> list[dict]:
    """For each of the last ``days`` days (UTC, oldest first): the alerts raised per severity."""
    now = now or timezone.now()
    first_day = (now - datetime.timedelta(days=days - 1)).date()
    start = datetime.datetime.combine(first_day, datetime.time.min, tzinfo=datetime.UTC)
    rows = (
        Alert.objects.filter(created_at__gte=start)
        .annotate(day=TruncDate("created_at"))
        .values("day", "severity")
        .annotate(n=Count("id"))
        .order_by()
    )
    per_day: dict[datetime.date, dict[str, int]] = defaultdict(dict)
    for row in rows:
        per_day[row["day"]][Severity(row["severity"]).label] = row["n"]
    result = []
    for offset in range(days):
        day = first_day + datetime.timedelta(days=offset)
        counts = {severity.label: per_day.get(day, {}).get(severity.label, 0) for severity in Severity}
        result.append({"day": day, "counts": counts, "total": sum(counts.values())})
    return result


# --- jobs, heartbeat, beat ---------------------------------------------------------------------
def job_status_list() -> list[dict]:
    """Per scheduled task: last start, last success, last outcome (from ``JobRun``)."""
    names = sorted(scheduled_task_names())
    last = {
        row["task_name"]: row
        for row in JobRun.objects.filter(task_name__in=names)
        .values("task_name")
        .annotate(last_started=Max("started_at"))
        .order_by()
    }
    last_success = dict(
        JobRun.objects.filter(task_name__in=names, outcome=JobOutcome.SUCCESS)
        .values("task_name")
        .annotate(last=Max("finished_at"))
        .values_list("task_name", "last")
        .order_by()
    )
    outcomes = {}
    for name, row in last.items():
        outcomes[name] = (
            JobRun.objects.filter(task_name=name, started_at=row["last_started"])
            .values_list("outcome", flat=True)
            .first()
        )
    return [
        {
            "task": name,
            "last_started": last.get(name, {}).get("last_started"),
            "last_success": last_success.get(name),
            "last_outcome": outcomes.get(name),
        }
        for name in names
    ]


def heartbeat_get(name: str = "worker") -> Heartbeat | None:
    return Heartbeat.objects.filter(name=name).first()


def beat_last_run_at() -> datetime.datetime | None:
    """The newest ``last_run_at`` of any enabled periodic task: when beat last sent a job."""
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask.objects.filter(enabled=True).aggregate(last=Max("last_run_at"))["last"]


# --- counts over a period ----------------------------------------------------------------------
def _events(start, end):
    return AuditEvent.objects.filter(timestamp__gte=start, timestamp__lt=end)


def _count(start, end, *actions, **filters) -> int:
    return _events(start, end).filter(action__in=[Action(action).value for action in actions], **filters).count()


def tally_sum(*, start, end, prefix: str) -> int:
    return (
        Tally.objects.filter(name__startswith=prefix, minute__gte=start, minute__lt=end).aggregate(total=Sum("count"))[
            "total"
        ]
        or 0
    )


def _percent(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _last_event(*actions, before: datetime.datetime) -> dict | None:
    row = (
        AuditEvent.objects.filter(action__in=[Action(action).value for action in actions], timestamp__lt=before)
        .order_by("-timestamp", "-id")
        .values("id", "action", "outcome", "timestamp")
        .first()
    )
    if row is None:
        return None
    return {
        "event_id": row["id"],
        "action": row["action"],
        "outcome": row["outcome"],
        "at": row["timestamp"].isoformat(),
    }


def _status(last: dict | None) -> str:
    if last is None:
        return "unknown"
    return "ok" if last["outcome"] == Outcome.SUCCESS else "failed"


def authentication_figures(*, start, end) -> dict:
    failed = _count(start, end, Action.LOGIN_FAILED)
    succeeded = _count(start, end, Action.LOGIN_SUCCEEDED)
    started = failed + succeeded
    return {
        "failed_logins": failed,
        "mfa_failures": _count(start, end, Action.MFA_VERIFY_FAILED),
        "lockouts": _count(start, end, Action.ACCOUNT_LOCKED),
        "accounts_locked": _events(start, end)
        .filter(action=Action.ACCOUNT_LOCKED.value)
        .exclude(subject_username="")
        .values("subject_username")
        .distinct()
        .count(),
        "logins_succeeded": succeeded,
        # Every password submission starts a login; a login completes when it succeeds.
        "logins_started": started,
        "auth_completion_rate": _percent(succeeded, started),
        "top_failed_accounts": [
            {"account": row["subject_username"], "failures": row["failures"], "ips": row["ips"]}
            for row in failed_logins_by_account(since=start, until=end)[:5]
        ],
        "top_failed_ips": [
            {"ip": row["client_ip"], "failures": row["failures"], "accounts": row["accounts"]}
            for row in failed_logins_by_ip(since=start, until=end)[:5]
        ],
    }


def alert_figures(*, start, end) -> dict:
    alerts = Alert.objects.filter(created_at__gte=start, created_at__lt=end)
    by_severity = {}
    rows = {
        row["severity"]: row
        for row in alerts.values("severity")
        .annotate(n=Count("id"), mean=Avg("detection_seconds"), worst=Max("detection_seconds"))
        .order_by()
    }
    for severity in sorted(Severity, reverse=True):
        row = rows.get(severity.value)
        by_severity[severity.label] = {
            "count": row["n"] if row else 0,
            "mean_detection_seconds": round(row["mean"], 3) if row else None,
            "max_detection_seconds": round(row["worst"], 3) if row else None,
        }
    overall = alerts.aggregate(n=Count("id"), mean=Avg("detection_seconds"))
    return {
        "raised": overall["n"],
        "mean_detection_seconds": round(overall["mean"], 3) if overall["mean"] is not None else None,
        "by_severity": by_severity,
        "by_detector": dict(alerts.values_list("detector").annotate(n=Count("id")).order_by("detector")),
        "open_now": open_alert_counts(),
    }


def mfa_figures() -> dict:
    """MFA adoption among active users and active staff (the accounts app counts it)."""
    figures = mfa_adoption_counts()
    return {
        "users": figures["users"],
        "users_with_mfa": figures["users_with_mfa"],
        "adoption_rate": _percent(figures["users_with_mfa"], figures["users"]),
        "staff": figures["staff"],
        "staff_with_mfa": figures["staff_with_mfa"],
        "staff_adoption_rate": _percent(figures["staff_with_mfa"], figures["staff"]),
        "note": "",
    }


def session_figures(*, now) -> dict:
    """Active sessions: the accounts app's tracked sessions not yet ended."""
    return {"active": tracked_session_active_count(), "note": ""}


def api_figures(*, start, end) -> dict:
    used = _events(start, end).filter(action=Action.API_KEY_USED.value)
    deprecated = _events(start, end).filter(action=Action.DEPRECATED_ENDPOINT_CALLED.value)
    return {
        "requests": used.count(),
        "keys_used": used.exclude(api_key_id__isnull=True).values("api_key_id").distinct().count(),
        "refused": _count(start, end, Action.API_KEY_REFUSED),
        "rate_limited": _count(start, end, Action.RATE_LIMITED),
        "signature_failures": _count(start, end, Action.REQUEST_SIGNATURE_FAILED),
        "deprecated_calls": deprecated.count(),
        "deprecated_callers": deprecated.values("api_key_id", "actor_id", "client_ip").distinct().count(),
        "http_requests": tally_sum(start=start, end=end, prefix="http."),
    }


def audit_figures(*, start, end) -> dict:
    verification = _last_event(Action.AUDIT_VERIFIED, before=end)
    published = _last_event(Action.AUDIT_HEAD_PUBLISHED, before=end)
    checks = [item for item in (verification, published) if item is not None]
    latest = max(checks, key=lambda item: item["at"]) if checks else None
    return {
        "events": _events(start, end).count(),
        "unsealed": AuditEvent.objects.unsealed().count(),
        "last_verification": verification,
        "last_head_published": published,
        "status": _status(latest),
    }


def encryption_figures(*, start, end) -> dict:
    rotation = _last_event(Action.KEY_ROTATION_FINISHED, Action.KEY_ROTATION_FAILED, before=end)
    return {
        "last_rotation": rotation,
        "rotation_failures": _count(start, end, Action.KEY_ROTATION_FAILED),
        "decryption_failures": _count(start, end, Action.DECRYPTION_FAILED),
        "status": _status(rotation) if rotation else "no rotation recorded",
    }


def backup_figures(*, start, end) -> dict:
    backup = _last_event(Action.BACKUP_CREATED, Action.BACKUP_FAILED, before=end)
    verification = _last_event(Action.BACKUP_VERIFIED, before=end)
    return {
        "last_backup": backup,
        "last_verification": verification,
        "failures": _count(start, end, Action.BACKUP_FAILED)
        + _count(start, end, Action.BACKUP_VERIFIED, outcome__in=[Outcome.FAILURE.value, Outcome.ERROR.value]),
        "status": _status(verification),
    }


def job_figures(*, start, end) -> dict:
    runs = JobRun.objects.filter(started_at__gte=start, started_at__lt=end)
    failed = runs.filter(outcome=JobOutcome.FAILURE)
    return {
        "runs": runs.count(),
        "failed": failed.count(),
        "failed_tasks": sorted(set(failed.values_list("task_name", flat=True))),
    }


# --- the seed's success metrics ----------------------------------------------------------------
def audit_coverage(*, start, end) -> dict:
    """Share of security events seen independently that the audit record also holds.

    Observed independently of the recording apps: logins and failed logins as Django's auth
    signals saw them (``Tally``), and admin changes as Django's admin log holds them. For each
    kind, events covered = min(audited, observed); coverage = covered / observed.
    """
    from django.contrib.admin.models import LogEntry

    pairs = {
        "logins_succeeded": (
            tally_sum(start=start, end=end, prefix="auth.login_succeeded"),
            _count(start, end, Action.LOGIN_SUCCEEDED),
        ),
        "logins_failed": (
            tally_sum(start=start, end=end, prefix="auth.login_failed"),
            _count(start, end, Action.LOGIN_FAILED),
        ),
        "admin_changes": (
            LogEntry.objects.filter(action_time__gte=start, action_time__lt=end).count(),
            _count(start, end, Action.ADMIN_ADDED, Action.ADMIN_CHANGED, Action.ADMIN_DELETED),
        ),
    }
    observed = sum(seen for seen, _audited in pairs.values())
    covered = sum(min(seen, audited) for seen, audited in pairs.values())
    return {
        "value": _percent(covered, observed),
        "observed": observed,
        "audited": covered,
        "by_kind": {kind: {"observed": seen, "audited": audited} for kind, (seen, audited) in pairs.items()},
    }


def _metric(value, target, *, lower_is_better: bool = False, **extra) -> dict:
    met = None if value is None else (value <= target if lower_is_better else value >= target)
    return {"value": value, "target": target, "met": met, **extra}


def success_metrics(*, start, end, mfa: dict | None = None, alerts: dict | None = None, auth: dict | None = None):
    """The seed's success metrics for the period, each with its target and whether it is met."""
    mfa = mfa or mfa_figures()
    alerts = alerts or alert_figures(start=start, end=end)
    auth = auth or authentication_figures(start=start, end=end)
    coverage = audit_coverage(start=start, end=end)
    return {
        "audit_coverage_percent": _metric(
            coverage["value"], TARGET_AUDIT_COVERAGE, observed=coverage["observed"], audited=coverage["audited"]
        ),
        "mfa_adoption_percent": _metric(mfa["adoption_rate"], TARGET_MFA_ADOPTION),
        "mean_time_to_detection_seconds": _metric(
            alerts["mean_detection_seconds"], TARGET_MTTD_SECONDS, lower_is_better=True
        ),
        "auth_completion_percent": _metric(auth["auth_completion_rate"], TARGET_AUTH_COMPLETION),
    }


def report_figures(*, start: datetime.datetime, end: datetime.datetime, now: datetime.datetime) -> dict:
    """Every figure of a security report for [start, end), as JSON-ready values."""
    auth = authentication_figures(start=start, end=end)
    alerts = alert_figures(start=start, end=end)
    mfa = mfa_figures()
    return {
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "generated_at": now.isoformat(),
        "authentication": auth,
        "alerts": alerts,
        "mfa": mfa,
        "sessions": session_figures(now=now),
        "api": api_figures(start=start, end=end),
        "audit": audit_figures(start=start, end=end),
        "encryption": encryption_figures(start=start, end=end),
        "backups": backup_figures(start=start, end=end),
        "jobs": job_figures(start=start, end=end),
        "success_metrics": success_metrics(start=start, end=end, mfa=mfa, alerts=alerts, auth=auth),
    }


# --- metrics endpoint ---------------------------------------------------------------------------
def pending_notification_count() -> int:
    return Notification.objects.exclude(status=NotificationStatus.SENT).count()


def last_audit_event_at() -> datetime.datetime | None:
    return AuditEvent.objects.order_by("-timestamp").values_list("timestamp", flat=True).first()


def request_totals() -> dict[str, int]:
    """Served requests per status class, summed over the kept tallies."""
    return {
        name.removeprefix("http."): total
        for name, total in Tally.objects.filter(name__startswith="http.")
        .values("name")
        .annotate(total=Sum("count"))
        .values_list("name", "total")
        .order_by()
    }


def failed_login_counts(*, now: datetime.datetime) -> dict[str, int]:
    """Failed logins (password and MFA) over the last 5 minutes, hour and day."""
    failures = AuditEvent.objects.filter(action__in=[Action.LOGIN_FAILED.value, Action.MFA_VERIFY_FAILED.value])
    return {
        label: failures.filter(timestamp__gte=now - delta).count()
        for label, delta in (
            ("5m", datetime.timedelta(minutes=5)),
            ("1h", datetime.timedelta(hours=1)),
            ("24h", datetime.timedelta(days=1)),
        )
    }


DEPLOYMENT_ACTIONS = {Action.DEPLOYED.value: "deploy", Action.ROLLED_BACK.value: "rollback"}


def deployment_list(*, limit: int, now: datetime.datetime | None = None) -> list[dict]:
    """The newest ``limit`` deploys and rollbacks (``system.deployed``, ``system.rolled_back``), newest first.

    One query on the ``(action, timestamp)`` index, whatever the size of the audit table. Each row:
    id, kind (deploy or rollback), timestamp, the two revisions, environment and tool.
    """
    events = AuditEvent.objects.filter(action__in=list(DEPLOYMENT_ACTIONS))
    if now is not None:
        events = events.filter(timestamp__lte=now)
    rows = events.order_by("-timestamp", "-id").values("id", "action", "timestamp", "context")[:limit]
    deployments = []
    for row in rows:
        context = row["context"] or {}
        deployments.append(
            {
                "id": row["id"],
                "kind": DEPLOYMENT_ACTIONS[row["action"]],
                "timestamp": row["timestamp"],
                **{key: str(context.get(key, "")) for key in ("from_revision", "to_revision", "environment", "tool")},
            }
        )
    return deployments
