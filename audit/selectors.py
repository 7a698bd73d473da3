"""Reads of the audit record: the incident queries.

Each selector uses the indexes of ``AuditEvent`` (action+time, actor+time, subject+time,
IP+time, request id) so it stays fast on millions of events. They return query sets (callers
slice and format them) or, for the "by" reports, lists of dicts ordered by count.
"""

from __future__ import annotations

import datetime
import ipaddress

from django.db.models import Count, Max, Min, Q, QuerySet

from audit.actions import LOGIN_FAILURE_ACTIONS, MEMORY_ACCESS_ACTIONS, PRIVILEGE_ACTIONS, Action, Outcome
from audit.models import AuditEvent


def _window(queryset: QuerySet, since: datetime.datetime | None, until: datetime.datetime | None) -> QuerySet:
    if since is not None:
        queryset = queryset.filter(timestamp__gte=since)
    if until is not None:
        queryset = queryset.filter(timestamp__lt=until)
    return queryset


def _user_condition(user: object) -> Q:
    """Match a user given as an object (by id), an id, or a username (actor or subject)."""
    if hasattr(user, "pk"):
        identifier = str(user.pk)
        return Q(actor_id=identifier) | Q(subject_id=identifier)
    text = str(user).strip()
    if text.isdigit():
        return Q(actor_id=text) | Q(subject_id=text)
    return Q(actor_username=text) | Q(subject_username=text)


def event_list(
    *,
    user: object | None = None,
    ip: str | None = None,
    actions: list[str] | None = None,
    outcome: str | None = None,
    request_id: str | None = None,
    since: datetime.datetime | None = None,
    until: datetime.datetime | None = None,
) -> QuerySet:
    """Events matching every given filter, newest first (what ``audit_query`` prints)."""
    queryset = _window(AuditEvent.objects.all(), since, until)
    if user is not None:
        queryset = queryset.filter(_user_condition(user))
    if ip:
        queryset = queryset.filter(client_ip=ipaddress.ip_address(ip).compressed)
    if actions:
        queryset = queryset.filter(action__in=[Action(action).value for action in actions])
    if outcome:
        queryset = queryset.filter(outcome=Outcome(outcome).value)
    if request_id:
        queryset = queryset.filter(request_id=request_id)
    return queryset.order_by("-timestamp", "-id")


def failed_logins(*, since: datetime.datetime, until: datetime.datetime | None = None) -> QuerySet:
    """Failed password and MFA attempts in the window."""
    return _window(AuditEvent.objects.filter(action__in=LOGIN_FAILURE_ACTIONS), since, until)


def failed_logins_by_ip(
    *, since: datetime.datetime, until: datetime.datetime | None = None, min_count: int = 1
) -> list[dict]:
    """Per client IP: failed logins, distinct accounts tried, first and last attempt. Most first."""
    rows = (
        failed_logins(since=since, until=until)
        .exclude(client_ip__isnull=True)
        .values("client_ip")
        .annotate(
            failures=Count("id"),
            accounts=Count("subject_username", distinct=True),
            first=Min("timestamp"),
            last=Max("timestamp"),
        )
        .filter(failures__gte=min_count)
        .order_by("-failures", "client_ip")
    )
    return list(rows)


def failed_logins_by_account(
    *, since: datetime.datetime, until: datetime.datetime | None = None, min_count: int = 1
) -> list[dict]:
    """Per attempted account (normalised username): failed logins, distinct IPs, first and last."""
    rows = (
        failed_logins(since=since, until=until)
        .exclude(subject_username="")
        .values("subject_username")
        .annotate(
            failures=Count("id"),
            ips=Count("client_ip", distinct=True),
            first=Min("timestamp"),
            last=Max("timestamp"),
        )
        .filter(failures__gte=min_count)
        .order_by("-failures", "subject_username")
    )
    return list(rows)


def user_timeline(
    *, user: object, since: datetime.datetime | None = None, until: datetime.datetime | None = None
) -> QuerySet:
    """Everything a user did or had done to them, oldest first."""
    return _window(AuditEvent.objects.filter(_user_condition(user)), since, until).order_by("timestamp", "id")


def request_events(*, request_id: str) -> QuerySet:
    """Everything one request (and the tasks it started) caused, in order."""
    return AuditEvent.objects.filter(request_id=request_id).order_by("timestamp", "id")


def privilege_changes(*, since: datetime.datetime, until: datetime.datetime | None = None) -> QuerySet:
    """Changes of staff/superuser flags, groups, permissions and team/organization roles."""
    return _window(AuditEvent.objects.filter(action__in=PRIVILEGE_ACTIONS), since, until).order_by("timestamp", "id")


def memory_access(
    *, user: object, since: datetime.datetime | None = None, until: datetime.datetime | None = None
) -> QuerySet:
    """The memories and contexts a user read, listed, changed, shared or exported."""
    if hasattr(user, "pk"):
        condition = Q(actor_id=str(user.pk))
    else:
        text = str(user).strip()
        condition = Q(actor_id=text) if text.isdigit() else Q(actor_username=text)
    queryset = AuditEvent.objects.filter(condition, action__in=MEMORY_ACCESS_ACTIONS)
    return _window(queryset, since, until).order_by("timestamp", "id")
