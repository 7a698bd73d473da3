"""The permission matrix: every role × action, through every way of holding a role.

The expected matrix is written out here independently of ``memories.permissions`` so that a
change to the rules fails these tests until the documentation (docs/PERMISSIONS.md) is changed
with it.
"""

from __future__ import annotations

import pytest

from memories import selectors
from memories.exceptions import NotFound, PermissionDenied
from memories.models import Context, Role
from memories.permissions import (
    Action,
    can,
    context_role,
    context_roles,
    organization_role,
    require,
    team_role,
)

pytestmark = pytest.mark.django_db

ACTIONS = ["read", "create", "update", "delete", "share", "transfer", "export", "administer"]
EXPECTED = {
    "viewer": {"read"},
    "member": {"read", "create", "update"},
    "maintainer": {"read", "create", "update", "delete", "export"},
    "admin": {"read", "create", "update", "delete", "export", "share", "administer"},
    "owner": set(ACTIONS),
}
ROLES = list(EXPECTED)
SHARE_LEVELS = {"read": "viewer", "write": "member", "admin": "admin"}


def test_the_action_enum_is_exactly_the_documented_actions():
    assert sorted(Action.values) == sorted(ACTIONS)


def test_roles_are_ranked_viewer_to_owner():
    assert [role.rank for role in Role] == [0, 1, 2, 3, 4]
    assert [str(role) for role in sorted(Role, key=lambda role: role.rank)] == ROLES


def _assert_role_and_actions(user, context, role: str | None, action: str):
    assert context_role(user, context) == role
    expected = role is not None and action in EXPECTED[role]
    assert can(user, action, context) is expected
    if role is None:
        with pytest.raises(NotFound):
            require(user, action, context)
    elif expected:
        assert require(user, action, context) == role
    else:
        with pytest.raises(PermissionDenied):
            require(user, action, context)
    # Visibility in lists agrees with the single-object rule.
    visible = selectors.contexts_visible_to(user=user).filter(pk=context.pk).exists()
    assert visible is (role is not None)


# ---------------------------------------------------------------------------------------------
# Roles held through memberships
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("role", ROLES)
def test_organization_role_applies_to_organization_contexts(world, make_user, role, action):
    user = make_user()
    world.grant(user, role, organization=world.organization)
    _assert_role_and_actions(user, world.organization_context, role, action)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("role", ROLES)
def test_organization_role_applies_to_its_teams_contexts(world, make_user, role, action):
    user = make_user()
    world.grant(user, role, organization=world.organization)
    _assert_role_and_actions(user, world.team_context, role, action)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("role", ROLES)
def test_team_role_applies_to_team_contexts(world, make_user, role, action):
    user = make_user()
    world.grant(user, role, team=world.team)
    _assert_role_and_actions(user, world.team_context, role, action)


@pytest.mark.parametrize("action", ACTIONS)
def test_owner_of_a_personal_context_may_do_everything(world, action):
    _assert_role_and_actions(world.owner, world.personal_context, "owner", action)


# ---------------------------------------------------------------------------------------------
# Roles held through shares
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("permission", list(SHARE_LEVELS))
def test_share_to_a_user_grants_its_level(world, make_user, make_share, permission, action):
    user = make_user()
    make_share(world.team_context, permission=permission, user=user)
    _assert_role_and_actions(user, world.team_context, SHARE_LEVELS[permission], action)


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("permission", list(SHARE_LEVELS))
def test_share_to_a_team_grants_its_level_to_every_member(world, make_user, make_share, permission, action):
    # A viewer of a team in another organization: the share, not the team role, sets the level.
    user = make_user()
    world.grant(user, "viewer", team=world.other_team)
    make_share(world.team_context, permission=permission, team=world.other_team)
    _assert_role_and_actions(user, world.team_context, SHARE_LEVELS[permission], action)


@pytest.mark.parametrize("permission", list(SHARE_LEVELS))
def test_a_share_grants_rights_on_its_one_context_only(world, make_user, make_share, permission):
    user = make_user()
    make_share(world.team_context, permission=permission, user=user)
    assert context_role(user, world.sibling_team_context) is None
    assert context_role(user, world.organization_context) is None
    assert team_role(user, world.team) is None


# ---------------------------------------------------------------------------------------------
# No role: not even visible
# ---------------------------------------------------------------------------------------------
NO_ROLE_CASES = {
    "stranger": lambda world, user: None,
    "member of a sibling team": lambda world, user: world.grant(user, "owner", team=world.sibling_team),
    "owner of another organization": lambda world, user: world.grant(
        user, "owner", organization=world.other_organization
    ),
    "owner of a team in another organization": lambda world, user: world.grant(user, "owner", team=world.other_team),
}


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("case", list(NO_ROLE_CASES))
def test_without_a_role_the_team_context_is_invisible(world, make_user, case, action):
    user = make_user()
    NO_ROLE_CASES[case](world, user)
    _assert_role_and_actions(user, world.team_context, None, action)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_personal_context_is_invisible_to_the_organization_owner(world, make_user, action):
    colleague = make_user()
    context = Context.objects.create(name="Private", scope="personal", owner_user=colleague)
    _assert_role_and_actions(world.owner, context, None, action)


