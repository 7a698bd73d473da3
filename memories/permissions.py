"""Who may do what: the one place the permission rules of the memories app live.

A user's *effective role* on a context is the highest that personal ownership, organization and
team memberships, and shares to the user or their teams give; the role allows the actions in
``ROLE_ACTIONS``. Without a role the object is not even visible (callers answer "not found"), and
staff or superuser flags grant nothing here. The rules as a table: docs/PERMISSIONS.md, checked
cell by cell by ``tests/memories/test_permissions.py``.
Why: docs/decisions/permission-checked-in-services.md.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models
from django.db.models import Exists, OuterRef, Q

from memories.exceptions import NotFound, PermissionDenied
from memories.models import Context, ContextShare, Membership, Organization, Role, Team


class Action(models.TextChoices):
    """Everything one can do to a context (or, for ``read``/``administer``, a team or organization)."""

    READ = "read", "Read"
    CREATE = "create", "Create"
    UPDATE = "update", "Update"
    DELETE = "delete", "Delete"
    SHARE = "share", "Share"
    TRANSFER = "transfer", "Transfer"
    EXPORT = "export", "Export"
    ADMINISTER = "administer", "Administer"


_VIEWER_ACTIONS = frozenset({Action.READ})
_MEMBER_ACTIONS = _VIEWER_ACTIONS | {Action.CREATE, Action.UPDATE}
_MAINTAINER_ACTIONS = _MEMBER_ACTIONS | {Action.DELETE, Action.EXPORT}
_ADMIN_ACTIONS = _MAINTAINER_ACTIONS | {Action.SHARE, Action.ADMINISTER}
_OWNER_ACTIONS = _ADMIN_ACTIONS | {Action.TRANSFER}

# The role × action matrix. Each role has every right of the roles below it.
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.VIEWER: _VIEWER_ACTIONS,
    Role.MEMBER: _MEMBER_ACTIONS,
    Role.MAINTAINER: _MAINTAINER_ACTIONS,
    Role.ADMIN: _ADMIN_ACTIONS,
    Role.OWNER: _OWNER_ACTIONS,
}

# What a share grants on its one context, expressed as the role it is worth.
SHARE_ROLES: dict[str, Role] = {
    ContextShare.Permission.READ: Role.VIEWER,
    ContextShare.Permission.WRITE: Role.MEMBER,
    ContextShare.Permission.ADMIN: Role.ADMIN,
}

# No share is worth more than this, so a user who already has it needs no share lookup.
_HIGHEST_SHARE_ROLE = Role.ADMIN


def role_allows(role: Role | str | None, action: Action | str) -> bool:
    """Return whether ``role`` (``None``: no role at all) allows ``action``."""
    if role is None:
        return False
    return Action(action) in ROLE_ACTIONS[Role(role)]


def highest_role(roles: Iterable[Role | str | None]) -> Role | None:
    """Return the highest of ``roles`` (``None`` entries ignored), or ``None`` if there is none."""
    present = [Role(role) for role in roles if role is not None]
    return max(present, key=lambda role: role.rank) if present else None


def _is_principal(user) -> bool:
    """Only an authenticated, active account holds any role."""
    return user is not None and getattr(user, "is_authenticated", False) and getattr(user, "is_active", False)


# ---------------------------------------------------------------------------------------------
# Contexts
# ---------------------------------------------------------------------------------------------
def context_role(user, context: Context) -> Role | None:
    """Return ``user``'s effective role on ``context`` (at most two queries), or ``None``."""
    if not _is_principal(user):
        return None
    if context.scope == Context.Scope.PERSONAL and context.owner_user_id == user.pk:
        return Role.OWNER

    if context.scope == Context.Scope.ORGANIZATION:
        relevant = Q(organization_id=context.owner_organization_id)
    elif context.scope == Context.Scope.TEAM:
        # The team's own members, and the members of the organization the team belongs to.
        relevant = Q(team_id=context.owner_team_id) | Q(organization__teams__id=context.owner_team_id)
    else:
        relevant = None
    roles: list[Role | str | None] = []
    if relevant is not None:
        roles.extend(Membership.objects.filter(relevant, user_id=user.pk).values_list("role", flat=True))

    best = highest_role(roles)
    if best is not None and best.rank >= _HIGHEST_SHARE_ROLE.rank:
        return best
    permissions = ContextShare.objects.filter(context_id=context.pk).filter(
        Q(user_id=user.pk) | Q(team__memberships__user_id=user.pk)
    ).values_list("permission", flat=True)
    roles.extend(SHARE_ROLES[permission] for permission in permissions)
    return highest_role(roles)


