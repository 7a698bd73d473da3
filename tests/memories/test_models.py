"""Database constraints: the rules that hold however a row is written, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from memories.models import Context, ContextShare, Membership, Memory, MemoryTag, Team

pytestmark = pytest.mark.django_db


def _owner_kwargs(world, user, spec: str) -> dict:
    owners = {"user": ("owner_user", user), "team": ("owner_team", world.team),
              "organization": ("owner_organization", world.organization)}
    return dict(owners[name] for name in spec.split("+") if name)


MISMATCHES = [
    ("team", "user"),
    ("organization", "user"),
    ("personal", "team"),
    ("organization", "team"),
    ("personal", "organization"),
    ("team", "organization"),
    ("personal", ""),
    ("team", ""),
    ("personal", "user+team"),
    ("team", "team+organization"),
    ("organization", "user+organization"),
    ("galaxy", "user"),
]


@pytest.mark.parametrize("scope, owners", MISMATCHES)
def test_the_database_rejects_a_context_whose_owner_does_not_match_its_scope(world, make_user, scope, owners):
    user = make_user()
    with pytest.raises(IntegrityError), transaction.atomic():
        Context.objects.create(name="bad", scope=scope, **_owner_kwargs(world, user, owners))
    assert not Context.objects.filter(name="bad").exists()


def test_the_database_rejects_changing_the_scope_without_the_owner(world):
    world.team_context.scope = "personal"
    with pytest.raises(IntegrityError), transaction.atomic():
        world.team_context.save()


@pytest.mark.parametrize("scope, owners", [("personal", "user"), ("team", "team"), ("organization", "organization")])
def test_a_matching_owner_is_accepted(world, make_user, scope, owners):
    Context.objects.create(name="good", scope=scope, **_owner_kwargs(world, make_user(), owners))
    assert Context.objects.filter(name="good").count() == 1


def test_model_validation_reports_the_same_rule_for_the_console(world, make_user):
    context = Context(name="bad", scope="team", owner_user=make_user())
    with pytest.raises(ValidationError) as caught:
        context.full_clean()
    assert "exactly one owner" in str(caught.value)


def test_a_membership_names_exactly_one_team_or_organization(world, make_user):
    user = make_user()
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=user, role="member")
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=user, role="member", team=world.team, organization=world.organization)


def test_a_membership_role_must_be_a_known_role(world, make_user):
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=make_user(), role="superuser", team=world.team)


def test_one_membership_per_user_and_team_or_organization(world, make_user):
    user = make_user()
    Membership.objects.create(user=user, role="member", team=world.team)
    Membership.objects.create(user=user, role="member", organization=world.organization)
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=user, role="admin", team=world.team)
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=user, role="admin", organization=world.organization)


def test_a_share_names_exactly_one_grantee_once(world, make_user):
    user = make_user()
    with pytest.raises(IntegrityError), transaction.atomic():
        ContextShare.objects.create(context=world.team_context, permission="read")
    with pytest.raises(IntegrityError), transaction.atomic():
        ContextShare.objects.create(context=world.team_context, permission="read", user=user, team=world.team)
    with pytest.raises(IntegrityError), transaction.atomic():
        ContextShare.objects.create(context=world.team_context, permission="owner", user=user)
    ContextShare.objects.create(context=world.team_context, permission="read", user=user)
    with pytest.raises(IntegrityError), transaction.atomic():
        ContextShare.objects.create(context=world.team_context, permission="admin", user=user)


def test_team_slugs_are_unique_per_organization(world):
    Team.objects.create(organization=world.other_organization, name="Platform", slug="platform")
    with pytest.raises(IntegrityError), transaction.atomic():
        Team.objects.create(organization=world.organization, name="Platform 2", slug="platform")


def test_a_tag_appears_once_per_memory(world):
    memory = Memory.objects.create(context=world.team_context, content="x")
    MemoryTag.objects.create(memory=memory, name="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        MemoryTag.objects.create(memory=memory, name="a")


def test_deleting_an_owner_never_deletes_contexts_silently(world):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        world.team.delete()
    with pytest.raises(ProtectedError):
        world.owner.delete()
    assert Context.objects.count() == 5


def test_deleting_an_author_keeps_the_memory(world, make_user):
    author = make_user()
    memory = Memory.objects.create(context=world.team_context, content="x", author=author)
    author.delete()
    memory.refresh_from_db()
    assert memory.author is None
