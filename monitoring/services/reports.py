"""Scheduled security reports: figures from the selectors, rendered as HTML, plain text and CSV, stored.

A daily report covers the previous UTC day; a weekly one the seven UTC days before today. On an
install younger than that (its audit record begins after the period would start), a report
asked for without an end date covers the last 24 hours (or 7 days) up to now instead, and says
so; when even that reaches back before the record begins, the report says the install is
younger than the period. Every report compares its counts with the period before (previous
value and change), lists the alerts open now, and links into the console with absolute URLs
(``core.emails.absolute_url``: ``ACCOUNTS_SITE_URL``). All three renderings come from the same
rows (``report_rows``), so they cannot disagree.
"""

from __future__ import annotations

import csv
import datetime
import io

from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from audit.models import AuditEvent
from core.emails import absolute_url, email_time
from monitoring.models import ACTIVE_STATUSES, Alert, Report, ReportPeriod
from monitoring.selectors import alert_figures, api_figures, authentication_figures, job_figures, report_figures
from monitoring.subjects import describe_subjects, subject_text
from monitoring.summaries import alert_sentence

PERIOD_DAYS = {ReportPeriod.DAILY: 1, ReportPeriod.WEEKLY: 7}
PERIOD_WORDS = {ReportPeriod.DAILY: ("day", "24 hours"), ReportPeriod.WEEKLY: ("seven days", "7 days")}
OPEN_ALERTS_LISTED = 20  # open alerts named in a report; the total is always given
# The counts compared with the previous period: (label, figures section, key).
COMPARED = (
    ("Failed logins", "authentication", "failed_logins"),
    ("Failed MFA verifications", "authentication", "mfa_failures"),
    ("Lockouts", "authentication", "lockouts"),
    ("Logins completed", "authentication", "logins_succeeded"),
    ("Alerts raised", "alerts", "raised"),
    ("API key requests", "api", "requests"),
    ("Refused keys (401)", "api", "refused"),
    ("Rate limited (429)", "api", "rate_limited"),
    ("Signature failures", "api", "signature_failures"),
    ("Failed job runs", "jobs", "failed"),
)


def period_bounds(*, period: str, until: datetime.date | None = None, now: datetime.datetime | None = None):
    """[start, end) of the report: ``end`` is 00:00 UTC of ``until`` (default: today)."""
    period = ReportPeriod(period)
    day = until or (now or timezone.now()).astimezone(datetime.UTC).date()
    end = datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)
    return end - datetime.timedelta(days=PERIOD_DAYS[period]), end


def record_start() -> datetime.datetime | None:
    """When this install's audit record begins (its oldest kept event), or ``None`` when it is empty."""
    return AuditEvent.objects.order_by("timestamp").values_list("timestamp", flat=True).first()


def report_period(*, period: str, until: datetime.date | None = None, now: datetime.datetime | None = None):
    """``(start, end, note)`` of a report: the calendar period, or for a young install the last
    24 hours / 7 days up to now (only when no end date was asked for), with a sentence saying so."""
    period = ReportPeriod(period)
    now = now or timezone.now()
    start, end = period_bounds(period=period, until=until, now=now)
    begins = record_start()
    full, rolling = PERIOD_WORDS[period]
    if begins is None:
        return start, end, "The audit record of this install is empty: nothing has happened to report yet."
    if begins <= start:
        return start, end, ""
    note = ""
    if until is None:
        start, end = now - datetime.timedelta(days=PERIOD_DAYS[period]), now
        note = (
            f"This install's audit record begins at {email_time(begins)}, after the start of the previous full "
            f"{full}: this report covers the last {rolling} up to now instead."
        )
    if begins > start:
        note = (note + " " if note else "") + (
            f"The install is younger than the period: nothing before {email_time(begins)} exists to count."
        )
    return start, end, note


def _console_link(name: str, *args, query: str = "") -> str:
    try:
        path = reverse(name, args=args)
    except NoReverseMatch:
        return ""
    return absolute_url(path + (f"?{query}" if query else ""))


