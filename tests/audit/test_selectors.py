"""Incident queries: the selectors and ``manage.py audit_query``."""

from __future__ import annotations

import csv
import datetime
import io
import json

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

import audit
from audit import selectors
from audit.actions import PRIVILEGE_ACTIONS
from core import context as request_context

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(user, staff_user):
    """A password-guessing run from two IPs, a privilege change, and some memory access."""
    now = timezone.now()
    three_days_ago = now - datetime.timedelta(days=3)
    with time_machine.travel(three_days_ago, tick=False), request_context.bound(client_ip="192.0.2.1"):
        audit.record(action=audit.Action.LOGIN_FAILED, outcome=audit.Outcome.FAILURE, subject="alice")
    with request_context.bound(request_id="attack-request-1", client_ip="192.0.2.66"):
        for username in ("alice", "alice", "alice", "bob"):
            audit.record(action=audit.Action.LOGIN_FAILED, outcome=audit.Outcome.FAILURE, subject=username)
    with request_context.bound(client_ip="192.0.2.77"):
        audit.record(action=audit.Action.MFA_VERIFY_FAILED, outcome=audit.Outcome.FAILURE, subject=user)
        audit.record(action=audit.Action.LOGIN_SUCCEEDED, actor=user)
    with request_context.bound(request_id="admin-request-01"):
        audit.record(action=audit.Action.STAFF_GRANTED, actor=staff_user, subject=user)
        audit.record(action=audit.Action.ADMIN_CHANGED, actor=staff_user, target=user, context={"fields": ["is_staff"]})
    audit.record(action=audit.Action.MEMORY_READ, actor=user, target=("memories.memory", 5))
    audit.record(action=audit.Action.CONTEXT_EXPORTED, actor=user, context={"count": 40})
    audit.record(action=audit.Action.MEMORY_READ, actor=staff_user, target=("memories.memory", 6))
    return now


def test_failed_logins_by_ip_in_a_window(incident):
    rows = selectors.failed_logins_by_ip(since=incident - datetime.timedelta(hours=1))
    assert [(row["client_ip"], row["failures"], row["accounts"]) for row in rows] == [
        ("192.0.2.66", 4, 2),
        ("192.0.2.77", 1, 1),
    ]
    older = selectors.failed_logins_by_ip(since=incident - datetime.timedelta(days=7), min_count=2)
    assert [row["client_ip"] for row in older] == ["192.0.2.66"]


def test_failed_logins_by_account_in_a_window(incident):
    rows = selectors.failed_logins_by_account(since=incident - datetime.timedelta(days=7))
    assert [(row["subject_username"], row["failures"], row["ips"]) for row in rows] == [
        ("alice", 5, 3),
        ("bob", 1, 1),
    ]


def test_timeline_of_one_user(incident, user):
    actions = [event.action for event in selectors.user_timeline(user=user)]
    assert actions == [
        "auth.mfa_verify_failed",
        "auth.login_succeeded",
        "authz.staff_granted",
        "memory.read",
        "context.exported",
    ]
    assert [event.action for event in selectors.user_timeline(user="alice")][-1] == "context.exported"


def test_everything_one_request_caused(incident):
    assert [event.action for event in selectors.request_events(request_id="admin-request-01")] == [
        "authz.staff_granted",
        "admin.changed",
    ]


def test_privilege_changes_in_a_period(incident):
    rows = list(selectors.privilege_changes(since=incident - datetime.timedelta(hours=1)))
    # (creating the staff fixture may itself be recorded as a privilege change: also in the list)
    assert {event.action for event in rows} <= PRIVILEGE_ACTIONS
    assert [event.action for event in rows if event.request_id == "admin-request-01"] == ["authz.staff_granted"]
    earlier = incident - datetime.timedelta(days=7)
    assert not selectors.privilege_changes(since=earlier, until=incident - datetime.timedelta(hours=1)).exists()


def test_memory_access_by_a_user(incident, user):
    rows = selectors.memory_access(user=user)
    assert [(event.action, event.target_id) for event in rows] == [("memory.read", "5"), ("context.exported", "")]


def _query(*args) -> str:
    out = io.StringIO()
    call_command("audit_query", *args, stdout=out)
    return out.getvalue()


def test_audit_query_filters_and_formats(incident):
    lines = _query("--ip", "192.0.2.66", "--format", "jsonl").splitlines()
    assert len(lines) == 4 and all(json.loads(line)["client_ip"] == "192.0.2.66" for line in lines)
    rows = list(csv.DictReader(io.StringIO(_query("--action", "memory.read", "--format", "csv"))))
    assert {row["target_id"] for row in rows} == {"5", "6"}
    table = _query("--request-id", "admin-request-01")
    assert "authz.staff_granted" in table and "(2 row(s))" in table
    assert "(0 row(s))" in _query("--outcome", "denied")
    # By username: what alice did and what was attempted against her account.
    assert len(_query("--user", "alice", "--since", "1h", "--format", "jsonl").splitlines()) == 8
    assert len(_query("--since", "2d", "--action", "auth.login_failed", "--format", "jsonl").splitlines()) == 4


def test_audit_query_reports(incident):
    assert "192.0.2.66" in _query("--report", "failed-logins-by-ip", "--since", "7d")
    assert "alice" in _query("--report", "failed-logins-by-account", "--min-count", "2")
    assert "authz.staff_granted" in _query("--report", "privilege-changes")
    assert "context.exported" in _query("--report", "memory-access", "--user", "alice")
    assert "admin.changed" in _query("--report", "request", "--request-id", "admin-request-01")
    assert "auth.login_succeeded" in _query("--report", "timeline", "--user", "alice")


@pytest.mark.parametrize(
    "args",
    [
        ("--ip", "not-an-ip"),
        ("--since", "yesterday-ish"),
        ("--report", "timeline"),
        ("--limit", "-1"),
    ],
)
def test_audit_query_refuses_bad_input_with_a_clear_error(incident, args):
    with pytest.raises(CommandError):
        _query(*args)


def test_csv_output_cannot_inject_formulas(user):
    audit.record(action=audit.Action.LOGIN_FAILED, subject="=HYPERLINK(\"http://evil\")")
    rows = list(csv.reader(io.StringIO(_query("--format", "csv"))))
    assert rows[1][5].startswith("'=")
