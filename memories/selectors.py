"""Reads of the memories app.

``*_for_user`` / ``*_visible_to`` return what the acting user may see, checking permission
themselves (``NotFound`` for what they may not see, ``PermissionDenied`` for what they may see but
not do); the API reads only through these. ``*_get`` look-ups by id raise ``NotFound`` and leave
the check to the service they feed (with ``visible_to=user``, also ``NotFound`` without a role:
see ``_visible``). Nothing here touches memory content or metadata in SQL.
Why: docs/decisions/permission-checked-in-services.md.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, QuerySet

from accounts.normalisation import normalise_username
from memories.exceptions import NotFound
from memories.models import (
    Context,
    ContextShare,
    ContextTransferOffer,
    Membership,
    Memory,
    MemoryTag,
    Organization,
    Team,
)
from memories.permissions import (
    Action,
    effective_role,
    require,
    visible_contexts_filter,
    visible_organizations_filter,
    visible_teams_filter,
)

# A primary key outside this range cannot exist; refusing it early keeps huge numbers from the
# URL or the body away from database drivers that would overflow on them.
_MAX_ID = 2**63 - 1


def _valid_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_ID


# ---------------------------------------------------------------------------------------------
# Plain look-ups (no permission check: the service that receives the object checks)
# ---------------------------------------------------------------------------------------------
def _visible(obj, visible_to):
    """``obj`` if no viewer is named or the viewer has any role on it; ``NotFound`` otherwise.

    Views resolve the object named in the URL with ``visible_to`` *before* they look at the body,
    so no answer about the body (an unknown username, say) can tell whether a hidden object exists.
    """
    if obj is None or (visible_to is not None and effective_role(visible_to, obj) is None):
        raise NotFound()
    return obj


def context_get(*, context_id: int, visible_to=None) -> Context:
    """Return the context with this id or raise ``NotFound`` (also if ``visible_to`` has no role)."""
    context = (
        Context.objects.select_related("owner_user", "owner_team__organization", "owner_organization")
        .filter(pk=context_id)
        .first()
        if _valid_id(context_id)
        else None
    )
    return _visible(context, visible_to)


def memory_get(*, memory_id: int) -> Memory:
    """Return the memory with this id (with its context) or raise ``NotFound``."""
    memory = Memory.objects.select_related("context", "context__owner_team").filter(pk=memory_id).first() if _valid_id(
        memory_id
    ) else None
    if memory is None:
        raise NotFound()
    return memory


def team_get(*, team_id: int, visible_to=None) -> Team:
    """Return the team with this id or raise ``NotFound`` (also if ``visible_to`` has no role)."""
    team = Team.objects.select_related("organization").filter(pk=team_id).first() if _valid_id(team_id) else None
    return _visible(team, visible_to)


def organization_get(*, organization_id: int, visible_to=None) -> Organization:
    """Return the organization with this id or raise ``NotFound`` (also if ``visible_to`` is no member)."""
    organization = Organization.objects.filter(pk=organization_id).first() if _valid_id(organization_id) else None
    return _visible(organization, visible_to)


def membership_get(*, user_id: int, team: Team | None = None, organization: Organization | None = None) -> Membership:
    """Return ``user_id``'s membership in ``team`` or ``organization`` or raise ``NotFound``."""
    if (team is None) == (organization is None):
        raise ValueError("pass exactly one of team or organization")
    membership = None
    if _valid_id(user_id):
        target = {"team": team} if team is not None else {"organization": organization}
        membership = Membership.objects.select_related("user", "team", "organization").filter(
            user_id=user_id, **target
        ).first()
    if membership is None:
        raise NotFound()
    return membership


def share_get(*, context: Context, share_id: int) -> ContextShare:
    """Return the share ``share_id`` of ``context`` or raise ``NotFound``."""
    share = (
        ContextShare.objects.select_related("context", "user", "team").filter(pk=share_id, context=context).first()
        if _valid_id(share_id)
        else None
    )
    if share is None:
        raise NotFound()
    return share


def active_user_by_username(*, username: str):
    """Return the active user with this (normalised) username, or ``None``."""
    return get_user_model().objects.filter(username=normalise_username(username), is_active=True).first()


def _organization_ids_of(user) -> set[int]:
    """The organizations ``user`` belongs to, directly or through one of its teams."""
    rows = Membership.objects.filter(user=user).values_list("organization_id", "team__organization_id")
    return {organization_id or team_organization_id for organization_id, team_organization_id in rows} - {None}


def user_is_visible_to(*, user, viewer) -> bool:
    """Whether ``viewer`` may know that ``user`` exists: themselves, or someone of a shared organization.

    Membership of the organization or of one of its teams counts alike. Anyone else is answered
    for exactly as a username nobody has (the pen-test's username oracle: share, transfer and
    member endpoints must not tell an existing user of another tenant from an unknown one).
    """
    if user is None or viewer is None or not getattr(viewer, "is_authenticated", False):
        return False
    if user.pk == viewer.pk:
        return True
    organizations = _organization_ids_of(viewer)
    return bool(organizations) and bool(organizations & _organization_ids_of(user))


def active_user_visible_to(*, username: str, viewer):
    """The active user with this username if ``viewer`` may see them (``user_is_visible_to``), else ``None``.

    Both look-ups run whatever the first finds, so a hidden user and an unknown name cost the same.
    """
    user = active_user_by_username(username=username)
    visible = user_is_visible_to(user=user if user is not None else viewer, viewer=viewer)
    return user if user is not None and visible else None


