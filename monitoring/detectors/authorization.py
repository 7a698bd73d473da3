"""Detectors over authorization events: privilege escalation and permission probing."""

from __future__ import annotations

from audit.actions import Action
from audit.models import AuditEvent
from audit.schema import declared_key
from monitoring import conf
from monitoring.detectors.base import EventDetector, WindowCountDetector
from monitoring.models import Severity, SubjectType

GROUP_ACTIONS = (Action.GROUP_MEMBERSHIP_CHANGED,)
PERMISSION_ACTIONS = (Action.USER_PERMISSIONS_CHANGED, Action.GROUP_PERMISSIONS_CHANGED)
ROLE_ACTIONS = (Action.MEMBERSHIP_ADDED, Action.MEMBERSHIP_ROLE_SET)
# The context keys read here, as audit/schema.py declares them for these actions.
ADDED = declared_key("added", *GROUP_ACTIONS, *PERMISSION_ACTIONS)
REMOVED = declared_key("removed", *GROUP_ACTIONS, *PERMISSION_ACTIONS)
ROLE = declared_key("role", *ROLE_ACTIONS)


def _names(value) -> list[str]:
    """A list of names (or one role name) from a context as lower-case names."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [name for item in items if (name := str(item).strip().casefold())]


def _names_recorded(context: dict) -> bool:
    """Whether the event says what changed: its producer writes the added or the removed names."""
    return ADDED in context or REMOVED in context


class PrivilegeEscalationDetector(EventDetector):
    """Every grant of staff, superuser, a security group or an admin/owner role alerts, naming who granted it.

    Each grant is its own alert (the dedupe key holds the event id): privilege changes are rare
    and each deserves a look. Group and role names are compared case-insensitively with
    ``MONITORING_PRIVILEGED_GROUPS`` and ``MONITORING_PRIVILEGED_ROLES``; a group or permission
    change whose event names neither what was added nor what was removed alerts at medium
    severity rather than not at all.
    """

    name = "privilege_escalation"
    title = "Privilege escalation"
    severity = Severity.HIGH
    actions = frozenset(
        action.value
        for action in (
            Action.STAFF_GRANTED,
            Action.SUPERUSER_GRANTED,
            *GROUP_ACTIONS,
            *PERMISSION_ACTIONS,
            *ROLE_ACTIONS,
        )
    )

    def grant(self, event: AuditEvent) -> tuple[int, str] | None:
        """(severity, what was granted) or None when the change grants nothing privileged."""
        context = event.context if isinstance(event.context, dict) else {}
        action = event.action
        if event.outcome != "success":
            return None
        if action == Action.SUPERUSER_GRANTED:
            return Severity.CRITICAL, "superuser status"
        if action == Action.STAFF_GRANTED:
            return Severity.HIGH, "staff status"
        if action in GROUP_ACTIONS:
            if not _names_recorded(context):
                return Severity.MEDIUM, "group membership (groups not recorded)"
            privileged = {name.casefold() for name in conf.get("MONITORING_PRIVILEGED_GROUPS")}
            granted = sorted(set(_names(context.get(ADDED))) & privileged)
            return (Severity.HIGH, f"security group {', '.join(granted)}") if granted else None
        if action in PERMISSION_ACTIONS:
            if not _names_recorded(context):
                return Severity.MEDIUM, "permissions (not recorded which)"
            names = _names(context.get(ADDED))
            return (Severity.MEDIUM, f"permissions {', '.join(sorted(names)[:5])}") if names else None
        roles = {name.casefold() for name in conf.get("MONITORING_PRIVILEGED_ROLES")}
        granted = sorted(set(_names(context.get(ROLE))) & roles)
        return (Severity.HIGH, f"role {', '.join(granted)}") if granted else None

    def judge(self, event: AuditEvent):
        verdict = self.grant(event)
        if verdict is None:
            return None
        severity, what = verdict
        grantee = event.subject_username or event.target_repr or event.subject_id or "?"
        granted_by = event.actor_username or "the system"
        where = f" on {event.target_repr}" if event.target_repr and event.target_repr != grantee else ""
        return (
            severity,
            SubjectType.USER,
            grantee,
            f"{what} granted to {grantee}{where} by {granted_by}",
            f"{self.name}:{event.pk}",
        )

    def on_event(self, event: AuditEvent):
        findings = super().on_event(event)
        for finding in findings:
            finding.counts["granted_by"] = event.actor_username or ""
            finding.counts["granted_by_id"] = event.actor_id or ""
        return findings


class PermissionProbingDetector(WindowCountDetector):
    """A burst of permission-denied events from one user, API key or IP: someone probing."""

    name = "permission_probing"
    title = "Permission-denied burst (probing)"
    severity = Severity.MEDIUM
    actions = frozenset({Action.PERMISSION_DENIED.value})
    principals = ("actor_id", "api_key_id", "client_ip")
    threshold_setting = "MONITORING_PROBING_THRESHOLD"
    window_setting = "MONITORING_PROBING_WINDOW_SECONDS"
    summary_template = "{count} permission-denied events from {subject} within {window} s"
