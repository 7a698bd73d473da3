"""Auditing of privilege changes: staff and superuser flags, groups, user and group permissions.

Every path is covered, not only the admin's change form (the django-auditlog failure):
``save()`` (post_save receiver), ``QuerySet.update()``/``bulk_update()`` (``UserQuerySet``), the
admin's bulk actions (they use one of those), and m2m changes in both directions
(``user.groups.add``, ``group.user_set.add``, ``clear()``). Receivers only hand off to the
functions here. Each change also increments the user's ``privilege_version``, so their sessions
rotate their key on the next request (ASVS 3.2.1 "new session id on privilege change").
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import F

import audit
from accounts.models.user import PRIVILEGE_FIELDS
from core.context import current_actor

FLAG_ACTIONS = {
    ("is_staff", True): "STAFF_GRANTED",
    ("is_staff", False): "STAFF_REVOKED",
    ("is_superuser", True): "SUPERUSER_GRANTED",
    ("is_superuser", False): "SUPERUSER_REVOKED",
}


def _flag_events(actor, user_id, username, is_staff, before: dict, after: dict) -> list[dict]:
    snapshot = _UserSnapshot(user_id, username, is_staff)
    events = []
    for name in PRIVILEGE_FIELDS:
        if name in after and bool(before.get(name)) != bool(after[name]):
            events.append(
                {
                    "action": getattr(audit.Action, FLAG_ACTIONS[(name, bool(after[name]))]),
                    "actor": actor,
                    "subject": snapshot,
                    "target": ("accounts.user", str(user_id), username),
                    "context": {"field": name, "old": bool(before.get(name)), "new": bool(after[name])},
                }
            )
    return events


class _UserSnapshot:
    """A user as ``audit.record`` snapshots it, without loading the row."""

    is_anonymous = False

    def __init__(self, pk, username, is_staff):
        self.pk, self.username, self.is_staff = pk, username, is_staff

    def get_username(self):
        return self.username


def _bump(user_ids) -> None:
    get_user_model()._default_manager.filter(pk__in=list(user_ids)).update_without_privilege_audit(
        privilege_version=F("privilege_version") + 1
    )


def user_privileges_update(*, queryset, values: dict) -> int:
    """``QuerySet.update()`` of staff/superuser flags with one event per user whose flag changed.

    Reads the rows before and after (locked), so any expression works (``bulk_update``'s
    ``Case``). Permission: the caller's; the actor is the bound request user, else the system.
    """
    actor = current_actor()
    fields = ["pk", "username", *PRIVILEGE_FIELDS]
    with transaction.atomic(using=queryset.db):
        before = {row["pk"]: row for row in queryset.select_for_update().values(*fields)}
        count = queryset.update_without_privilege_audit(**values)
        model = queryset.model
        after = model._default_manager.filter(pk__in=list(before)).order_by("pk").values(*fields)
        events, changed = [], []
        for row in after:
            old = before[row["pk"]]
            rows_events = _flag_events(actor, row["pk"], row["username"], row["is_staff"], old, row)
            if rows_events:
                changed.append(row["pk"])
                events.extend(rows_events)
        if changed:
            _bump(changed)
            audit.record_many(events)
    return count


def user_privileges_saved(*, user, created: bool, update_fields) -> None:
    """After ``user.save()``: record the staff/superuser flags it changed (post_save hand-off)."""
    if update_fields is not None and not set(update_fields) & set(PRIVILEGE_FIELDS):
        return
    loaded = getattr(user, "_loaded_privileges", None)
    if created:
        loaded = {name: False for name in PRIVILEGE_FIELDS}
    if loaded is None:
        return
    current = {name: getattr(user, name) for name in PRIVILEGE_FIELDS}
    events = _flag_events(current_actor(), user.pk, user.username, user.is_staff, loaded, current)
    user._loaded_privileges = current
    if not events:
        return
    with transaction.atomic():
        if not created:
            _bump([user.pk])
        audit.record_many(events)


def _names(model, pks) -> list[str]:
    if model is Group:
        return sorted(Group.objects.filter(pk__in=pks).values_list("name", flat=True))
    rows = Permission.objects.filter(pk__in=pks).values_list("content_type__app_label", "codename")
    return sorted(f"{app}.{codename}" for app, codename in rows)


def _names_now(relation: str, owner) -> list[str]:
    """The names ``owner`` holds after the change: a user's groups or permissions, a group's permissions."""
    if relation == "groups":
        return sorted(owner.groups.values_list("name", flat=True))
    permissions = owner.user_permissions if relation == "user_permissions" else owner.permissions
    rows = permissions.values_list("content_type__app_label", "codename")
    return sorted(f"{app}.{codename}" for app, codename in rows)


def _old_and_new(relation: str, owner, key: str, changed: list[str]) -> dict[str, list[str]]:
    """The whole set before and after (authentik#7439: an auditor wants both, not only the difference)."""
    new = _names_now(relation, owner)
    old = sorted(set(new) - set(changed)) if key == "added" else sorted(set(new) | set(changed))
    return {"old": old, "new": new}


def m2m_changed_record(*, relation: str, instance, action: str, reverse: bool, model, pk_set) -> None:
    """Record a change of a user's groups or permissions, or of a group's permissions (m2m hand-off).

    ``relation`` is ``"groups"``, ``"user_permissions"`` or ``"group_permissions"``. ``pre_clear``
    remembers what is about to be removed so ``post_clear`` can name it.
    """
    if action == "pre_clear":
        instance._accounts_cleared = set(
            getattr(instance, _reverse_accessor(relation) if reverse else _accessor(relation)).values_list(
                "pk", flat=True
            )
        )
        return
    if action == "post_clear":
        pk_set, action = getattr(instance, "_accounts_cleared", set()), "post_remove"
    if action not in {"post_add", "post_remove"} or not pk_set:
        return
    key = "added" if action == "post_add" else "removed"
    actor = current_actor()
    user_model = get_user_model()
    if relation == "group_permissions":
        group, permission_pks = (instance, pk_set) if not reverse else (None, None)
        targets = (
            [(group, permission_pks)]
            if group is not None
            else [(each, {instance.pk}) for each in Group.objects.filter(pk__in=pk_set)]
        )
        events = [
            {
                "action": audit.Action.GROUP_PERMISSIONS_CHANGED,
                "actor": actor,
                "target": each,
                "context": {
                    key: (names := _names(Permission, pks)),
                    "group": each.name,
                    **_old_and_new("group_permissions", each, key, names),
                },
            }
            for each, pks in targets
        ]
        affected = user_model._default_manager.filter(groups__in=[each.pk for each, _ in targets]).values_list(
            "pk", flat=True
        )
    else:
        related_model = Group if relation == "groups" else Permission
        if not reverse:
            pairs = [(instance, pk_set)]
        else:
            pairs = [(user, {instance.pk}) for user in user_model._default_manager.filter(pk__in=pk_set)]
        action_name = (
            audit.Action.GROUP_MEMBERSHIP_CHANGED if relation == "groups" else audit.Action.USER_PERMISSIONS_CHANGED
        )
        events = [
            {
                "action": action_name,
                "actor": actor,
                "subject": user,
                "target": user,
                "context": {key: (names := _names(related_model, pks)), **_old_and_new(relation, user, key, names)},
            }
            for user, pks in pairs
        ]
        affected = [user.pk for user, _ in pairs]
    with transaction.atomic():
        _bump(affected)
        audit.record_many(events)


def _accessor(relation: str) -> str:
    return {"groups": "groups", "user_permissions": "user_permissions", "group_permissions": "permissions"}[relation]


def _reverse_accessor(relation: str) -> str:
    return {"groups": "user_set", "user_permissions": "user_set", "group_permissions": "group_set"}[relation]
