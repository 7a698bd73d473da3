"""Every write of the memories app: one function per use case.

Contract (Zulip's): **each service checks permission itself** (``memories.permissions.require``)
on the rows it has read inside its own ``transaction.atomic()``, takes the acting user as
``actor=``, and records its audit event in that transaction, naming changed fields, never their
values. Reads that disclose memory content are services too, since each is recorded (OWASP ASVS
4.0.3 V8.3.5). Errors: ``NotFound``, ``PermissionDenied``, ``ValidationError`` (field → messages).
Why: docs/decisions/permission-checked-in-services.md.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.utils import timezone

import audit
from accounts.services.notifications import notification_schedule
from memories import conf, selectors, validation
from memories.auditing import audit_refusals
from memories.exceptions import NotFound, PermissionDenied
from memories.models import (
    Context,
    ContextShare,
    ContextTransferOffer,
    Membership,
    Memory,
    MemoryTag,
    Organization,
    Role,
    Team,
)
from memories.permissions import Action, can, require

SLUG_MAX_LENGTH = 60
# The one answer for a username that is unknown, inactive, or (in the API, which resolves
# usernames with ``selectors.active_user_visible_to``) of a user the actor may not see.
NO_SUCH_USER = "No active user with this username."


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def _require_principal(actor) -> None:
    """Anonymous and deactivated accounts may write nothing."""
    if actor is None or not getattr(actor, "is_authenticated", False) or not getattr(actor, "is_active", False):
        raise PermissionDenied()


def _clean_all(checks: dict[str, tuple[Callable[[Any], Any], Any]]) -> dict[str, Any]:
    """Run each field's cleaner; raise one ``ValidationError`` naming every bad field at once."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for field, (cleaner, value) in checks.items():
        try:
            cleaned[field] = cleaner(value)
        except ValidationError as error:
            for name, messages in error.message_dict.items():
                errors.setdefault(name, []).extend(messages)
    if errors:
        raise ValidationError(errors)
    return cleaned


def _clean_choice(field: str, choices: type) -> Callable[[Any], str]:
    def clean(value: Any) -> str:
        if not isinstance(value, str) or value not in choices.values:
            raise ValidationError({field: [f"Must be one of: {', '.join(choices.values)}."]})
        return value

    return clean


