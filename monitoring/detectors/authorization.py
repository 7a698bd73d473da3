"""Detectors over authorization events: privilege escalation and permission probing."""

from __future__ import annotations

from collections.abc import Iterable

from audit.actions import Action
from audit.models import AuditEvent
from monitoring import conf
from monitoring.detectors.base import EventDetector, WindowCountDetector
from monitoring.models import Severity, SubjectType

# Context keys the recording apps use for what was added (the first present wins).
ADDED_GROUP_KEYS = ("added", "groups_added", "added_groups", "group_added", "group")
ADDED_PERMISSION_KEYS = ("added", "permissions_added", "added_permissions")
ROLE_KEYS = ("role", "new_role", "to_role", "to")


def _names(value) -> list[str]:
    """A context value as a list of lower-case names (a string, or a list of strings/objects)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value.strip().casefold()] if value.strip() else []
    if isinstance(value, dict):
        value = [value.get("name") or value.get("codename") or value.get("role") or ""]
    if isinstance(value, Iterable):
        names = []
        for item in value:
            if isinstance(item, dict):
                item = item.get("name") or item.get("codename") or ""
            if str(item).strip():
                names.append(str(item).strip().casefold())
        return names
    return [str(value).casefold()]


def _first(context: dict, keys: tuple[str, ...]):
    for key in keys:
        if key in context:
            return context[key], True
    return None, False


class PrivilegeEscalationDetector(EventDetector):
    """Every grant of staff, superuser, a security group or an admin/owner role alerts, naming who granted it.

    Each grant is its own alert (the dedupe key holds the event id): privilege changes are rare
    and each deserves a look. Group and role names are compared case-insensitively with
    ``MONITORING_PRIVILEGED_GROUPS`` and ``MONITORING_PRIVILEGED_ROLES``; a group change whose
    event does not say which groups were added alerts at medium severity rather than not at all.
    """

    name = "privilege_escalation"
    title = "Privilege escalation"
    severity = Severity.HIGH
    actions = frozenset(
        {
            Action.STAFF_GRANTED.value,
            Action.SUPERUSER_GRANTED.value,
            Action.GROUP_MEMBERSHIP_CHANGED.value,
            Action.USER_PERMISSIONS_CHANGED.value,
            Action.GROUP_PERMISSIONS_CHANGED.value,
            Action.ROLE_CHANGED.value,
            Action.MEMBERSHIP_ADDED.value,
            Action.MEMBERSHIP_ROLE_SET.value,
        }
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
        if action == Action.GROUP_MEMBERSHIP_CHANGED:
            added, known = _first(context, ADDED_GROUP_KEYS)
            if not known:
                return Severity.MEDIUM, "group membership (groups not recorded)"
            privileged = {name.casefold() for name in conf.get("MONITORING_PRIVILEGED_GROUPS")}
            granted = sorted(set(_names(added)) & privileged)
            return (Severity.HIGH, f"security group {', '.join(granted)}") if granted else None
        if action in (Action.USER_PERMISSIONS_CHANGED, Action.GROUP_PERMISSIONS_CHANGED):
            added, known = _first(context, ADDED_PERMISSION_KEYS)
            names = _names(added)
            if not known:
                return Severity.MEDIUM, "permissions (not recorded which)"
            return (Severity.MEDIUM, f"permissions {', '.join(sorted(names)[:5])}") if names else None
        role, _known = _first(context, ROLE_KEYS)
        roles = {name.casefold() for name in conf.get("MONITORING_PRIVILEGED_ROLES")}
        granted = sorted(set(_names(role)) & roles)
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
