"""Scheduled security reports: figures from the selectors, rendered as HTML, plain text and CSV, stored.

A daily report covers the previous UTC day; a weekly one the seven UTC days before today.
All three renderings come from the same rows (``report_rows``), so they cannot disagree.
"""

from __future__ import annotations

import csv
import datetime
import io

from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from core.emails import email_time
from monitoring.models import Report, ReportPeriod
from monitoring.selectors import report_figures

PERIOD_DAYS = {ReportPeriod.DAILY: 1, ReportPeriod.WEEKLY: 7}


def period_bounds(*, period: str, until: datetime.date | None = None, now: datetime.datetime | None = None):
    """[start, end) of the report: ``end`` is 00:00 UTC of ``until`` (default: today)."""
    period = ReportPeriod(period)
    day = until or (now or timezone.now()).astimezone(datetime.UTC).date()
    end = datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)
    return end - datetime.timedelta(days=PERIOD_DAYS[period]), end


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
    sections = [
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
            + [(f"Most failed account: {row['account']}", f"{row['failures']} failures from {row['ips']} IPs")
               for row in auth["top_failed_accounts"]]
            + [(f"Most failing IP: {row['ip']}", f"{row['failures']} failures on {row['accounts']} accounts")
               for row in auth["top_failed_ips"]],
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
    return sections


def _csv(sections) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["section", "metric", "value"])
    for title, rows in sections:
        for label, value in rows:
            writer.writerow([title, label, value])
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
        "sections": sections,
    }
    html = render_to_string("monitoring/reports/report.html", context)
    text = render_to_string("monitoring/reports/report.txt", context)
    return html, text, _csv(sections)


def report_generate(
    *, period: str, email: bool = False, until: datetime.date | None = None, now: datetime.datetime | None = None
) -> Report:
    """Compute, render and store a report; with ``email`` queue it to the security administrators.

    Permission: none (the scheduled job and the ``security_report`` command run as the system).
    """
    from monitoring.services.notifications import report_email_enqueue

    now = now or timezone.now()
    start, end = period_bounds(period=period, until=until, now=now)
    figures = report_figures(start=start, end=end, now=now)
    html, text, csv_text = report_render(period=period, figures=figures)
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
        )
        if email:
            report_email_enqueue(report=report)
    return report
