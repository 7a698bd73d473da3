"""audit.record(): the fields it stores, the request context it binds, what happens after commit."""

from __future__ import annotations

import datetime
import logging
import os
import re
import subprocess
import sys

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.db import transaction

import audit
from audit.chain import CONTENT_FIELDS, content_mac
from audit.models import AuditEvent
from audit.signals import event_recorded
from core import context as request_context

pytestmark = pytest.mark.django_db


def content_of(event: AuditEvent) -> dict:
    return {name: getattr(event, name) for name in CONTENT_FIELDS}


def test_record_stores_snapshots_of_actor_subject_and_target(user, staff_user, bound_request):
    group = Group.objects.create(name="operators")
    event = audit.record(
        action=audit.Action.GROUP_MEMBERSHIP_CHANGED,
        actor=staff_user,
        subject=user,
        target=group,
        context={"added": ["operators"]},
        api_key_id="key_4f2a",
    )
    stored = AuditEvent.objects.get(uuid=event.uuid)
    assert stored.action == "authz.group_membership_changed"
    assert stored.outcome == "success"
    assert (stored.actor_id, stored.actor_username, stored.actor_is_staff) == (str(staff_user.pk), "root-admin", True)
    assert (stored.subject_id, stored.subject_username, stored.subject_is_staff) == (str(user.pk), "alice", False)
    assert (stored.target_type, stored.target_id) == ("auth.group", str(group.pk))
    assert stored.target_repr == f"group {group.pk}"
    assert stored.request_id == "req-0123456789"
    assert stored.client_ip == "203.0.113.7"
    assert stored.user_agent == "pytest-agent/1.0"
    assert stored.api_key_id == "key_4f2a"
    assert stored.context == {"added": ["operators"]}
    assert stored.timestamp.tzinfo is not None
    assert stored.timestamp.utcoffset() == datetime.timedelta(0)
    assert stored.content_mac == content_mac(content_of(stored))


def test_snapshots_survive_the_user_being_renamed_and_deleted(user):
    event = audit.record(action=audit.Action.LOGIN_SUCCEEDED, actor=user)
    user_id = user.pk
    user.username = "renamed"
    user.save()
    user.delete()
    stored = AuditEvent.objects.get(uuid=event.uuid)
    assert (stored.actor_id, stored.actor_username) == (str(user_id), "alice")


def test_record_outside_a_request_has_no_request_fields():
    event = audit.record(action=audit.Action.MIGRATION_APPLIED)
    stored = AuditEvent.objects.get(uuid=event.uuid)
    assert (stored.request_id, stored.client_ip, stored.user_agent) == ("", None, "")
    assert (stored.actor_id, stored.actor_username, stored.actor_is_staff) == ("", "", None)


def test_anonymous_actor_and_attempted_username_subject():
    event = audit.record(
        action=audit.Action.LOGIN_FAILED, outcome=audit.Outcome.FAILURE, actor=AnonymousUser(), subject="mallory"
    )
    stored = AuditEvent.objects.get(uuid=event.uuid)
    assert (stored.actor_id, stored.actor_username) == ("", "")
    assert (stored.subject_id, stored.subject_username, stored.subject_is_staff) == ("", "mallory", None)
    assert stored.outcome == "failure"


def test_targets_given_as_target_or_tuple():
    first = audit.record(action=audit.Action.MEMORY_READ, target=audit.Target("memories.memory", "42", "note 42"))
    second = audit.record(action=audit.Action.CONTEXT_READ, target=("memories.context", 7))
    assert (first.target_type, first.target_id, first.target_repr) == ("memories.memory", "42", "note 42")
    assert (second.target_type, second.target_id, second.target_repr) == ("memories.context", "7", "")


def test_a_model_target_is_never_rendered_with_its_str(monkeypatch):
    monkeypatch.setattr(Group, "__str__", lambda self: "the private memory content")
    group = Group.objects.create(name="x")
    event = audit.record(action=audit.Action.ADMIN_CHANGED, target=group)
    assert event.target_repr == f"group {group.pk}"


def test_unknown_action_or_outcome_is_refused_and_nothing_is_written():
    with pytest.raises(ValueError):
        audit.record(action="auth.made_up")
    with pytest.raises(ValueError):
        audit.record(action=audit.Action.LOGOUT, outcome="maybe")
    assert AuditEvent.objects.count() == 0