def open_alert_list(*, limit: int = OPEN_ALERTS_LISTED) -> dict:
    """The alerts open or acknowledged now, most severe and newest first, each in words with its link."""
    active = Alert.objects.filter(status__in=ACTIVE_STATUSES)
    alerts = list(active.select_related("assigned_to").order_by("-severity", "-created_at", "-id")[:limit])
    described = describe_subjects((alert.subject_type, alert.subject) for alert in alerts)
    rows = []
    for alert in alerts:
        subject = subject_text(alert.subject_type, alert.subject, described.get((alert.subject_type, alert.subject)))
        counts = alert.evidence.get("counts") if isinstance(alert.evidence, dict) else None
        rows.append(
            {
                "id": alert.pk,
                "severity": alert.get_severity_display(),
                "status": alert.get_status_display(),
                "sentence": alert_sentence(
                    detector=alert.detector, subject=subject, counts=counts, summary=alert.summary
                ),
                "created_at": alert.created_at.isoformat(),
                "assigned_to": alert.assigned_to.get_username() if alert.assigned_to else "",
                "link": _console_link("admin:monitoring_alert_change", alert.pk),
            }
        )
    return {"total": active.count(), "alerts": rows}


def comparison_figures(*, start: datetime.datetime, end: datetime.datetime) -> dict:
    """The compared counts of [start, end): the period before the report's."""
    sections = {
        "authentication": authentication_figures(start=start, end=end),
        "alerts": alert_figures(start=start, end=end),
        "api": api_figures(start=start, end=end),
        "jobs": job_figures(start=start, end=end),
    }
    return {
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "counts": {f"{section}.{key}": sections[section][key] for _label, section, key in COMPARED},
    }


def _change(now, before) -> str:
    if before is None or now is None:
        return f"{_fmt(now)} (previous period: n/a)"
    difference = now - before
    sign = "+" if difference > 0 else ""
    relative = f", {sign}{difference / before * 100:.0f} %" if before else ""
    return f"{now} (previous period {before}; change {sign}{difference}{relative})"


def _fmt(value, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}{suffix}"
    return f"{value}{suffix}"


def _event(item: dict | None) -> str:
    if not item:
        return "none recorded"
    return f"{item['outcome']} at {email_time(item['at'])} (event {item['event_id']})"


def _met(metric: dict) -> str:
    return {True: "met", False: "NOT met", None: "no data"}[metric["met"]]