def _clean_slug(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError({"slug": ["This field may not be blank."]})
    if len(value) > SLUG_MAX_LENGTH:
        raise ValidationError({"slug": [f"Ensure this field has no more than {SLUG_MAX_LENGTH} characters."]})
    try:
        validate_slug(value)
    except ValidationError:
        raise ValidationError({"slug": ["Use only letters, numbers, underscores or hyphens."]}) from None
    return value.lower()


def _exactly_one(**candidates: Any) -> tuple[str, Any]:
    """Return the one (name, value) pair that is set, or raise naming all the candidate fields."""
    given = [(name, value) for name, value in candidates.items() if value is not None]
    if len(given) != 1:
        message = f"Give exactly one of: {', '.join(candidates)}."
        raise ValidationError({name: [message] for name in candidates})
    return given[0]


def _locked(queryset, pk: int):
    """Re-read a row under ``SELECT ... FOR UPDATE``; ``NotFound`` if it vanished meanwhile."""
    row = queryset.select_for_update(of=("self",)).filter(pk=pk).first()
    if row is None:
        raise NotFound()
    return row


def _replace_tags(memory: Memory, tags: list[str]) -> None:
    MemoryTag.objects.filter(memory=memory).delete()
    MemoryTag.objects.bulk_create([MemoryTag(memory=memory, name=name) for name in tags])


def _lock_membership_target(*, team: Team | None, organization: Organization | None) -> Team | Organization:
    """Lock the team or organization row so concurrent membership changes run one at a time.

    Two admins demoting the last two owners at once would otherwise each see one other owner
    left and both succeed. (SQLite serialises writers already: transactions begin IMMEDIATE.)
    """
    if team is not None:
        return _locked(Team.objects.select_related("organization"), team.pk)
    return _locked(Organization.objects, organization.pk)


def _owner_type(context: Context) -> str:
    return {Context.Scope.PERSONAL: "user", Context.Scope.TEAM: "team"}.get(context.scope, "organization")


def _record_membership(action, *, actor, membership: Membership, previous_role: str | None) -> None:
    """Record a membership change: who, in which team or organization, from which role to which.

    Role changes are privilege changes (the monitoring app alerts on grants of admin and owner).
    """
    removed = action == audit.Action.MEMBERSHIP_REMOVED
    audit.record(
        action=action,
        actor=actor,
        subject=membership.user,
        target=membership.team or membership.organization,
        context={
            "role": None if removed else membership.role,
            "previous_role": previous_role,
            "scope": "team" if membership.team_id else "organization",
        },
    )


def _owner_count(target: Team | Organization) -> int:
    field = "team" if isinstance(target, Team) else "organization"
    return Membership.objects.filter(**{field: target}, role=Role.OWNER).count()


# ---------------------------------------------------------------------------------------------
# Memories
# ---------------------------------------------------------------------------------------------
@audit_refusals("memory.create", target_argument="context")
def memory_create(
    *,
    actor,
    context: Context,
    content: str,
    kind: str = Memory.Kind.NOTE,
    source: str = "",
    metadata: dict | None = None,
    tags: Iterable[str] = (),
) -> Memory:
    """Create a memory in ``context``, written by ``actor``.

    Checks permission itself: ``actor`` needs ``create`` on the context.
    """
    with transaction.atomic():
        require(actor, Action.CREATE, context)
        cleaned = _clean_all(
            {
                "content": (validation.clean_content, content),
                "kind": (_clean_choice("kind", Memory.Kind), kind),
                "source": (validation.clean_source, source),
                "metadata": (validation.clean_metadata, {} if metadata is None else metadata),
                "tags": (validation.clean_tags, list(tags) if not isinstance(tags, str) else tags),
            }
        )
        tag_names = cleaned.pop("tags")
        memory = Memory.objects.create(context=context, author=actor, **cleaned)
        _replace_tags(memory, tag_names)
        audit.record(
            action=audit.Action.MEMORY_CREATED,
            actor=actor,
            target=memory,
            context={"context_id": context.pk, "kind": memory.kind, "tag_count": len(tag_names)},
        )
    return memory


@audit_refusals("memory.update", target_argument="memory")
def memory_update(
    *,
    actor,
    memory: Memory,
    content: str | None = None,
    kind: str | None = None,
    source: str | None = None,
    metadata: dict | None = None,
    tags: Iterable[str] | None = None,
) -> Memory:
    """Change the given fields of ``memory`` (``None`` leaves a field as it is); tags are replaced.

    Checks permission itself: ``actor`` needs ``update`` on the memory's context. A memory does
    not move between contexts (that would need rights on both; delete and create instead).
    """
    with transaction.atomic():
        memory = _locked(Memory.objects.select_related("context"), memory.pk)
        require(actor, Action.UPDATE, memory.context)
        checks: dict[str, tuple[Callable[[Any], Any], Any]] = {}
        if content is not None:
            checks["content"] = (validation.clean_content, content)
        if kind is not None:
            checks["kind"] = (_clean_choice("kind", Memory.Kind), kind)
        if source is not None:
            checks["source"] = (validation.clean_source, source)
        if metadata is not None:
            checks["metadata"] = (validation.clean_metadata, metadata)
        if tags is not None:
            checks["tags"] = (validation.clean_tags, list(tags) if not isinstance(tags, str) else tags)
        cleaned = _clean_all(checks)
        tag_names = cleaned.pop("tags", None)
        for field, value in cleaned.items():
            setattr(memory, field, value)
        # Saved even when only the tags change, so updated_at tells when the memory last changed.
        memory.save()
        if tag_names is not None:
            _replace_tags(memory, tag_names)
        changed = sorted([*cleaned, *(["tags"] if tag_names is not None else [])])
        audit.record(
            action=audit.Action.MEMORY_UPDATED,
            actor=actor,
            target=memory,
            context={"context_id": memory.context_id, "fields": changed},
        )
    return memory


@audit_refusals("memory.delete", target_argument="memory")
def memory_delete(*, actor, memory: Memory) -> None:
    """Delete ``memory`` and its tags.

    Checks permission itself: ``actor`` needs ``delete`` on the memory's context.
    """
    with transaction.atomic():
        memory = _locked(Memory.objects.select_related("context"), memory.pk)
        require(actor, Action.DELETE, memory.context)
        audit.record(
            action=audit.Action.MEMORY_DELETED, actor=actor, target=memory, context={"context_id": memory.context_id}
        )
        memory.delete()


# ---------------------------------------------------------------------------------------------
# Contexts
# ---------------------------------------------------------------------------------------------
@audit_refusals("context.create")
def context_create(
    *,
    actor,
    name: str,
    scope: str,
    team: Team | None = None,
    organization: Organization | None = None,
) -> Context:
    """Create a context owned by ``actor`` (personal), ``team`` or ``organization``.

    Checks permission itself: anyone active may create a personal context (owned by themselves,
    never by someone else); a team or organization context needs ``administer`` on its owner.
    """
    _require_principal(actor)
    with transaction.atomic():
        cleaned = _clean_all(
            {"name": (validation.clean_name, name), "scope": (_clean_choice("scope", Context.Scope), scope)}
        )
        scope = cleaned["scope"]
        owners: dict[str, Any] = {}
        if scope == Context.Scope.PERSONAL:
            if team is not None or organization is not None:
                raise ValidationError({"scope": ["A personal context is owned by you; give no team or organization."]})
            owners["owner_user"] = actor
        elif scope == Context.Scope.TEAM:
            if team is None or organization is not None:
                raise ValidationError({"team": ["A team context needs a team (and no organization)."]})
            require(actor, Action.ADMINISTER, team)
            owners["owner_team"] = team
        else:
            if organization is None or team is not None:
                raise ValidationError(
                    {"organization": ["An organization context needs an organization (and no team)."]}
                )
            require(actor, Action.ADMINISTER, organization)
            owners["owner_organization"] = organization
        context = Context.objects.create(name=cleaned["name"], scope=scope, created_by=actor, **owners)
        audit.record(action=audit.Action.CONTEXT_CREATED, actor=actor, target=context, context={"scope": scope})
    return context


@audit_refusals("context.update", target_argument="context")
def context_update(*, actor, context: Context, name: str | None = None) -> Context:
    """Change the given fields of ``context`` (``None`` leaves a field as it is): its name.

    Checks permission itself: ``actor`` needs ``administer`` on the context. Scope and owner
    change only through ``context_transfer``.
    """
    with transaction.atomic():
        context = _locked(Context.objects, context.pk)
        require(actor, Action.ADMINISTER, context)
        if name is not None:
            context.name = _clean_all({"name": (validation.clean_name, name)})["name"]
            context.save(update_fields=["name", "updated_at"])
        audit.record(
            action=audit.Action.CONTEXT_UPDATED,
            actor=actor,
            target=context,
            context={"fields": ["name"] if name is not None else []},
        )
    return context


@audit_refusals("context.delete", target_argument="context")
def context_delete(*, actor, context: Context) -> None:
    """Delete ``context`` with all its memories, tags and shares.

    Checks permission itself: ``actor`` needs ``administer`` on the context.
    """
    with transaction.atomic():
        context = _locked(Context.objects, context.pk)
        require(actor, Action.ADMINISTER, context)
        audit.record(
            action=audit.Action.CONTEXT_DELETED,
            actor=actor,
            target=context,
            context={"memory_count": context.memories.count()},
        )
        context.delete()


@audit_refusals("context.share", target_argument="context")
def context_share(
    *,
    actor,
    context: Context,
    permission: str,
    user=None,
    team: Team | None = None,
) -> ContextShare:
    """Grant ``permission`` (read, write or admin) on ``context`` to one ``user`` or one ``team``.

    An existing grant to the same user or team is replaced, so there is one grant per grantee.
    Checks permission itself: ``actor`` needs ``share`` on the context, and a team grantee must be
    a team the actor can see (``NotFound`` otherwise, so team ids cannot be probed).
    """
    with transaction.atomic():
        context = _locked(Context.objects, context.pk)
        require(actor, Action.SHARE, context)
        cleaned = _clean_all({"permission": (_clean_choice("permission", ContextShare.Permission), permission)})
        field, grantee = _exactly_one(user=user, team=team)
        if field == "team":
            require(actor, Action.READ, grantee)
        elif not grantee.is_active:
            raise ValidationError({"user": [NO_SUCH_USER]})
        share, _created = ContextShare.objects.update_or_create(
            context=context,
            **{field: grantee},
            defaults={"permission": cleaned["permission"], "granted_by": actor},
        )
        audit.record(
            action=audit.Action.CONTEXT_SHARED,
            actor=actor,
            subject=grantee if field == "user" else None,
            target=context,
            context={"permission": share.permission, "grantee_type": field, "grantee_id": grantee.pk},
        )
    return share


@audit_refusals("context.unshare", target_argument="share")
def context_unshare(*, actor, share: ContextShare) -> None:
    """Withdraw ``share``.

    Checks permission itself: ``actor`` needs ``share`` on the shared context.
    """
    with transaction.atomic():
        context = _locked(Context.objects, share.context_id)
        require(actor, Action.SHARE, context)
        audit.record(
            action=audit.Action.CONTEXT_UNSHARED,
            actor=actor,
            subject=share.user,
            target=context,
            context={
                "permission": share.permission,
                "grantee_type": "user" if share.user_id else "team",
                "grantee_id": share.user_id or share.team_id,
            },
        )
        ContextShare.objects.filter(pk=share.pk).delete()


def _move(context: Context, *, field: str, new_owner) -> tuple[dict, dict]:
    """Give ``context`` to ``new_owner`` (the kind ``field`` names); return (from, to) for the event."""
    scope = {
        "user": Context.Scope.PERSONAL, "team": Context.Scope.TEAM, "organization": Context.Scope.ORGANIZATION
    }[field]
    previous = {"scope": context.scope, "owner_type": _owner_type(context), "owner_id": context.owner.pk}
    context.scope = scope
    context.owner_user = new_owner if field == "user" else None
    context.owner_team = new_owner if field == "team" else None
    context.owner_organization = new_owner if field == "organization" else None
    context.save(update_fields=["scope", "owner_user", "owner_team", "owner_organization", "updated_at"])
    return previous, {"scope": scope, "owner_type": field, "owner_id": new_owner.pk}


@audit_refusals("context.transfer", target_argument="context")
def context_transfer(
    *,
    actor,
    context: Context,
    user=None,
    team: Team | None = None,
    organization: Organization | None = None,
) -> Context:
    """Give ``context`` at once to a team or an organization, or to ``actor`` themselves.

    Checks permission itself: ``actor`` needs ``transfer`` on the context (owners only) and
    ``administer`` on a new team or organization owner, so nobody can push data into a group they
    do not run; that administrator's role is the target organization's consent, across
    organizations too. ``user`` may only be ``actor`` (taking a team context into their own
    personal space needs nobody else's consent). Memories and shares stay with the context. A
    transfer to another user is an offer that user accepts: ``context_transfer_offer``.
    """
    with transaction.atomic():
        context = _locked(Context.objects, context.pk)
        require(actor, Action.TRANSFER, context)
        field, new_owner = _exactly_one(user=user, team=team, organization=organization)
        if field == "user" and new_owner.pk != actor.pk:
            raise ValidationError({"user": ["A context is given to another user by an offer they accept."]})
        if field != "user":
            require(actor, Action.ADMINISTER, new_owner)
        if context.owner == new_owner and _owner_type(context) == field:
            raise ValidationError({field: ["The context already belongs to this owner."]})
        previous, to = _move(context, field=field, new_owner=new_owner)
        audit.record(
            action=audit.Action.CONTEXT_TRANSFERRED,
            actor=actor,
            subject=new_owner if field == "user" else None,
            target=context,
            context={"from": previous, "to": to},
        )
    return context


# ---------------------------------------------------------------------------------------------
# Transfer offers: a context given to a user moves only when that user accepts
# ---------------------------------------------------------------------------------------------
OFFER_NOT_PENDING = "This offer is no longer pending."


def _offer_facts(offer: ContextTransferOffer) -> dict[str, Any]:
    return {
        "offer_id": offer.pk,
        "sender_id": offer.sender_id,
        "recipient_id": offer.recipient_id,
        "expires_at": offer.expires_at.isoformat(),
    }


def context_transfer_offers_expire(*, now=None) -> int:
    """Mark every pending offer past its ``expires_at`` as expired, one audit event each.

    Permission: none (housekeeping; the services below call it before they read offers, in its
    own transaction, so an expiry is kept even when the request that found it is refused).
    Returns how many offers expired.
    """
    now = now or timezone.now()
    expired = 0
    with transaction.atomic():
        overdue = ContextTransferOffer.objects.select_for_update().filter(
            status=ContextTransferOffer.Status.PENDING, expires_at__lte=now
        )
        for offer in overdue:
            offer.status = ContextTransferOffer.Status.EXPIRED
            offer.decided_at = now
            offer.save(update_fields=["status", "decided_at"])
            audit.record(
                action=audit.Action.CONTEXT_TRANSFER_EXPIRED,
                subject=offer.recipient,
                target=offer.context,
                context=_offer_facts(offer),
            )
            expired += 1
    return expired


@audit_refusals("context.transfer", target_argument="context")
def context_transfer_offer(*, actor, context: Context, user, base_url: str = "") -> ContextTransferOffer:
    """Offer ``context`` to ``user``: nothing moves until ``user`` accepts; ``user`` is emailed.

    Checks permission itself: ``actor`` needs ``transfer`` on the context (owners only). The caller
    resolved ``user`` to someone ``actor`` may see (the API: ``selectors.active_user_visible_to``).
    One offer per context is pending at a time; it lapses after ``MEMORIES_TRANSFER_OFFER_MAX_AGE``.
    """
    context_transfer_offers_expire()
    with transaction.atomic():
        context = _locked(Context.objects, context.pk)
        require(actor, Action.TRANSFER, context)
        if user is None or not user.is_active:
            raise ValidationError({"user": [NO_SUCH_USER]})
        if context.scope == Context.Scope.PERSONAL and context.owner_user_id == user.pk:
            raise ValidationError({"user": ["The context already belongs to this owner."]})
        if user.pk == actor.pk:
            raise ValidationError({"user": ["Take a context yourself with context_transfer; offers are for others."]})
        if ContextTransferOffer.objects.filter(context=context, status=ContextTransferOffer.Status.PENDING).exists():
            raise ValidationError({"user": ["This context has a pending transfer offer; withdraw it first."]})
        now = timezone.now()
        offer = ContextTransferOffer.objects.create(
            context=context,
            sender=actor,
            recipient=user,
            expires_at=now + datetime.timedelta(seconds=conf.get("MEMORIES_TRANSFER_OFFER_MAX_AGE")),
        )
        audit.record(
            action=audit.Action.CONTEXT_TRANSFER_OFFERED,
            actor=actor,
            subject=user,
            target=context,
            context=_offer_facts(offer),
        )
        notification_schedule(
            user=user,
            kind="context_transfer_offered",
            context={
                "sender_username": actor.get_username(),
                "context_name": context.name,
                "memory_count": context.memories.count(),
                "share_count": context.shares.count(),
                "expires_at": offer.expires_at.isoformat(timespec="seconds"),
            },
            base_url=base_url,
        )
    return offer


def _pending_offer(offer_id: int, **who) -> ContextTransferOffer:
    """The offer ``offer_id`` if ``who`` (sender= or recipient=) is party to it, locked; else ``NotFound``.

    A decided offer is found (so the answer says it is no longer pending), but only by its parties.
    """
    offer = (
        ContextTransferOffer.objects.select_for_update(of=("self",))
        .select_related("context", "sender", "recipient")
        .filter(pk=offer_id, **who)
        .first()
    )
    if offer is None:
        raise NotFound()
    if offer.status != ContextTransferOffer.Status.PENDING:
        raise ValidationError({NON_FIELD_ERRORS: [f"{OFFER_NOT_PENDING} It was {offer.status}."]})
    return offer


def _decide(offer: ContextTransferOffer, status: str) -> None:
    offer.status = status
    offer.decided_at = timezone.now()
    offer.save(update_fields=["status", "decided_at"])


@audit_refusals("context.transfer_withdraw")
def context_transfer_offer_withdraw(*, actor, offer_id: int) -> ContextTransferOffer:
    """Withdraw the pending offer ``offer_id`` that ``actor`` made.

    Checks permission itself: only the sender finds the offer (``NotFound`` for anyone else).
    """
    _require_principal(actor)
    context_transfer_offers_expire()
    with transaction.atomic():
        offer = _pending_offer(offer_id, sender=actor)
        _decide(offer, ContextTransferOffer.Status.WITHDRAWN)
        audit.record(
            action=audit.Action.CONTEXT_TRANSFER_WITHDRAWN,
            actor=actor,
            subject=offer.recipient,
            target=offer.context,
            context=_offer_facts(offer),
        )
    return offer


@audit_refusals("context.transfer_decline")
def context_transfer_offer_decline(*, actor, offer_id: int) -> ContextTransferOffer:
    """Decline the pending offer ``offer_id`` made to ``actor``; nothing moves.

    Checks permission itself: only the recipient finds the offer (``NotFound`` for anyone else).
    """
    _require_principal(actor)
    context_transfer_offers_expire()
    with transaction.atomic():
        offer = _pending_offer(offer_id, recipient=actor)
        _decide(offer, ContextTransferOffer.Status.DECLINED)
        audit.record(
            action=audit.Action.CONTEXT_TRANSFER_DECLINED,
            actor=actor,
            subject=offer.sender,
            target=offer.context,
            context=_offer_facts(offer),
        )
    return offer


def _clean_share_ids(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        raise ValidationError({"keep_shares": ["Give a list of share ids."]})
    return sorted(set(value))


@audit_refusals("context.transfer_accept")
def context_transfer_offer_accept(*, actor, offer_id: int, keep_shares: Iterable[int] = ()) -> Context:
    """Accept the pending offer ``offer_id`` made to ``actor``: the context becomes theirs.

    The shares are reviewed: only those whose ids ``keep_shares`` names survive; every other
    share (one to the sender included) is removed, and a share to ``actor`` themselves is
    redundant and removed too. The sender keeps access only through a kept share.
    Checks permission itself: only the recipient finds the offer (``NotFound`` for anyone else),
    and the sender must still be allowed to transfer the context (else the offer is void: 400).
    """
    _require_principal(actor)
    share_ids = _clean_share_ids(list(keep_shares) if not isinstance(keep_shares, list) else keep_shares)
    context_transfer_offers_expire()
    with transaction.atomic():
        offer = _pending_offer(offer_id, recipient=actor)
        context = _locked(Context.objects, offer.context_id)
        sender = offer.sender
        if sender is None or not sender.is_active or not can(sender, Action.TRANSFER, context):
            raise ValidationError({NON_FIELD_ERRORS: ["The sender may no longer give this context away."]})
        shares = list(ContextShare.objects.filter(context=context).select_for_update())
        known = {share.pk for share in shares}
        unknown = [share_id for share_id in share_ids if share_id not in known]
        if unknown:
            raise ValidationError({"keep_shares": [f"Not a share of this context: {', '.join(map(str, unknown))}."]})
        kept = [share for share in shares if share.pk in share_ids and share.user_id != actor.pk]
        removed = [share for share in shares if share not in kept]
        ContextShare.objects.filter(pk__in=[share.pk for share in removed]).delete()
        previous, to = _move(context, field="user", new_owner=actor)
        _decide(offer, ContextTransferOffer.Status.ACCEPTED)
        kept_ids = sorted(share.pk for share in kept)
        removed_ids = sorted(share.pk for share in removed)
        audit.record(
            action=audit.Action.CONTEXT_TRANSFER_ACCEPTED,
            actor=actor,
            subject=sender,
            target=context,
            context={**_offer_facts(offer), "shares_kept": kept_ids, "shares_removed": removed_ids},
        )
        audit.record(
            action=audit.Action.CONTEXT_TRANSFERRED,
            actor=actor,
            subject=actor,
            target=context,
            context={
                "from": previous,
                "to": to,
                "offer_id": offer.pk,
                "shares_kept": kept_ids,
                "shares_removed": [
                    {
                        "id": share.pk,
                        "grantee_type": "user" if share.user_id else "team",
                        "grantee_id": share.user_id or share.team_id,
                        "permission": share.permission,
                    }
                    for share in removed
                ],
            },
        )
    return context


# ---------------------------------------------------------------------------------------------
# Organizations and teams
# ---------------------------------------------------------------------------------------------
@audit_refusals("organization.create")
def organization_create(*, actor, name: str, slug: str) -> Organization:
    """Create an organization with ``actor`` as its first owner.

    Checks permission itself: any active user may create an organization.
    """
    _require_principal(actor)
    with transaction.atomic():
        cleaned = _clean_all({"name": (validation.clean_name, name), "slug": (_clean_slug, slug)})
        if Organization.objects.filter(slug=cleaned["slug"]).exists():
            raise ValidationError({"slug": ["This slug is taken."]})
        try:
            # A savepoint: a concurrent create of the same slug fails here, not as a 500.
            with transaction.atomic():
                organization = Organization.objects.create(**cleaned)
        except IntegrityError:
            raise ValidationError({"slug": ["This slug is taken."]}) from None
        membership = Membership.objects.create(user=actor, organization=organization, role=Role.OWNER)
        _record_membership(audit.Action.MEMBERSHIP_ADDED, actor=actor, membership=membership, previous_role=None)
    return organization


@audit_refusals("team.create", target_argument="organization")
def team_create(*, actor, organization: Organization, name: str, slug: str) -> Team:
    """Create a team in ``organization`` with ``actor`` as its first owner.

    Checks permission itself: ``actor`` needs ``administer`` on the organization.
    """
    with transaction.atomic():
        organization = _lock_membership_target(team=None, organization=organization)
        require(actor, Action.ADMINISTER, organization)
        cleaned = _clean_all({"name": (validation.clean_name, name), "slug": (_clean_slug, slug)})
        if Team.objects.filter(organization=organization, slug=cleaned["slug"]).exists():
            raise ValidationError({"slug": ["This organization already has a team with this slug."]})
        team = Team.objects.create(organization=organization, **cleaned)
        membership = Membership.objects.create(user=actor, team=team, role=Role.OWNER)
        _record_membership(audit.Action.MEMBERSHIP_ADDED, actor=actor, membership=membership, previous_role=None)
    return team


# ---------------------------------------------------------------------------------------------
# Memberships
# ---------------------------------------------------------------------------------------------
@audit_refusals("membership.add")
def membership_add(
    *,
    actor,
    user,
    role: str,
    team: Team | None = None,
    organization: Organization | None = None,
) -> Membership:
    """Make ``user`` a member of ``team`` or ``organization`` with ``role``.

    Checks permission itself: ``actor`` needs ``administer`` on the team or organization and may
    not grant a role above their own (an admin cannot create owners).
    """
    _exactly_one(team=team, organization=organization)
    with transaction.atomic():
        target = _lock_membership_target(team=team, organization=organization)
        actor_role = require(actor, Action.ADMINISTER, target)
        role = _clean_all({"role": (_clean_choice("role", Role), role)})["role"]
        if Role(role).rank > actor_role.rank:
            raise PermissionDenied()
        if user is None or not user.is_active:
            raise ValidationError({"user": [NO_SUCH_USER]})
        field = "team" if isinstance(target, Team) else "organization"
        if Membership.objects.filter(user=user, **{field: target}).exists():
            raise ValidationError({"user": ["This user is already a member; change their role instead."]})
        membership = Membership.objects.create(user=user, role=role, **{field: target})
        _record_membership(audit.Action.MEMBERSHIP_ADDED, actor=actor, membership=membership, previous_role=None)
    return membership


@audit_refusals("membership.set_role", target_argument="membership")
def membership_set_role(*, actor, membership: Membership, role: str) -> Membership:
    """Change the role of ``membership``; the last owner of a team or organization stays owner.

    Checks permission itself: ``actor`` needs ``administer`` on the team or organization, and may
    neither change the role of someone above them nor grant a role above their own.
    """
    with transaction.atomic():
        target = _lock_membership_target(team=membership.team, organization=membership.organization)
        membership = _locked(Membership.objects, membership.pk)
        actor_role = require(actor, Action.ADMINISTER, target)
        role = _clean_all({"role": (_clean_choice("role", Role), role)})["role"]
        if Role(membership.role).rank > actor_role.rank or Role(role).rank > actor_role.rank:
            raise PermissionDenied()
        if membership.role == Role.OWNER and role != Role.OWNER and _owner_count(target) <= 1:
            raise ValidationError({"role": ["This is the last owner; make someone else owner first."]})
        previous_role = membership.role
        membership.role = role
        membership.save(update_fields=["role", "updated_at"])
        _record_membership(
            audit.Action.MEMBERSHIP_ROLE_SET, actor=actor, membership=membership, previous_role=previous_role
        )
    return membership


@audit_refusals("membership.remove", target_argument="membership")
def membership_remove(*, actor, membership: Membership) -> None:
    """End ``membership``; the last owner of a team or organization cannot be removed.

    Checks permission itself: members may always leave; removing someone else needs
    ``administer`` on the team or organization and a role at least as high as theirs.
    """
    _require_principal(actor)
    with transaction.atomic():
        target = _lock_membership_target(team=membership.team, organization=membership.organization)
        membership = _locked(Membership.objects, membership.pk)
        if membership.user_id != actor.pk:
            actor_role = require(actor, Action.ADMINISTER, target)
            if Role(membership.role).rank > actor_role.rank:
                raise PermissionDenied()
        if membership.role == Role.OWNER and _owner_count(target) <= 1:
            raise ValidationError({NON_FIELD_ERRORS: ["This is the last owner; make someone else owner first."]})
        _record_membership(
            audit.Action.MEMBERSHIP_REMOVED, actor=actor, membership=membership, previous_role=membership.role
        )
        membership.delete()


# ---------------------------------------------------------------------------------------------
# Recorded reads: what discloses memory content is audited, whatever the entry point
# ---------------------------------------------------------------------------------------------
@audit_refusals("memory.read")
def memory_read(*, actor, memory_id: int) -> Memory:
    """Return the memory ``memory_id`` for ``actor`` and record the read.

    Checks permission itself (through ``selectors.memory_get_for_user``): ``NotFound`` if the
    actor may not read it.
    """
    memory = selectors.memory_get_for_user(user=actor, memory_id=memory_id)
    audit.record(
        action=audit.Action.MEMORY_READ, actor=actor, target=memory, context={"context_id": memory.context_id}
    )
    return memory


def memory_list_record(*, actor, memories: list[Memory], total: int | None, filters: dict[str, Any]) -> None:
    """Record that ``actor`` was shown ``memories`` (one page of a list) out of ``total``.

    The caller got ``memories`` from ``selectors.memory_list_for_user``, which checked permission.
    """
    audit.record(
        action=audit.Action.MEMORY_LIST,
        actor=actor,
        context={
            "count": len(memories),
            "total": total,
            "filters": {key: value for key, value in filters.items() if value is not None},
            "context_ids": sorted({memory.context_id for memory in memories}),
        },
    )


@audit_refusals("context.read")
def context_read(*, actor, context_id: int) -> Context:
    """Return the context ``context_id`` for ``actor`` and record the read (``context.read``).

    Checks permission itself (through ``selectors.context_get_for_user``): ``NotFound`` if the
    actor may not read it.
    """
    context = selectors.context_get_for_user(user=actor, context_id=context_id)
    audit.record(action=audit.Action.CONTEXT_READ, actor=actor, target=context, context={"scope": context.scope})
    return context


def context_list_record(*, actor, contexts: list[Context], total: int | None) -> None:
    """Record that ``actor`` was shown ``contexts`` (one page of a list) out of ``total``.

    The caller got ``contexts`` from ``selectors.contexts_visible_to``, which checked permission.
    """
    audit.record(
        action=audit.Action.CONTEXT_LIST,
        actor=actor,
        context={"count": len(contexts), "total": total, "context_ids": sorted(context.pk for context in contexts)},
    )


@audit_refusals("context.export", target_argument="context")
def context_export(*, actor, context: Context) -> list[Memory]:
    """Return every memory of ``context`` for export and record the export with its size.

    Checks permission itself (through ``selectors.memory_export_for_user``): ``export`` right.
    """
    memories = list(selectors.memory_export_for_user(user=actor, context=context))
    audit.record(
        action=audit.Action.CONTEXT_EXPORTED, actor=actor, target=context, context={"count": len(memories)}
    )
    return memories