# ---------------------------------------------------------------------------------------------
# Contexts
# ---------------------------------------------------------------------------------------------
def contexts_visible_to(*, user) -> QuerySet[Context]:
    """Return the contexts where ``user`` has any role, by name."""
    return (
        Context.objects.filter(visible_contexts_filter(user))
        .select_related("owner_user", "owner_team__organization", "owner_organization", "created_by")
        .order_by("name", "id")
    )


def context_get_for_user(*, user, context_id: int, action: Action = Action.READ) -> Context:
    """Return the context if ``user`` may ``action`` it; ``NotFound`` / ``PermissionDenied`` otherwise."""
    context = context_get(context_id=context_id)
    require(user, action, context)
    return context


def context_shares_for_user(*, user, context: Context) -> QuerySet[ContextShare]:
    """Return the shares of ``context``; seeing who has access needs the ``share`` right."""
    require(user, Action.SHARE, context)
    return ContextShare.objects.filter(context=context).select_related("user", "team", "granted_by").order_by("id")


# ---------------------------------------------------------------------------------------------
# Memories
# ---------------------------------------------------------------------------------------------
def _memories() -> QuerySet[Memory]:
    return Memory.objects.select_related("author", "context").prefetch_related(
        Prefetch("tags", queryset=MemoryTag.objects.order_by("name"))
    )


def memory_list_for_user(
    *,
    user,
    context: Context | None = None,
    kind: str | None = None,
    tag: str | None = None,
) -> QuerySet[Memory]:
    """Return the memories ``user`` may read, newest first, optionally filtered.

    ``context`` must be one the user may read (``NotFound`` otherwise); without it, memories of
    every visible context are listed. ``tag`` is matched in its normalised form. Tags and authors
    are loaded with the page, so listing costs a fixed number of queries.
    """
    memories = _memories()
    if context is not None:
        require(user, Action.READ, context)
        memories = memories.filter(context=context)
    else:
        memories = memories.filter(context__in=Context.objects.filter(visible_contexts_filter(user)).values("pk"))
    if kind:
        memories = memories.filter(kind=kind)
    if tag:
        memories = memories.filter(tags__name=tag)
    return memories.order_by("-created_at", "-id")


def memory_get_for_user(*, user, memory_id: int) -> Memory:
    """Return the memory if ``user`` may read it; ``NotFound`` otherwise."""
    memory = _memories().filter(pk=memory_id).first() if _valid_id(memory_id) else None
    if memory is None:
        raise NotFound()
    require(user, Action.READ, memory.context)
    return memory


def memory_export_for_user(*, user, context: Context) -> QuerySet[Memory]:
    """Return every memory of ``context``, oldest first, if ``user`` may export it."""
    require(user, Action.EXPORT, context)
    return _memories().filter(context=context).order_by("created_at", "id")


# ---------------------------------------------------------------------------------------------
# Organizations, teams and their members
# ---------------------------------------------------------------------------------------------
def organizations_visible_to(*, user) -> QuerySet[Organization]:
    """Return the organizations ``user`` is a member of, by name."""
    return Organization.objects.filter(visible_organizations_filter(user)).order_by("name", "id")


def organization_get_for_user(*, user, organization_id: int) -> Organization:
    """Return the organization if ``user`` is a member of it; ``NotFound`` otherwise."""
    organization = organization_get(organization_id=organization_id)
    require(user, Action.READ, organization)
    return organization


def teams_visible_to(*, user, organization: Organization | None = None) -> QuerySet[Team]:
    """Return the teams where ``user`` has a role (own membership or organization's), by name."""
    teams = Team.objects.filter(visible_teams_filter(user)).select_related("organization")
    if organization is not None:
        teams = teams.filter(organization=organization)
    return teams.order_by("organization__name", "name", "id")


def team_get_for_user(*, user, team_id: int) -> Team:
    """Return the team if ``user`` has a role on it; ``NotFound`` otherwise."""
    team = team_get(team_id=team_id)
    require(user, Action.READ, team)
    return team


def team_members(*, user, team: Team) -> QuerySet[Membership]:
    """Return the memberships of ``team`` (direct members only), if ``user`` may see the team."""
    require(user, Action.READ, team)
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username", "id")


def organization_members(*, user, organization: Organization) -> QuerySet[Membership]:
    """Return the memberships of ``organization``, if ``user`` is a member of it."""
    require(user, Action.READ, organization)
    return Membership.objects.filter(organization=organization).select_related("user").order_by("user__username", "id")


# ---------------------------------------------------------------------------------------------
# Transfer offers
# ---------------------------------------------------------------------------------------------
def transfer_offers_pending_for(*, user) -> QuerySet[ContextTransferOffer]:
    """The pending offers made to ``user``, newest first, with each context's shares to review.

    Only the recipient's own offers: no permission beyond being the recipient. Call
    ``services.context_transfer_offers_expire`` first so a lapsed offer is not listed.
    """
    return (
        ContextTransferOffer.objects.filter(recipient=user, status=ContextTransferOffer.Status.PENDING)
        .select_related("context", "sender", "recipient")
        .prefetch_related(
            Prefetch("context__shares", queryset=ContextShare.objects.select_related("user", "granted_by"))
        )
        .order_by("-created_at", "-id")
    )