def report_rows(figures: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    """The report as sections of (label, value) rows: what the HTML, text and CSV all show."""
    auth, alerts, mfa = figures["authentication"], figures["alerts"], figures["mfa"]
    api, audit_status = figures["api"], figures["audit"]
    encryption, backups = figures["encryption"], figures["backups"]
    jobs, sessions = figures["jobs"], figures["sessions"]
    metrics = figures["success_metrics"]
    coverage = metrics["audit_coverage_percent"]
    links = figures.get("links", {})
    sections = []
    if figures.get("period_note") or links:
        sections.append(
            (
                "About this report",
                ([("Period", figures["period_note"])] if figures.get("period_note") else [])
                + [
                    (label, url, url)
                    for label, url in (
                        ("Security console", links.get("console", "")),
                        ("Open alerts", links.get("open_alerts", "")),
                        ("Audit events", links.get("audit_events", "")),
                        ("Reports", links.get("reports", "")),
                    )
                    if url
                ],
            )
        )
    previous = figures.get("previous")
    if previous:
        sections.append(
            (
                "Compared with the previous period",
                [("Previous period", f"{email_time(previous['period_start'])} to {email_time(previous['period_end'])}")]
                + [
                    (label, _change(figures[section][key], previous["counts"].get(f"{section}.{key}")))
                    for label, section, key in COMPARED
                ],
            )
        )
    open_alerts = figures.get("open_alerts")
    if open_alerts is not None:
        listed = open_alerts["alerts"]
        rows = [("Open or acknowledged now", _fmt(open_alerts["total"]))] + [
            (
                f"#{alert['id']} {alert['severity']}",
                f"{alert['sentence']} ({alert['status'].lower()} since {email_time(alert['created_at'])}"
                + (f", assigned to {alert['assigned_to']}" if alert["assigned_to"] else ", not assigned")
                + ")",
                alert["link"],
            )
            for alert in listed
        ]
        if open_alerts["total"] > len(listed):
            rows.append(("Not listed", f"{open_alerts['total'] - len(listed)} more in the console"))
        sections.append(("Open alerts", rows))
    sections += [
        (
            "Success metrics",
            [
                (
                    "Audit coverage (target 100 %)",
                    f"{_fmt(coverage['value'], ' %')} ({coverage['audited']} of {coverage['observed']} "
                    f"observed events audited) - {_met(coverage)}",
                ),
                (
                    "MFA adoption (target 80 %)",
                    f"{_fmt(metrics['mfa_adoption_percent']['value'], ' %')} - {_met(metrics['mfa_adoption_percent'])}",
                ),
                (
                    "Mean time to detection (target < 300 s)",
                    f"{_fmt(metrics['mean_time_to_detection_seconds']['value'], ' s')} - "
                    f"{_met(metrics['mean_time_to_detection_seconds'])}",
                ),
                (
                    "Authentication completion (target 95 %)",
                    f"{_fmt(metrics['auth_completion_percent']['value'], ' %')} - "
                    f"{_met(metrics['auth_completion_percent'])}",
                ),
            ],
        ),
        (
            "Authentication",
            [
                ("Failed logins", _fmt(auth["failed_logins"])),
                ("Failed MFA verifications", _fmt(auth["mfa_failures"])),
                ("Lockouts", _fmt(auth["lockouts"])),
                ("Accounts locked", _fmt(auth["accounts_locked"])),
                ("Logins started", _fmt(auth["logins_started"])),
                ("Logins completed", _fmt(auth["logins_succeeded"])),
                ("Completion rate", _fmt(auth["auth_completion_rate"], " %")),
            ]
            + [
                (f"Most failed account: {row['account']}", f"{row['failures']} failures from {row['ips']} IPs")
                for row in auth["top_failed_accounts"]
            ]
            + [
                (f"Most failing IP: {row['ip']}", f"{row['failures']} failures on {row['accounts']} accounts")
                for row in auth["top_failed_ips"]
            ],
        ),
        (
            "Alerts",
            [
                ("Alerts raised", _fmt(alerts["raised"])),
                ("Mean detection time", _fmt(alerts["mean_detection_seconds"], " s")),
            ]
            + [
                (
                    f"Raised, {name}",
                    f"{row['count']} (mean detection {_fmt(row['mean_detection_seconds'], ' s')}, "
                    f"worst {_fmt(row['max_detection_seconds'], ' s')})",
                )
                for name, row in alerts["by_severity"].items()
            ]
            + [(f"Open now, {name}", _fmt(count)) for name, count in alerts["open_now"].items()],
        ),
        (
            "MFA adoption",
            [
                ("Active users", _fmt(mfa["users"])),
                ("Users with MFA", _fmt(mfa["users_with_mfa"])),
                ("Adoption, all users", _fmt(mfa["adoption_rate"], " %")),
                ("Active staff", _fmt(mfa["staff"])),
                ("Staff with MFA", _fmt(mfa["staff_with_mfa"])),
                ("Adoption, staff", _fmt(mfa["staff_adoption_rate"], " %")),
            ]
            + ([("Note", mfa["note"])] if mfa["note"] else []),
        ),
        (
            "Sessions",
            [("Active sessions", _fmt(sessions["active"]))]
            + ([("Note", sessions["note"])] if sessions["note"] else []),
        ),
        (
            "API",
            [
                ("HTTP requests served", _fmt(api["http_requests"])),
                ("API key requests", _fmt(api["requests"])),
                ("API keys used", _fmt(api["keys_used"])),
                ("Refused keys (401)", _fmt(api["refused"])),
                ("Rate limited (429)", _fmt(api["rate_limited"])),
                ("Signature failures", _fmt(api["signature_failures"])),
                ("Deprecated endpoint calls", _fmt(api["deprecated_calls"])),
                ("Deprecated endpoint callers", _fmt(api["deprecated_callers"])),
            ],
        ),
        (
            "Audit chain",
            [
                ("Status", audit_status["status"]),
                ("Events recorded", _fmt(audit_status["events"])),
                ("Events not yet sealed", _fmt(audit_status["unsealed"])),
                ("Last verification", _event(audit_status["last_verification"])),
                ("Last head publication", _event(audit_status["last_head_published"])),
            ],
        ),
        (
            "Encryption keys",
            [
                ("Status", encryption["status"]),
                ("Last rotation", _event(encryption["last_rotation"])),
                ("Rotation failures", _fmt(encryption["rotation_failures"])),
                ("Decryption failures", _fmt(encryption["decryption_failures"])),
            ],
        ),
        (
            "Backups",
            [
                ("Status", backups["status"]),
                ("Last backup", _event(backups["last_backup"])),
                ("Last verification", _event(backups["last_verification"])),
                ("Failures", _fmt(backups["failures"])),
            ],
        ),
        (
            "Scheduled jobs",
            [
                ("Runs", _fmt(jobs["runs"])),
                ("Failed runs", _fmt(jobs["failed"])),
                ("Failed jobs", ", ".join(jobs["failed_tasks"]) or "none"),
            ],
        ),
    ]
    # Every row as (label, value, link): the link is empty where there is none.
    return [(title, [(row[0], row[1], row[2] if len(row) > 2 else "") for row in rows]) for title, rows in sections]


def _csv(sections) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["section", "metric", "value", "link"])
    for title, rows in sections:
        for label, value, link in rows:
            writer.writerow([title, label, value, link])
    return buffer.getvalue()


