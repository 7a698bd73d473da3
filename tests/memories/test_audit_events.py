"""Every memory and context action records exactly its audit events, and never the content.

Driven through the real API (views → services), so the assertions hold for what a client does.
"""

from __future__ import annotations

import json

import pytest

from audit.models import AuditEvent
from memories.models import Membership, Memory, Role
from tests.memories.api_helpers import url

SECRET_CONTENT = "launch code is 0000 and the vault password is hunter2-hunter2"
SECRET_METADATA = {"prompt": "top secret system prompt for the agent"}


def actions_since(first_id: int) -> list[tuple[str, str]]:
    """(action, outcome) of every event recorded after ``first_id``, in order."""
    return list(AuditEvent.objects.filter(pk__gt=first_id).order_by("pk").values_list("action", "outcome"))


def last_id() -> int:
    return AuditEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def assert_no_content_anywhere():
    dump = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert SECRET_CONTENT not in dump
    assert "hunter2" not in dump
    assert "top secret system prompt" not in dump


@pytest.fixture
def member(world, make_user):
    user = make_user("mia.member")
    world.grant(user, Role.MEMBER, team=world.team)
    return user


@pytest.mark.django_db
@pytest.mark.audit_coverage("memory.read", "memory.list", "memory.created", "memory.updated", "memory.deleted")
def test_create_read_update_list_and_delete_record_one_event_each(world, client_for, member):
    owner_client = client_for(world.owner)
    start = last_id()
    created = owner_client.post(
        url("memory-list"),
        {"context": world.team_context.pk, "content": SECRET_CONTENT, "metadata": SECRET_METADATA, "tags": ["ops"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    memory_id = created.json()["id"]
    assert owner_client.get(url("memory-detail", memory_id=memory_id)).status_code == 200
    patched = owner_client.patch(url("memory-detail", memory_id=memory_id), {"tags": ["ops", "db"]}, format="json")
    assert patched.status_code == 200
    assert owner_client.get(url("memory-list"), {"context": world.team_context.pk}).status_code == 200
    assert owner_client.delete(url("memory-detail", memory_id=memory_id)).status_code == 204
    assert actions_since(start) == [
        ("memory.created", "success"),
        ("memory.read", "success"),
        ("memory.updated", "success"),
        ("memory.list", "success"),
        ("memory.deleted", "success"),
    ]
    events = list(AuditEvent.objects.filter(pk__gt=start).order_by("pk"))
    assert {event.actor_username for event in events} == {world.owner.username}
    assert events[0].target_type == "memories.memory"
    assert events[0].target_id == str(memory_id)
    assert events[2].context["fields"] == ["tags"]
    assert events[3].context["count"] == 1
    assert events[3].context["total"] == 1
    assert all(event.request_id for event in events)
    assert len({event.request_id for event in events}) == 5, "one request id per request"
    assert_no_content_anywhere()


@pytest.mark.django_db
def test_a_refused_delete_is_recorded_as_denied_and_changes_nothing(world, client_for, member, make_memory):
    memory = make_memory(world.team_context, content=SECRET_CONTENT)
    member_client = client_for(member)
    start = last_id()
    response = member_client.delete(url("memory-detail", memory_id=memory.pk))
    assert response.status_code == 403
    assert Memory.objects.filter(pk=memory.pk).exists()
    assert actions_since(start) == [("authz.permission_denied", "denied")]
    event = AuditEvent.objects.get(pk__gt=start)
    assert event.actor_username == member.username
    assert event.context == {"attempted": "memory.delete", "answer": 403}
    assert event.target_id == str(memory.pk)
    assert_no_content_anywhere()


@pytest.mark.django_db
def test_reading_a_hidden_memory_is_recorded_once_as_denied(world, client_for, make_user, make_memory):
    outsider = make_user("oscar.outsider")
    memory = make_memory(world.team_context, content=SECRET_CONTENT)
    outsider_client = client_for(outsider)
    start = last_id()
    assert outsider_client.get(url("memory-detail", memory_id=memory.pk)).status_code == 404
    assert actions_since(start) == [("authz.permission_denied", "denied")]
    assert AuditEvent.objects.get(pk__gt=start).context["answer"] == 404


@pytest.mark.django_db
def test_a_hidden_context_in_the_url_is_recorded_as_denied(world, client_for, make_user):
    outsider_client = client_for(make_user("oscar.outsider"))
    start = last_id()
    response = outsider_client.get(url("context-detail", context_id=world.team_context.pk))
    assert response.status_code == 404
    assert actions_since(start) == [("authz.permission_denied", "denied")]


@pytest.mark.django_db
@pytest.mark.audit_coverage("context.shared", "context.unshared", "context.transferred", "context.exported")
def test_share_unshare_transfer_and_export_are_recorded(world, client_for, make_user, make_memory, acquaint):
    reader = make_user("rita.reader")
    acquaint(world.owner, reader)
    make_memory(world.personal_context, content=SECRET_CONTENT)
    make_memory(world.personal_context, content="second")
    owner_client = client_for(world.owner)
    start = last_id()
    shared = owner_client.post(
        url("context-share-list", context_id=world.personal_context.pk),
        {"user": reader.username, "permission": "read"},
        format="json",
    )
    assert shared.status_code == 201, shared.content
    exported = owner_client.get(url("context-export", context_id=world.personal_context.pk))
    assert exported.status_code == 200
    unshared = owner_client.delete(
        url("context-share-detail", context_id=world.personal_context.pk, share_id=shared.json()["id"])
    )
    assert unshared.status_code == 204
    transferred = owner_client.post(
        url("context-transfer", context_id=world.personal_context.pk), {"team": world.team.pk}, format="json"
    )
    assert transferred.status_code == 200, transferred.content
    assert actions_since(start) == [
        ("context.shared", "success"),
        ("context.exported", "success"),
        ("context.unshared", "success"),
        ("context.transferred", "success"),
    ]
    events = list(AuditEvent.objects.filter(pk__gt=start).order_by("pk"))
    assert events[0].subject_username == reader.username
    assert events[0].context["permission"] == "read"
    assert events[1].context == {"count": 2}
    assert events[3].context["to"]["owner_type"] == "team"
    assert_no_content_anywhere()


@pytest.mark.django_db
@pytest.mark.audit_coverage("membership.added", "membership.removed", "membership.role_set")
def test_role_changes_are_recorded_with_previous_and_new_role(world, client_for, make_user, acquaint):
    newcomer = make_user("nina.new")
    acquaint(world.owner, newcomer)
    owner_client = client_for(world.owner)
    start = last_id()
    added = owner_client.post(
        url("team-member-list", team_id=world.team.pk), {"user": newcomer.username, "role": "member"}, format="json"
    )
    assert added.status_code == 201, added.content
    promoted = owner_client.put(
        url("team-member-detail", team_id=world.team.pk, user_id=newcomer.pk), {"role": "admin"}, format="json"
    )
    assert promoted.status_code == 200, promoted.content
    removed = owner_client.delete(url("team-member-detail", team_id=world.team.pk, user_id=newcomer.pk))
    assert removed.status_code == 204
    assert not Membership.objects.filter(user=newcomer, team=world.team).exists()
    events = list(AuditEvent.objects.filter(pk__gt=start).order_by("pk"))
    assert [(e.action, e.context["role"], e.context["previous_role"]) for e in events] == [
        ("membership.added", "member", None),
        ("membership.role_set", "admin", "member"),
        ("membership.removed", None, "admin"),
    ]
    assert {e.subject_username for e in events} == {newcomer.username}
    assert {e.target_type for e in events} == {"memories.team"}