def test_team_membership_does_not_reach_organization_contexts(world, make_user):
    user = make_user()
    world.grant(user, "owner", team=world.team)
    assert context_role(user, world.organization_context) is None


def test_a_deactivated_account_has_no_role(world):
    world.owner.is_active = False
    world.owner.save()
    assert context_role(world.owner, world.personal_context) is None
    assert context_role(world.owner, world.organization_context) is None
    assert not selectors.contexts_visible_to(user=world.owner).exists()


def test_anonymous_has_no_role(world):
    from django.contrib.auth.models import AnonymousUser

    anonymous = AnonymousUser()
    assert context_role(anonymous, world.organization_context) is None
    assert not can(anonymous, "read", world.personal_context)
    assert not selectors.contexts_visible_to(user=anonymous).exists()


def test_staff_and_superuser_flags_grant_nothing(world, make_user):
    admin = make_user(is_staff=True, is_superuser=True)
    assert context_role(admin, world.team_context) is None


# ---------------------------------------------------------------------------------------------
# The highest of several roles wins
# ---------------------------------------------------------------------------------------------
def test_highest_of_organization_and_team_role(world, make_user):
    user = make_user()
    world.grant(user, "viewer", organization=world.organization)
    world.grant(user, "admin", team=world.team)
    assert context_role(user, world.team_context) == "admin"
    assert context_role(user, world.sibling_team_context) == "viewer"
    assert context_role(user, world.organization_context) == "viewer"


def test_a_share_raises_but_never_lowers_a_role(world, make_user, make_share):
    user = make_user()
    world.grant(user, "viewer", team=world.team)
    world.grant(user, "maintainer", team=world.sibling_team)
    make_share(world.team_context, permission="write", user=user)
    make_share(world.sibling_team_context, permission="read", user=user)
    assert context_role(user, world.team_context) == "member"
    assert context_role(user, world.sibling_team_context) == "maintainer"


def test_user_share_and_team_share_combine_to_the_higher(world, make_user, make_share):
    user = make_user()
    world.grant(user, "member", team=world.other_team)
    make_share(world.team_context, permission="read", user=user)
    make_share(world.team_context, permission="admin", team=world.other_team)
    assert context_role(user, world.team_context) == "admin"


# ---------------------------------------------------------------------------------------------
# Teams and organizations themselves
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_team_role_is_the_higher_of_team_and_organization_membership(world, make_user, role):
    user = make_user()
    world.grant(user, role, organization=world.organization)
    assert team_role(user, world.team) == role
    assert can(user, "administer", world.team) is (role in ("admin", "owner"))
    assert team_role(user, world.other_team) is None


def test_organization_role_ignores_team_memberships(world, make_user):
    user = make_user()
    world.grant(user, "owner", team=world.team)
    assert organization_role(user, world.organization) is None
    with pytest.raises(NotFound):
        require(user, "read", world.organization)


# ---------------------------------------------------------------------------------------------
# The batch computation agrees with the single one, in a bounded number of queries
# ---------------------------------------------------------------------------------------------
def test_context_roles_agrees_with_context_role_for_everyone(world, make_user, make_share):
    people = [world.owner]
    for role in ROLES:
        for target in ({"organization": world.organization}, {"team": world.team}, {"team": world.other_team}):
            user = make_user()
            world.grant(user, role, **target)
            people.append(user)
    for permission in SHARE_LEVELS:
        user = make_user()
        make_share(world.sibling_team_context, permission=permission, user=user)
        people.append(user)
    make_share(world.organization_context, permission="write", team=world.other_team)
    contexts = list(Context.objects.all())
    for user in people:
        batch = context_roles(user, contexts)
        assert batch == {context.pk: context_role(user, context) for context in contexts}, user.username


def test_context_roles_costs_at_most_three_queries(world, make_user, django_assert_max_num_queries):
    user = make_user()
    world.grant(user, "member", organization=world.organization)
    contexts = list(Context.objects.all())
    with django_assert_max_num_queries(3):
        context_roles(user, contexts)
    preloaded = list(Context.objects.select_related("owner_team"))
    with django_assert_max_num_queries(2):
        context_roles(user, preloaded)


def test_context_role_costs_at_most_two_queries(world, make_user, django_assert_max_num_queries):
    user = make_user()
    world.grant(user, "viewer", organization=world.organization)
    context = Context.objects.get(pk=world.team_context.pk)
    with django_assert_max_num_queries(2):
        assert context_role(user, context) == "viewer"