def report_render(*, period: str, figures: dict) -> tuple[str, str, str]:
    """Return (html, text, csv) for the figures."""
    sections = report_rows(figures)
    context = {
        "period": ReportPeriod(period).label,
        "start": figures["period_start"][:10],
        "end": figures["period_end"][:10],
        "start_at": email_time(figures["period_start"]),
        "end_at": email_time(figures["period_end"]),
        "generated_at": email_time(figures["generated_at"]),
        "period_note": figures.get("period_note", ""),
        "sections": sections,
    }
    html = render_to_string("monitoring/reports/report.html", context)
    text = render_to_string("monitoring/reports/report.txt", context)
    return html, text, _csv(sections)


def report_generate(
    *,
    period: str,
    email: bool = False,
    until: datetime.date | None = None,
    now: datetime.datetime | None = None,
    task_id: str | None = None,
) -> Report:
    """Compute, render and store a report; with ``email`` queue it to the security administrators.

    ``task_id`` (the scheduled job's Celery task id) makes a run safe to repeat: a report that task
    already stored is returned as it is, and nothing is emailed again. Tasks are acknowledged after
    they finish, so a worker killed between the commit and the acknowledgement has its message
    delivered again. Permission: none (the scheduled job and the ``security_report`` command run as
    the system).
    """
    from monitoring.services.notifications import report_email_enqueue

    if task_id and (done := Report.objects.filter(task_id=task_id).first()) is not None:
        return done
    now = now or timezone.now()
    start, end, note = report_period(period=period, until=until, now=now)
    figures = report_figures(start=start, end=end, now=now)
    figures["period_note"] = note
    figures["previous"] = comparison_figures(start=start - (end - start), end=start)
    figures["open_alerts"] = open_alert_list()
    figures["links"] = {
        "console": _console_link("admin:index"),
        "open_alerts": _console_link("admin:monitoring_alert_changelist", query="status__in=open,acknowledged"),
        "audit_events": _console_link("admin:audit_auditevent_changelist"),
        "reports": _console_link("admin:monitoring_report_changelist"),
    }
    html, text, csv_text = report_render(period=period, figures=figures)
    try:
        with transaction.atomic():
            report = Report.objects.create(
                period=ReportPeriod(period),
                period_start=start,
                period_end=end,
                generated_at=now,
                figures=figures,
                html=html,
                text=text,
                csv=csv_text,
                task_id=task_id or None,
            )
            if email:
                report_email_enqueue(report=report)
    except IntegrityError:
        if not task_id:
            raise
        return Report.objects.get(task_id=task_id)  # another delivery of the same task stored it meanwhile
    return report