def test_record_many_inserts_every_event_with_valid_macs(user):
    events = audit.record_many(
        [{"action": audit.Action.MEMORY_UPDATED, "actor": user, "target": ("memories.memory", n)} for n in range(5)]
    )
    assert len(events) == 5
    stored = list(AuditEvent.objects.order_by("id"))
    assert [event.target_id for event in stored] == ["0", "1", "2", "3", "4"]
    assert all(event.content_mac == content_mac(content_of(event)) for event in stored)


def test_record_writes_in_the_callers_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        audit.record(action=audit.Action.MEMORY_DELETED)
        raise RuntimeError("the change failed")
    assert AuditEvent.objects.count() == 0


def test_signal_and_log_line_only_after_commit(django_capture_on_commit_callbacks, caplog):
    received = []

    def receiver(sender, event, **kwargs):
        received.append(event)

    event_recorded.connect(receiver)
    try:
        with caplog.at_level(logging.INFO, logger="audit.events"):
            with django_capture_on_commit_callbacks(execute=True) as callbacks:
                event = audit.record(action=audit.Action.LOGOUT)
                assert received == []  # not before commit
            assert callbacks
    finally:
        event_recorded.disconnect(receiver)
    assert received == [event]
    assert any(getattr(line, "audit", {}).get("event_uuid") == str(event.uuid) for line in caplog.records)


def test_no_signal_for_a_rolled_back_event(django_capture_on_commit_callbacks):
    received = []

    def receiver(sender, event, **kwargs):
        received.append(event)

    event_recorded.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            with pytest.raises(RuntimeError), transaction.atomic():
                audit.record(action=audit.Action.LOGOUT)
                raise RuntimeError
            kept = audit.record(action=audit.Action.LOGIN_SUCCEEDED)
    finally:
        event_recorded.disconnect(receiver)
    assert [event.action for event in received] == [kept.action]


def test_a_failing_receiver_cannot_break_the_caller(django_capture_on_commit_callbacks, caplog):
    def broken(sender, event, **kwargs):
        raise RuntimeError("monitoring is down")

    event_recorded.connect(broken)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            audit.record(action=audit.Action.LOGOUT)
    finally:
        event_recorded.disconnect(broken)
    assert "receiver" in caplog.text


def test_events_are_sealed_after_commit_in_order(django_capture_on_commit_callbacks):
    from audit.pending import PendingEvents
    from audit.sealing import _seal_inline

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for _ in range(3):
            audit.record(action=audit.Action.MEMORY_READ)
    # one seal callback for the transaction however many events, plus one hold-and-announce each
    assert sum(callback is _seal_inline for callback in callbacks) == 1
    assert sum(isinstance(callback, PendingEvents) for callback in callbacks) == 3
    sealed = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sealed == [1, 2, 3]


def test_the_returned_event_is_unsealed_until_the_sealer_runs():
    event = audit.record(action=audit.Action.MEMORY_READ)
    assert event.sequence is None and event.hash is None
    assert AuditEvent.objects.unsealed().count() == 1


def test_each_manage_py_command_run_gets_its_own_run_id(capsys):
    from django.core.management import call_command

    with request_context.command_bound(["manage.py", "audit_verify"]) as first:
        call_command("audit_verify", "--no-publish")
    with request_context.command_bound(["manage.py", "audit_verify"]) as second:
        call_command("audit_verify", "--no-publish")
    verified = AuditEvent.objects.filter(action="system.audit_verified").order_by("id")
    runs = list(verified.values_list("request_id", flat=True))
    assert runs == [first.request_id, second.request_id]
    assert all(run.startswith("cmd-") and len(run) == 36 for run in runs) and runs[0] != runs[1]
    assert request_context.current() is None
    with request_context.command_bound(["manage.py", "runserver"]) as server:
        assert server is None and request_context.current() is None  # each request binds its own


def test_manage_py_runs_commands_inside_a_run_id():
    import manage

    script = "from core.context import current; print(current().request_id)"
    result = subprocess.run(
        [sys.executable, manage.__file__, "shell", "--no-startup", "-c", script],
        capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
    )
    assert re.fullmatch(r"cmd-[0-9a-f]{32}", result.stdout.strip().splitlines()[-1])


def test_a_task_or_command_can_bind_a_context():
    with request_context.bound(request_id="task-run-000001", client_ip="2001:db8::1"):
        event = audit.record(action=audit.Action.SCHEDULED_JOB_FAILED, outcome=audit.Outcome.ERROR)
    assert (event.request_id, event.client_ip) == ("task-run-000001", "2001:db8::1")
    assert request_context.current() is None
