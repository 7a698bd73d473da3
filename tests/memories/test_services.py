"""The services: each checks permission itself, validates, and writes all or nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.test import override_settings

from memories import selectors, services
from memories.exceptions import NotFound, PermissionDenied
from memories.models import Context, ContextShare, Membership, Memory, MemoryTag, Organization, Role, Team

pytestmark = pytest.mark.django_db

ROLES = ["viewer", "member", "maintainer", "admin", "owner"]
ALLOWED = {
    "read": {"viewer", "member", "maintainer", "admin", "owner"},
    "create": {"member", "maintainer", "admin", "owner"},
    "update": {"member", "maintainer", "admin", "owner"},
    "delete": {"maintainer", "admin", "owner"},
    "export": {"maintainer", "admin", "owner"},
    "share": {"admin", "owner"},
    "administer": {"admin", "owner"},
    "transfer": {"owner"},
}


def _perform(action: str, *, actor, context: Context, memory: Memory, someone_else):
    """Do ``action`` on ``context`` through the service or selector the API uses for it."""
    if action == "read":
        return selectors.memory_get_for_user(user=actor, memory_id=memory.pk)
    if action == "create":
        return services.memory_create(actor=actor, context=context, content="new")
    if action == "update":
        return services.memory_update(actor=actor, memory=memory, content="changed")
    if action == "delete":
        return services.memory_delete(actor=actor, memory=memory)
    if action == "export":
        return list(selectors.memory_export_for_user(user=actor, context=context))
    if action == "share":
        return services.context_share(actor=actor, context=context, permission="read", user=someone_else)
    if action == "administer":
        return services.context_update(actor=actor, context=context, name="Renamed")
    if action == "transfer":
        return services.context_transfer_offer(actor=actor, context=context, user=someone_else)
    raise AssertionError(action)


def _snapshot():
    return (
        list(Memory.objects.order_by("pk").values_list("pk", "content")),
        list(Context.objects.order_by("pk").values_list("pk", "name", "scope", "owner_user", "owner_team")),
        list(ContextShare.objects.order_by("pk").values_list("pk", "permission")),
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(ALLOWED))
def test_every_service_enforces_the_matrix(world, make_user, make_memory, role, action):
    actor = make_user()
    world.grant(actor, role, team=world.team)
    memory = make_memory(world.team_context)
    before = _snapshot()
    if role in ALLOWED[action]:
        _perform(action, actor=actor, context=world.team_context, memory=memory, someone_else=make_user())
    else:
        with pytest.raises(PermissionDenied):
            _perform(action, actor=actor, context=world.team_context, memory=memory, someone_else=make_user())
        assert _snapshot() == before, "a refused call changed data"


@pytest.mark.parametrize("action", list(ALLOWED))
def test_every_service_answers_not_found_to_a_stranger(world, make_user, make_memory, action):
    stranger = make_user()
    memory = make_memory(world.team_context)
    before = _snapshot()
    with pytest.raises(NotFound):
        _perform(action, actor=stranger, context=world.team_context, memory=memory, someone_else=make_user())
    assert _snapshot() == before


# ---------------------------------------------------------------------------------------------
# Memories
# ---------------------------------------------------------------------------------------------
def test_memory_create_stores_the_memory_with_normalised_tags(world):
    memory = services.memory_create(
        actor=world.owner,
        context=world.team_context,
        content="  kubectl get pods  ",
        kind="command",
        source="cli",
        metadata={"shell": "bash"},
        tags=["Kubernetes", " kubernetes ", "Ops"],
    )
    memory.refresh_from_db()
    assert memory.content == "  kubectl get pods  "  # content is kept exactly as written
    assert memory.author == world.owner
    assert memory.kind == "command"
    assert memory.metadata == {"shell": "bash"}
    assert sorted(memory.tags.values_list("name", flat=True)) == ["kubernetes", "ops"]


def test_memory_create_reports_every_bad_field_at_once_and_writes_nothing(world):
    with pytest.raises(ValidationError) as caught:
        services.memory_create(
            actor=world.owner,
            context=world.team_context,
            content="",
            kind="poem",
            metadata=["not", "an", "object"],
            tags=["x" * 51],
        )
    assert set(caught.value.message_dict) == {"content", "kind", "metadata", "tags"}
    assert not Memory.objects.exists()


@override_settings(MEMORIES_CONTENT_MAX_LENGTH=10, MEMORIES_METADATA_MAX_BYTES=20)
def test_memory_limits_come_from_settings(world):
    services.memory_create(actor=world.owner, context=world.team_context, content="x" * 10, metadata={"a": "b"})
    with pytest.raises(ValidationError) as caught:
        services.memory_create(
            actor=world.owner, context=world.team_context, content="x" * 11, metadata={"a": "b" * 20}
        )
    assert set(caught.value.message_dict) == {"content", "metadata"}
    assert Memory.objects.count() == 1


@pytest.mark.parametrize(
    "metadata, reason",
    [
        ({"a": "nul\x00"}, "null"),
        ({"nul\x00key": 1}, "null"),
        ({"a": "\ud800"}, "surrogate"),
        ({"a": float("nan")}, "nan"),
        ({1: "x"}, "keys"),
        ({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": {"k": {"l": {"m": {"n": {"o": {"p": {"q": {
            "r": {"s": {"t": {"u": 1}}}}}}}}}}}}}}}}}}}}}, "deep"),
        ({"a": object()}, "json"),
    ],
)
def test_metadata_that_a_database_could_not_store_is_refused(world, metadata, reason):
    with pytest.raises(ValidationError) as caught:
        services.memory_create(actor=world.owner, context=world.team_context, content="x", metadata=metadata)
    assert "metadata" in caught.value.message_dict, reason


def test_tags_limits(world):
    services.memory_create(
        actor=world.owner, context=world.team_context, content="x", tags=[f"t{i}" for i in range(20)]
    )
    for bad in ([f"t{i}" for i in range(21)], [""], ["   "], ["a\tb"], ["x" * 51], "not-a-list", [7]):
        with pytest.raises(ValidationError) as caught:
            services.memory_create(actor=world.owner, context=world.team_context, content="x", tags=bad)
        assert "tags" in caught.value.message_dict, bad
    assert Memory.objects.count() == 1


def test_memory_update_changes_only_the_given_fields_and_replaces_tags(world, make_memory):
    memory = make_memory(world.team_context, content="old", kind="note", tags=["a", "b"], source="cli")
    updated_before = memory.updated_at
    services.memory_update(actor=world.owner, memory=memory, tags=["C"])
    memory.refresh_from_db()
    assert (memory.content, memory.kind, memory.source) == ("old", "note", "cli")
    assert list(memory.tags.values_list("name", flat=True)) == ["c"]
    assert memory.updated_at >= updated_before
    services.memory_update(actor=world.owner, memory=memory, content="new", kind="snippet")
    memory.refresh_from_db()
    assert (memory.content, memory.kind) == ("new", "snippet")


def test_memory_update_with_a_bad_field_changes_nothing(world, make_memory):
    memory = make_memory(world.team_context, content="old", tags=["a"])
    with pytest.raises(ValidationError):
        services.memory_update(actor=world.owner, memory=memory, content="new", tags=["x" * 60])
    memory.refresh_from_db()
    assert memory.content == "old"
    assert list(memory.tags.values_list("name", flat=True)) == ["a"]


def test_memory_delete_removes_its_tags(world, make_memory):
    memory = make_memory(world.team_context, tags=["a", "b"])
    services.memory_delete(actor=world.owner, memory=memory)
    assert not Memory.objects.exists()
    assert not MemoryTag.objects.exists()


def test_a_failure_halfway_leaves_nothing_written(world, monkeypatch):
    def broken(memory, tags):
        raise RuntimeError("the tag table is unavailable")

    monkeypatch.setattr(services, "_replace_tags", broken)
    with pytest.raises(RuntimeError):
        services.memory_create(actor=world.owner, context=world.team_context, content="x", tags=["a"])
    assert not Memory.objects.exists()


# ---------------------------------------------------------------------------------------------
# Contexts
# ---------------------------------------------------------------------------------------------
def test_context_create_for_each_scope(world, make_user):
    admin = make_user()
    world.grant(admin, "admin", organization=world.organization)
    personal = services.context_create(actor=admin, name=" Mine ", scope="personal")
    team = services.context_create(actor=admin, name="Team", scope="team", team=world.team)
    organization = services.context_create(
        actor=admin, name="Org", scope="organization", organization=world.organization
    )
    assert (personal.name, personal.owner, personal.created_by) == ("Mine", admin, admin)
    assert team.owner == world.team
    assert organization.owner == world.organization


def test_creating_a_team_context_needs_administer_on_the_team(world, make_user):
    maintainer = make_user()
    world.grant(maintainer, "maintainer", team=world.team)
    with pytest.raises(PermissionDenied):
        services.context_create(actor=maintainer, name="x", scope="team", team=world.team)
    with pytest.raises(NotFound):
        services.context_create(actor=maintainer, name="x", scope="team", team=world.other_team)
    with pytest.raises(NotFound):
        services.context_create(actor=maintainer, name="x", scope="organization", organization=world.organization)


@pytest.mark.parametrize(
    "arguments, field",
    [
        ({"scope": "personal", "team": "team"}, "scope"),
        ({"scope": "team"}, "team"),
        ({"scope": "team", "team": "team", "organization": "organization"}, "team"),
        ({"scope": "organization"}, "organization"),
        ({"scope": "galaxy"}, "scope"),
    ],
)
def test_context_create_refuses_an_owner_that_does_not_match_the_scope(world, arguments, field):
    owners = {"team": world.team, "organization": world.organization}
    resolved = {key: owners.get(key, value) for key, value in arguments.items()}
    with pytest.raises(ValidationError) as caught:
        services.context_create(actor=world.owner, name="x", **resolved)
    assert field in caught.value.message_dict
    assert Context.objects.count() == 5


def test_context_delete_deletes_its_memories_and_shares(world, make_memory, make_share, make_user):
    make_memory(world.team_context, tags=["a"])
    make_share(world.team_context, permission="read", user=make_user())
    services.context_delete(actor=world.owner, context=world.team_context)
    assert not Context.objects.filter(pk=world.team_context.pk).exists()
    assert not Memory.objects.exists()
    assert not ContextShare.objects.exists()


def test_context_share_replaces_an_existing_grant(world, make_user):
    friend = make_user()
    services.context_share(actor=world.owner, context=world.team_context, permission="read", user=friend)
    share = services.context_share(actor=world.owner, context=world.team_context, permission="admin", user=friend)
    assert ContextShare.objects.get().permission == "admin"
    assert share.granted_by == world.owner


def test_context_share_to_a_team_the_actor_cannot_see_is_not_found(world):
    with pytest.raises(NotFound):
        services.context_share(actor=world.owner, context=world.team_context, permission="read", team=world.other_team)
    assert not ContextShare.objects.exists()


def test_context_share_validation(world, make_user):
    inactive = make_user(is_active=False)
    with pytest.raises(ValidationError) as caught:
        services.context_share(actor=world.owner, context=world.team_context, permission="read", user=inactive)
    assert "user" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        services.context_share(actor=world.owner, context=world.team_context, permission="everything", user=inactive)
    assert "permission" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        services.context_share(actor=world.owner, context=world.team_context, permission="read")
    assert set(caught.value.message_dict) == {"user", "team"}


def test_context_unshare(world, make_user, make_share):
    share = make_share(world.team_context, permission="write", user=make_user())
    services.context_unshare(actor=world.owner, share=share)
    assert not ContextShare.objects.exists()


def test_transfer_to_a_user_makes_the_context_personal_once_accepted(world, make_user, make_memory, make_share):
    heir = make_user()
    make_memory(world.team_context)
    kept = make_share(world.team_context, permission="read", user=make_user())
    make_share(world.team_context, permission="write", user=make_user())
    offer = services.context_transfer_offer(actor=world.owner, context=world.team_context, user=heir)
    world.team_context.refresh_from_db()
    assert (world.team_context.scope, world.team_context.owner_team) == ("team", world.team)
    context = services.context_transfer_offer_accept(actor=heir, offer_id=offer.pk, keep_shares=[kept.pk])
    context.refresh_from_db()
    assert (context.scope, context.owner_user, context.owner_team) == ("personal", heir, None)
    assert context.memories.count() == 1
    assert list(context.shares.all()) == [kept]


def test_a_direct_transfer_to_another_user_is_refused_an_offer_is_the_way(world, make_user):
    with pytest.raises(ValidationError):
        services.context_transfer(actor=world.owner, context=world.team_context, user=make_user())
    world.team_context.refresh_from_db()
    assert world.team_context.owner_team == world.team


def test_transfer_between_team_and_organization(world):
    context = services.context_transfer(actor=world.owner, context=world.personal_context, team=world.sibling_team)
    assert (context.scope, context.owner_team, context.owner_user) == ("team", world.sibling_team, None)
    context = services.context_transfer(actor=world.owner, context=context, organization=world.organization)
    assert (context.scope, context.owner_organization, context.owner_team) == ("organization", world.organization, None)


def test_transfer_needs_administer_on_the_new_owner(world, make_user):
    user = make_user()
    personal = services.context_create(actor=user, name="Mine", scope="personal")
    with pytest.raises(NotFound):
        services.context_transfer(actor=user, context=personal, team=world.team)
    world.grant(user, "maintainer", team=world.team)
    with pytest.raises(PermissionDenied):
        services.context_transfer(actor=user, context=personal, team=world.team)
    personal.refresh_from_db()
    assert (personal.scope, personal.owner_user) == ("personal", user)


def test_transfer_to_the_current_owner_is_refused(world):
    with pytest.raises(ValidationError):
        services.context_transfer(actor=world.owner, context=world.team_context, team=world.team)


# ---------------------------------------------------------------------------------------------
# Organizations, teams, memberships
# ---------------------------------------------------------------------------------------------
def test_organization_create_makes_the_creator_owner(make_user):
    founder = make_user()
    organization = services.organization_create(actor=founder, name="Initech", slug="Initech")
    assert organization.slug == "initech"
    assert Membership.objects.get(organization=organization).role == Role.OWNER


def test_organization_slug_must_be_free_and_valid(world):
    for slug in ("acme", "ACME", "has space", "", "x" * 61):
        with pytest.raises(ValidationError) as caught:
            services.organization_create(actor=world.owner, name="Again", slug=slug)
        assert "slug" in caught.value.message_dict, slug
    assert Organization.objects.count() == 2


def test_anonymous_may_create_nothing():
    with pytest.raises(PermissionDenied):
        services.organization_create(actor=AnonymousUser(), name="x", slug="x")


def test_team_create_needs_administer_on_the_organization(world, make_user):
    admin, member, stranger = make_user(), make_user(), make_user()
    world.grant(admin, "admin", organization=world.organization)
    world.grant(member, "member", organization=world.organization)
    team = services.team_create(actor=admin, organization=world.organization, name="New", slug="new")
    assert Membership.objects.get(team=team).user == admin
    with pytest.raises(PermissionDenied):
        services.team_create(actor=member, organization=world.organization, name="Other", slug="other")
    with pytest.raises(NotFound):
        services.team_create(actor=stranger, organization=world.organization, name="Other", slug="other")
    with pytest.raises(ValidationError):
        services.team_create(actor=admin, organization=world.organization, name="Dup", slug="platform")
    assert Team.objects.filter(organization=world.organization).count() == 3


def test_membership_add(world, make_user):
    admin, newcomer = make_user(), make_user()
    world.grant(admin, "admin", team=world.team)
    membership = services.membership_add(actor=admin, user=newcomer, role="maintainer", team=world.team)
    assert (membership.user, membership.role, membership.team) == (newcomer, "maintainer", world.team)
    with pytest.raises(ValidationError) as caught:
        services.membership_add(actor=admin, user=newcomer, role="viewer", team=world.team)
    assert "user" in caught.value.message_dict
    with pytest.raises(ValidationError):
        services.membership_add(actor=admin, user=make_user(is_active=False), role="viewer", team=world.team)


def test_nobody_grants_a_role_above_their_own(world, make_user):
    admin = make_user()
    world.grant(admin, "admin", team=world.team)
    with pytest.raises(PermissionDenied):
        services.membership_add(actor=admin, user=make_user(), role="owner", team=world.team)
    member = Membership.objects.create(user=make_user(), team=world.team, role="member")
    with pytest.raises(PermissionDenied):
        services.membership_set_role(actor=admin, membership=member, role="owner")
    owner = Membership.objects.get(user=world.owner, team=world.team)
    with pytest.raises(PermissionDenied):
        services.membership_set_role(actor=admin, membership=owner, role="viewer")
    with pytest.raises(PermissionDenied):
        services.membership_remove(actor=admin, membership=owner)
    assert Membership.objects.get(pk=owner.pk).role == "owner"


def test_organization_owner_manages_team_members_through_the_organization_role(world, make_user):
    organization_owner = make_user()
    world.grant(organization_owner, "owner", organization=world.organization)
    membership = services.membership_add(actor=organization_owner, user=make_user(), role="owner", team=world.team)
    services.membership_set_role(actor=organization_owner, membership=membership, role="viewer")
    assert Membership.objects.get(pk=membership.pk).role == "viewer"


def test_the_last_owner_can_be_neither_downgraded_nor_removed(world, make_user):
    last = Membership.objects.get(user=world.owner, organization=world.organization)
    with pytest.raises(ValidationError) as caught:
        services.membership_set_role(actor=world.owner, membership=last, role="admin")
    assert "role" in caught.value.message_dict
    with pytest.raises(ValidationError):
        services.membership_remove(actor=world.owner, membership=last)
    assert Membership.objects.get(pk=last.pk).role == "owner"

    second = services.membership_add(actor=world.owner, user=make_user(), role="owner", organization=world.organization)
    services.membership_set_role(actor=world.owner, membership=last, role="admin")
    assert Membership.objects.get(pk=last.pk).role == "admin"
    with pytest.raises(ValidationError):
        services.membership_remove(actor=second.user, membership=second)


def test_a_member_may_leave_but_not_remove_others(world, make_user):
    viewer, other = make_user(), make_user()
    mine = Membership.objects.create(user=viewer, team=world.team, role="viewer")
    theirs = Membership.objects.create(user=other, team=world.team, role="viewer")
    with pytest.raises(PermissionDenied):
        services.membership_remove(actor=viewer, membership=theirs)
    services.membership_remove(actor=viewer, membership=mine)
    assert list(Membership.objects.filter(team=world.team, role="viewer")) == [theirs]


def test_membership_role_must_be_a_known_role(world, make_user):
    with pytest.raises(ValidationError) as caught:
        services.membership_add(actor=world.owner, user=make_user(), role="superuser", team=world.team)
    assert "role" in caught.value.message_dict
