"""Every action in the admin console becomes an audit event.

Django's admin writes a ``LogEntry`` for each add, change and delete it performs (including the
bulk "delete selected" action). We turn each one into ``admin.added`` / ``admin.changed`` /
``admin.deleted`` in the same transaction, naming the object and the *names* of the changed
fields — never their values, so a changed password hash, TOTP secret or memory content cannot
reach the trail. The acting user is the admin user, as Django recorded it.
"""

from __future__ import annotations

import json

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db.models.signals import post_save

from audit.actions import Action

_ACTIONS = {ADDITION: Action.ADMIN_ADDED, CHANGE: Action.ADMIN_CHANGED, DELETION: Action.ADMIN_DELETED}


def changed_field_names(change_message: str) -> list[str]:
    """The field names a ``LogEntry.change_message`` lists (its JSON form), sorted and unique."""
    try:
        messages = json.loads(change_message or "[]")
    except ValueError:
        return []
    names: set[str] = set()
    for message in messages if isinstance(messages, list) else []:
        for detail in message.values() if isinstance(message, dict) else []:
            if isinstance(detail, dict):
                names.update(str(name) for name in detail.get("fields", []) if isinstance(name, str))
    return sorted(names)


def record_admin_log_entry(sender, instance: LogEntry, created: bool, raw: bool = False, **kwargs) -> None:
    """``post_save`` receiver for ``LogEntry``: hand the entry to ``audit.record``."""
    if not created or raw:
        return
    from audit.services import Target, record

    action = _ACTIONS.get(instance.action_flag)
    if action is None:
        return
    content_type = instance.content_type
    target = Target(
        type=f"{content_type.app_label}.{content_type.model}" if content_type else "",
        id=str(instance.object_id or ""),
        repr=f"{content_type.name if content_type else 'object'} {instance.object_id or ''}".strip(),
    )
    record(
        action=action,
        actor=instance.user,
        target=target,
        context={"fields": changed_field_names(instance.change_message)} if action == Action.ADMIN_CHANGED else {},
    )


def connect() -> None:
    """Connect the receiver (called from ``AuditConfig.ready``)."""
    post_save.connect(record_admin_log_entry, sender=LogEntry, dispatch_uid="audit.record_admin_log_entry")
