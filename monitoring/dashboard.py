"""The security dashboard: the console's home page (``/admin/``).

Everything is read through selectors, and nothing counts the audit table per view: per-day counts
and the 24-hour top lists come from the rollup (``monitoring.services.rollup``, every 5 minutes);
the other audit reads fetch the newest event of one rare action on the ``(action, timestamp)``
index. The query count does not depend on how many events there are (a test pins it).

Data of rooms that ``monitoring`` may not import (API keys, key rings: docs/architecture.md) is
passed in by the top floor: ``config/urls.py`` mounts ``dashboard_view`` with ``sections``, a
mapping of section name to a function of ``now`` (``config/dashboard.py``). A section that is
not wired shows "not wired here" instead of failing.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Mapping

from django.contrib import admin
from django.db.models import Avg, Count, Max
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from accounts.selectors import locked_account_list, may_unlock_accounts, mfa_adoption_counts, user_ids_by_username
from audit.actions import Action, Outcome
from audit.heads import last_published_head
from audit.models import AuditEvent
from monitoring import conf
from monitoring.charts import daily_count_chart
from monitoring.detectors.system import JobLateDetector
from monitoring.models import ACTIVE_STATUSES, Alert, DailySecurityCount, SecuritySnapshot, Severity
from monitoring.security_gate import security_gate_result
from monitoring.selectors import deployment_list, job_status_list, open_alert_counts
from monitoring.services.rollup import FAILED_LOGINS_SNAPSHOT, OBSERVED_ADMIN_LOG
from monitoring.subjects import user_security_link

DAYS = 14  # the period of the charts and of the success metrics (days)
NEWEST_ALERTS = 5  # open alerts listed under the counts
LOCKED_ACCOUNTS_SHOWN = 20
# The seed's success metrics (seed "Success Metrics"), each compared the way the seed states it.
TARGETS = {
    "audit_coverage": (100.0, "=="),
    "mfa_adoption": (80.0, ">"),
    "mfa_adoption_staff": (80.0, ">"),
    "mttd_mean": (300.0, "<"),
    "mttd_p95": (300.0, "<"),
    "auth_completion": (95.0, ">"),
    "monitoring_uptime": (100.0, "=="),
    "high_findings": (0, "=="),
}
CHART_SERIES = (
    ("failed_logins", "Failed logins", Action.LOGIN_FAILED, "solid"),
    ("lockouts", "Lockouts", Action.ACCOUNT_LOCKED, "hatch"),
    ("mfa_failures", "MFA failures", Action.MFA_VERIFY_FAILED, "dots"),
)
ADMIN_ACTIONS = (Action.ADMIN_ADDED, Action.ADMIN_CHANGED, Action.ADMIN_DELETED)

Section = Callable[[datetime.datetime], object]
# Each section is shown only to whoever may see what it shows (its source's view permission), so
# staff in no security role see an empty console (docs/PERMISSIONS.md); both roles see every part.
SECTION_PERMISSIONS = {
    "metrics": "monitoring.view_report",  # the daily report's own figures
    "alerts": "monitoring.view_alert",
    "locked": "accounts.view_failurecounter",
    "charts": "audit.view_auditevent",
    "top": "audit.view_auditevent",
    "api-keys": "api.view_apikey",
    "audit-chain": "audit.view_auditevent",
    "backup": "audit.view_auditevent",
    "key-rings": "encryption.view_key_usage",
    "security-gate": "monitoring.view_report",
    "deployments": "audit.view_auditevent",
    "jobs": "monitoring.view_jobrun",
}


def _percent(part: float, whole: float) -> float | None:
    return round(100.0 * part / whole, 2) if whole else None


def _metric(label: str, key: str, value, *, unit: str = "%", how: str = "", detail: str = "") -> dict:
    target, comparison = TARGETS[key]
    if value is None:
        met = None
    elif comparison == "==":
        met = value == target
    elif comparison == ">":
        met = value > target
    else:
        met = value < target
    return {
        "label": label,
        "value": value,
        "unit": unit,
        "target": target,
        "comparison": comparison,
        "met": met,
        "how": how,
        "detail": detail,
    }


def age_text(delta: datetime.timedelta | None) -> str:
    """A duration as people read it: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 days 4 h``."""
    if delta is None:
        return ""
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        return f"{hours} h {minutes % 60} min"
    return f"{days} day{'s' if days != 1 else ''} {hours % 24} h"


def _link(name: str, *args) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


# --- reads ------------------------------------------------------------------------------------
def _daily_counts(*, today: datetime.date) -> tuple[dict[tuple[datetime.date, str], int], datetime.datetime | None]:
    first = today - datetime.timedelta(days=DAYS - 1)
    rows = DailySecurityCount.objects.filter(day__gte=first, day__lte=today).values_list("day", "name", "count")
    counts = {(day, name): count for day, name, count in rows}
    computed = DailySecurityCount.objects.filter(day=today).aggregate(at=Max("computed_at"))["at"]
    return counts, computed


def _period_sum(counts, name: str) -> int:
    return sum(count for (_day, counted), count in counts.items() if counted == name)


def _detection_times(*, since: datetime.datetime) -> dict:
    """Mean and 95th percentile (nearest rank) of alert detection times in the period."""
    alerts = Alert.objects.filter(created_at__gte=since)
    figures = alerts.aggregate(count=Count("id"), mean=Avg("detection_seconds"))
    count = figures["count"]
    if not count:
        return {"count": 0, "mean": None, "p95": None}
    rank = max(math.ceil(0.95 * count), 1)
    p95 = alerts.order_by("detection_seconds").values_list("detection_seconds", flat=True)[rank - 1]
    return {"count": count, "mean": round(figures["mean"], 2), "p95": round(p95, 2)}


def _last_event(*actions: Action, now: datetime.datetime) -> dict | None:
    """The newest event of these (rare) actions: one row through the (action, timestamp) index."""
    row = (
        AuditEvent.objects.filter(action__in=[action.value for action in actions], timestamp__lte=now)
        .order_by("-timestamp")
        .values("id", "action", "outcome", "timestamp", "context")
        .first()
    )
    if row is None:
        return None
    return {
        **row,
        "ok": row["outcome"] == Outcome.SUCCESS,
        "age_text": age_text(now - row["timestamp"]),
        "link": _link("admin:audit_auditevent_change", row["id"]),
    }


def _jobs(*, now: datetime.datetime) -> tuple[list[dict], int, int]:
    late = {finding.subject: finding for finding in JobLateDetector().sweep(now=now)}
    jobs = []
    for job in job_status_list():
        finding = late.get(job["task"])
        jobs.append(
            {
                **job,
                "late": finding is not None,
                "overdue_seconds": finding.counts.get("overdue_seconds") if finding else None,
            }
        )
    on_time = sum(1 for job in jobs if not job["late"])
    return jobs, on_time, len(jobs)


def _alerts() -> dict:
    counts = open_alert_counts()
    newest = list(
        Alert.objects.filter(status__in=ACTIVE_STATUSES)
        .order_by("-severity", "-created_at", "-id")
        .only("id", "severity", "detector", "subject", "summary", "created_at", "status")[:NEWEST_ALERTS]
    )
    return {
        "by_severity": [
            {"name": severity.label, "count": counts[severity.label]} for severity in sorted(Severity, reverse=True)
        ],
        "total": sum(counts.values()),
        "newest": [
            {
                "alert": alert,
                "severity": alert.get_severity_display(),
                "link": _link("admin:monitoring_alert_change", alert.pk),
            }
            for alert in newest
        ],
        "list_link": _link("admin:monitoring_alert_changelist"),
    }


def _audit_chain(*, now: datetime.datetime, jobs: list[dict]) -> dict:
    head = last_published_head()
    published_at = None
    if head is not None and head.published_at:
        try:
            published_at = datetime.datetime.fromisoformat(head.published_at)
        except ValueError:
            published_at = None
    return {
        "verification": _last_event(Action.AUDIT_VERIFIED, now=now),
        "head": head,
        "head_age_text": age_text(now - published_at) if published_at else "",
        "publish_job": next((job for job in jobs if job["task"] == "audit.tasks.audit_publish_head"), None),
    }


def _gate_metric(gate: dict) -> dict:
    """The seed's "0 open high-severity findings" from the gate's last result file."""
    label = "Open high-severity findings of the security gate"
    if gate["state"] == "missing":
        return _metric(
            label,
            "high_findings",
            None,
            unit="",
            how="no result of the security gate here: scripts/security-checks.sh writes one on each "
            "full run (MONITORING_SECURITY_GATE_RESULT_FILE)",
        )
    if gate["state"] == "unreadable":
        return _metric(
            label, "high_findings", None, unit="", how=f"the gate's result file cannot be read: {gate['problem']}"
        )
    metric = _metric(
        label,
        "high_findings",
        gate["open_findings"],
        unit="",
        how=f"the gate's last full run, {gate['age_text']} ago, on revision {gate['revision'][:12]}"
        + (" with local changes" if gate["revision_modified"] else ""),
        detail=f"failed checks: {', '.join(gate['failed_checks'])}" if gate["failed_checks"] else "every check passed",
    )
    if gate["failed_checks"]:
        metric["met"] = False  # a check that could not run has no findings, and proves nothing
    if gate["stale"]:
        metric["met"] = None
        metric["how"] = f"stale, older than {gate['stale_days']} days: " + metric["how"]
    return metric


def _deployments(*, now: datetime.datetime) -> list[dict]:
    rows = deployment_list(limit=conf.get("MONITORING_DEPLOYMENTS_SHOWN"), now=now)
    for row in rows:
        row["age_text"] = age_text(now - row["timestamp"])
        row["link"] = _link("admin:audit_auditevent_change", row["id"])
    return rows


def _section(sections: Mapping[str, Section], name: str, now: datetime.datetime) -> dict:
    provider = sections.get(name)
    if provider is None:
        return {"wired": False}
    return {"wired": True, "data": provider(now)}


def dashboard_context(*, now: datetime.datetime, sections: Mapping[str, Section] | None = None) -> dict:
    """Every figure of the dashboard at ``now``."""
    sections = sections or {}
    today = now.astimezone(datetime.UTC).date()
    since = datetime.datetime.combine(today - datetime.timedelta(days=DAYS - 1), datetime.time.min, tzinfo=datetime.UTC)
    counts, rolled_up_at = _daily_counts(today=today)
    days = [today - datetime.timedelta(days=offset) for offset in range(DAYS - 1, -1, -1)]

    # Audit coverage: security events seen outside the audit record that the record also holds.
    kinds = {
        "logins succeeded": ("observed.auth.login_succeeded", [Action.LOGIN_SUCCEEDED]),
        "logins failed": ("observed.auth.login_failed", [Action.LOGIN_FAILED]),
        "admin changes": (OBSERVED_ADMIN_LOG, list(ADMIN_ACTIONS)),
    }
    coverage_rows = []
    for kind, (observed_name, actions) in kinds.items():
        observed = _period_sum(counts, observed_name)
        audited = sum(_period_sum(counts, action.value) for action in actions)
        coverage_rows.append({"kind": kind, "observed": observed, "audited": audited})
    observed_total = sum(row["observed"] for row in coverage_rows)
    covered = sum(min(row["observed"], row["audited"]) for row in coverage_rows)

    mfa = mfa_adoption_counts()
    detection = _detection_times(since=since)
    failed = _period_sum(counts, Action.LOGIN_FAILED.value)
    succeeded = _period_sum(counts, Action.LOGIN_SUCCEEDED.value)
    jobs, on_time, scheduled = _jobs(now=now)
    gate = security_gate_result(now=now)
    if gate["state"] == "present":
        gate["age_text"] = age_text(gate["age"])

    metrics = [
        _metric(
            "Audit coverage",
            "audit_coverage",
            _percent(covered, observed_total),
            how="security events seen outside the audit record (Django's login signals, the admin log) "
            "that the audit record also holds",
            detail=f"{covered} of {observed_total} observed events audited"
            + "".join(f"; {row['kind']}: {row['audited']} audited / {row['observed']} seen" for row in coverage_rows),
        ),
        _metric(
            "MFA adoption, all active users",
            "mfa_adoption",
            _percent(mfa["users_with_mfa"], mfa["users"]),
            detail=f"{mfa['users_with_mfa']} of {mfa['users']} users",
        ),
        _metric(
            "MFA adoption, staff",
            "mfa_adoption_staff",
            _percent(mfa["staff_with_mfa"], mfa["staff"]),
            detail=f"{mfa['staff_with_mfa']} of {mfa['staff']} staff",
        ),
        _metric(
            "Mean time to detection",
            "mttd_mean",
            detection["mean"],
            unit="s",
            how="alert raised minus the time of the event that made the detector fire",
            detail=f"{detection['count']} alert(s) raised",
        ),
        _metric(
            "95th percentile time to detection",
            "mttd_p95",
            detection["p95"],
            unit="s",
            detail=f"{detection['count']} alert(s) raised",
        ),
        _metric(
            "Authentication flow completion",
            "auth_completion",
            _percent(succeeded, failed + succeeded),
            how="logins completed / logins started (every password submission starts one)",
            detail=f"{succeeded} of {failed + succeeded} logins",
        ),
        _metric(
            "Monitoring uptime",
            "monitoring_uptime",
            _percent(on_time, scheduled),
            how="scheduled jobs that started on time (none late by the job-health rule)",
            detail=f"{on_time} of {scheduled} scheduled jobs on time",
        ),
        _gate_metric(gate),
    ]

    charts = []
    for key, title, action, pattern in CHART_SERIES:
        series = [{"day": day, "count": counts.get((day, action.value), 0)} for day in days]
        charts.append(daily_count_chart(key=key, title=title, series=series, pattern=pattern))

    snapshot = SecuritySnapshot.objects.filter(name=FAILED_LOGINS_SNAPSHOT).first()
    top_accounts = [dict(row) for row in snapshot.data.get("accounts", [])] if snapshot else []
    locked = locked_account_list(now=now, limit=LOCKED_ACCOUNTS_SHOWN)
    # Each account named here links to its user's security page (one query for all of them).
    named = [row["username"] for row in locked["accounts"]] + [row.get("account") for row in top_accounts]
    user_ids = user_ids_by_username(named)
    for row in locked["accounts"]:
        row["link"] = user_security_link(user_ids.get(row["username"]))
    for row in top_accounts:
        row["link"] = user_security_link(user_ids.get(row.get("account")))
    return {
        "now": now,
        "days": DAYS,
        "rolled_up_at": rolled_up_at,
        "metrics": metrics,
        "alerts": _alerts(),
        "charts": charts,
        "top": {
            "computed_at": snapshot.computed_at if snapshot else None,
            "ips": snapshot.data.get("ips", []) if snapshot else [],
            "accounts": top_accounts,
        },
        "locked": locked,
        "api_keys": _section(sections, "api_keys", now),
        "key_rings": _section(sections, "key_rings", now),
        "audit_chain": _audit_chain(now=now, jobs=jobs),
        "backup": {
            "last": _last_event(Action.BACKUP_CREATED, Action.BACKUP_FAILED, now=now),
            "verification": _last_event(Action.BACKUP_VERIFIED, now=now),
        },
        "jobs": jobs,
        "security_gate": gate,
        "deployments": _deployments(now=now),
    }


def dashboard_view(request, sections: Mapping[str, Section] | None = None):
    """The console's home page. Mounted behind ``admin.site.admin_view`` (staff who passed MFA)."""
    now = timezone.now()
    may = {name.replace("-", "_"): request.user.has_perm(perm) for name, perm in SECTION_PERMISSIONS.items()}
    context = {
        **admin.site.each_context(request),
        "title": "Security dashboard",
        "may": may,
        "may_see_any": any(may.values()),
        "dashboard": dashboard_context(now=now, sections=sections),
        "apps_link": _link("admin-apps"),
        "unlock_link": _link("admin-account-unlock"),
        # The button only for whoever the unlock view lets through; the auditor sees the locks only.
        "can_unlock": may_unlock_accounts(request.user),
    }
    return TemplateResponse(request, "monitoring/dashboard.html", context)
