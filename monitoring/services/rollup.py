"""The dashboard's rollup: per-day security counts and the 24-hour top lists, precomputed.

The security dashboard must stay fast with millions of audit events, so it never counts the audit
table when it is shown. ``security_counts_rollup`` (task ``monitoring.security_counts_rollup``,
every few minutes) recomputes the counts of **today and yesterday** (UTC) only: older days no
longer change (an event is written with its commit, at most seconds after its timestamp, and the
yesterday pass covers a day's last minutes). Each run overwrites the rows it computes, so running
it twice, or concurrently, leaves the same rows (idempotent).

What is counted, per day:

* audited (from the audit record, on its ``(action, timestamp)`` index): each action of
  ``AUDITED_ACTIONS`` under its own value, e.g. ``auth.login_failed``;
* observed outside the audit record, to measure audit coverage the way the security report does:
  ``observed.auth.login_succeeded`` and ``observed.auth.login_failed`` (Django's auth signals,
  the per-minute tallies) and ``observed.admin_log`` (Django's admin log entries).

And one snapshot, ``failed_logins_24h``: the accounts and client IPs with the most failed logins
(password and MFA) in the 24 hours before the run.
"""

from __future__ import annotations

import datetime

from django.contrib.admin.models import LogEntry
from django.db import transaction
from django.db.models import Count, Sum
from django.utils import timezone

from audit.actions import Action
from audit.models import AuditEvent
from audit.selectors import failed_logins_by_account, failed_logins_by_ip
from monitoring.models import DailySecurityCount, SecuritySnapshot, Tally

AUDITED_ACTIONS = (
    Action.LOGIN_FAILED,
    Action.LOGIN_SUCCEEDED,
    Action.MFA_VERIFY_FAILED,
    Action.ACCOUNT_LOCKED,
    Action.ADMIN_ADDED,
    Action.ADMIN_CHANGED,
    Action.ADMIN_DELETED,
)
OBSERVED_TALLIES = ("auth.login_succeeded", "auth.login_failed")
OBSERVED_ADMIN_LOG = "observed.admin_log"
FAILED_LOGINS_SNAPSHOT = "failed_logins_24h"
TOP_LIST_LENGTH = 5


def _day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)
    return start, start + datetime.timedelta(days=1)


def day_counts(day: datetime.date) -> dict[str, int]:
    """Every count of one UTC day, zeros included (what the rollup stores for that day)."""
    start, end = _day_bounds(day)
    counts = {action.value: 0 for action in AUDITED_ACTIONS}
    rows = (
        AuditEvent.objects.filter(
            action__in=[action.value for action in AUDITED_ACTIONS], timestamp__gte=start, timestamp__lt=end
        )
        .values("action")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["action"]] = row["n"]
    for name in OBSERVED_TALLIES:
        counts[f"observed.{name}"] = (
            Tally.objects.filter(name=name, minute__gte=start, minute__lt=end).aggregate(total=Sum("count"))["total"]
            or 0
        )
    counts[OBSERVED_ADMIN_LOG] = LogEntry.objects.filter(action_time__gte=start, action_time__lt=end).count()
    return counts


def security_counts_rollup(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Recompute today's and yesterday's counts and the 24-hour snapshot. Permission: none (a job).

    Idempotent: the rows of the two days are overwritten with what the record holds now.
    """
    now = now or timezone.now()
    today = now.astimezone(datetime.UTC).date()
    rows = []
    for day in (today - datetime.timedelta(days=1), today):
        rows += [
            DailySecurityCount(day=day, name=name, count=count, computed_at=now)
            for name, count in day_counts(day).items()
        ]
    since = now - datetime.timedelta(hours=24)
    snapshot = {
        "since": since.isoformat(),
        "until": now.isoformat(),
        "ips": [
            {"ip": row["client_ip"], "failures": row["failures"], "accounts": row["accounts"]}
            for row in failed_logins_by_ip(since=since)[:TOP_LIST_LENGTH]
        ],
        "accounts": [
            {"account": row["subject_username"], "failures": row["failures"], "ips": row["ips"]}
            for row in failed_logins_by_account(since=since)[:TOP_LIST_LENGTH]
        ],
    }
    with transaction.atomic():
        DailySecurityCount.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["day", "name"], update_fields=["count", "computed_at"]
        )
        SecuritySnapshot.objects.update_or_create(
            name=FAILED_LOGINS_SNAPSHOT, defaults={"computed_at": now, "data": snapshot}
        )
    return {"days": 2, "rows": len(rows)}