def context_roles(user, contexts: Iterable[Context]) -> dict[int, Role | None]:
    """Return ``{context id: effective role}`` for many contexts in at most three queries.

    Pass contexts loaded with ``select_related("owner_team")`` (the selectors do) to save the
    third query, which only looks up the organization of team-owned contexts.
    """
    contexts = list(contexts)
    if not _is_principal(user) or not contexts:
        return {context.pk: None for context in contexts}

    organization_roles: dict[int, Role | str] = {}
    team_roles: dict[int, Role | str] = {}
    for team_id, organization_id, role in Membership.objects.filter(user_id=user.pk).values_list(
        "team_id", "organization_id", "role"
    ):
        if team_id is not None:
            team_roles[team_id] = role
        else:
            organization_roles[organization_id] = role

    team_organizations: dict[int, int] = {}
    unresolved: set[int] = set()
    for context in contexts:
        if context.scope != Context.Scope.TEAM:
            continue
        if Context.owner_team.is_cached(context):
            team_organizations[context.owner_team_id] = context.owner_team.organization_id
        else:
            unresolved.add(context.owner_team_id)
    if unresolved:
        team_organizations.update(Team.objects.filter(pk__in=unresolved).values_list("id", "organization_id"))

    share_roles: dict[int, list[Role]] = {}
    for context_id, permission in ContextShare.objects.filter(
        Q(user_id=user.pk) | Q(team_id__in=list(team_roles)), context_id__in=[context.pk for context in contexts]
    ).values_list("context_id", "permission"):
        share_roles.setdefault(context_id, []).append(SHARE_ROLES[permission])

    result: dict[int, Role | None] = {}
    for context in contexts:
        roles: list[Role | str | None] = list(share_roles.get(context.pk, []))
        if context.scope == Context.Scope.PERSONAL:
            roles.append(Role.OWNER if context.owner_user_id == user.pk else None)
        elif context.scope == Context.Scope.ORGANIZATION:
            roles.append(organization_roles.get(context.owner_organization_id))
        else:
            roles.append(team_roles.get(context.owner_team_id))
            roles.append(organization_roles.get(team_organizations.get(context.owner_team_id)))
        result[context.pk] = highest_role(roles)
    return result


def visible_contexts_filter(user) -> Q:
    """Return a ``Q`` on ``Context`` matching exactly the contexts where ``user`` has any role.

    Kept in step with ``context_role``: a context matches if and only if that returns a role.
    Subqueries, not joins, so the result has no duplicate rows to remove.
    """
    if not _is_principal(user):
        return Q(pk__in=[])
    memberships = Membership.objects.filter(user_id=user.pk)
    organization_ids = memberships.filter(organization__isnull=False).values("organization_id")
    team_ids = memberships.filter(team__isnull=False).values("team_id")
    shared = ContextShare.objects.filter(context_id=OuterRef("pk")).filter(Q(user_id=user.pk) | Q(team_id__in=team_ids))
    return (
        Q(scope=Context.Scope.PERSONAL, owner_user_id=user.pk)
        | Q(scope=Context.Scope.ORGANIZATION, owner_organization_id__in=organization_ids)
        | Q(scope=Context.Scope.TEAM, owner_team_id__in=team_ids)
        | Q(scope=Context.Scope.TEAM, owner_team__organization_id__in=organization_ids)
        | Q(Exists(shared))
    )


# ---------------------------------------------------------------------------------------------
# Teams and organizations
# ---------------------------------------------------------------------------------------------
def team_role(user, team: Team) -> Role | None:
    """Return ``user``'s role on ``team``: the higher of the team role and the organization role."""
    if not _is_principal(user):
        return None
    return highest_role(
        Membership.objects.filter(
            Q(team_id=team.pk) | Q(organization_id=team.organization_id), user_id=user.pk
        ).values_list("role", flat=True)
    )


def organization_role(user, organization: Organization) -> Role | None:
    """Return ``user``'s role in ``organization`` (team memberships do not count here)."""
    if not _is_principal(user):
        return None
    return highest_role(
        Membership.objects.filter(organization_id=organization.pk, user_id=user.pk).values_list("role", flat=True)
    )


def visible_teams_filter(user) -> Q:
    """Return a ``Q`` on ``Team`` matching the teams where ``user`` has a role (see ``team_role``)."""
    if not _is_principal(user):
        return Q(pk__in=[])
    memberships = Membership.objects.filter(user_id=user.pk)
    return Q(pk__in=memberships.filter(team__isnull=False).values("team_id")) | Q(
        organization_id__in=memberships.filter(organization__isnull=False).values("organization_id")
    )


def visible_organizations_filter(user) -> Q:
    """Return a ``Q`` on ``Organization`` matching the organizations where ``user`` is a member."""
    if not _is_principal(user):
        return Q(pk__in=[])
    return Q(pk__in=Membership.objects.filter(user_id=user.pk, organization__isnull=False).values("organization_id"))


# ---------------------------------------------------------------------------------------------
# The questions callers ask
# ---------------------------------------------------------------------------------------------
def effective_role(user, target: Context | Team | Organization) -> Role | None:
    """Return ``user``'s effective role on a context, a team or an organization."""
    if isinstance(target, Context):
        return context_role(user, target)
    if isinstance(target, Team):
        return team_role(user, target)
    if isinstance(target, Organization):
        return organization_role(user, target)
    raise TypeError(f"no permission rules for {type(target).__name__}")


def can(user, action: Action | str, target: Context | Team | Organization) -> bool:
    """Return whether ``user`` may perform ``action`` on ``target``."""
    return role_allows(effective_role(user, target), action)


def require(user, action: Action | str, target: Context | Team | Organization) -> Role:
    """Return ``user``'s role on ``target`` if it allows ``action``; raise otherwise.

    Raises ``NotFound`` when the user has no role at all (may not know the target exists) and
    ``PermissionDenied`` when the user may see the target but not do this.
    """
    role = effective_role(user, target)
    if role is None:
        raise NotFound()
    if not role_allows(role, action):
        raise PermissionDenied()
    return role
