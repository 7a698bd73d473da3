"""The one permission of alert triage, checked by every triage and suppression service."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

import audit
from audit.actions import Action, Outcome

TRIAGE_PERMISSION = "monitoring.triage_alert"


def may_triage(user) -> bool:
    return user is not None and getattr(user, "is_active", False) and user.has_perm(TRIAGE_PERMISSION)


def require_triage_permission(actor, target=None) -> None:
    """Raise ``PermissionDenied`` (recording ``authz.permission_denied``) unless ``actor`` may triage."""
    if not may_triage(actor):
        audit.record(
            action=Action.PERMISSION_DENIED,
            outcome=Outcome.DENIED,
            actor=actor,
            target=target,
            context={"permission": TRIAGE_PERMISSION},
        )
        raise PermissionDenied("You may not triage alerts.")
