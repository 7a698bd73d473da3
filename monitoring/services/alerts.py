"""Alerts: raised from findings (deduplicated), then triaged open → acknowledged → resolved | false positive.

Raising writes the alert, its ``monitoring.alert_raised`` audit event and its notifications
(the outbox) in one transaction, then hands delivery to Celery after commit. A finding that a
suppression rule in force covers raises nothing and is counted on the rule
(``monitoring.services.suppression``); one caused by setting up the install is raised already
resolved (``monitoring.services.bootstrap``). Every triage step (acknowledge, resolve, false
positive, assign) checks the ``monitoring.triage_alert`` permission itself, writes a line of the
alert's history (``AlertNote``) and records its own audit event; a false positive needs a note.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

import audit
from audit.actions import Action, Outcome
from monitoring import conf
from monitoring.detectors.base import Finding
from monitoring.models import ALERT_NOTE_MAX_LENGTH, Alert, AlertNote, AlertStatus, Severity
from monitoring.permissions import TRIAGE_PERMISSION, may_triage, require_triage_permission
from monitoring.services.bootstrap import bootstrap_note, bootstrap_reason
from monitoring.services.notifications import notifications_enqueue_for_alert, schedule_delivery_after_commit
from monitoring.services.suppression import suppression_apply

logger = logging.getLogger("monitoring.alerts")


class AlertTransitionError(ValueError):
    """The requested status change is not allowed from the alert's current status."""


class AlertNoteRequired(AlertTransitionError):
    """Marking a false positive needs a note saying why (the history must explain the dismissal)."""


# Which status may follow which (open may also be closed directly).
TRANSITIONS = {
    AlertStatus.OPEN: {AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE},
    AlertStatus.ACKNOWLEDGED: {AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE},
    AlertStatus.RESOLVED: set(),
    AlertStatus.FALSE_POSITIVE: set(),
}
TRANSITION_ACTIONS = {
    AlertStatus.ACKNOWLEDGED: Action.ALERT_ACKNOWLEDGED,
    AlertStatus.RESOLVED: Action.ALERT_RESOLVED,
    AlertStatus.FALSE_POSITIVE: Action.ALERT_DISMISSED,
}


def _lock_dedupe_key(key: str) -> None:
    """Serialise writers of one dedupe key until the transaction ends.

    PostgreSQL: a transaction-scoped advisory lock on a 63-bit digest of the key, so two workers
    seeing the same burst cannot both create an alert. SQLite: the settings open every
    transaction with ``BEGIN IMMEDIATE``, which already serialises writers.
    """
    if connection.vendor == "postgresql":
        digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [digest])


def _merged_ids(new: list[int], old: list[int]) -> list[int]:
    merged = sorted(set(new) | set(old), reverse=True)
    return merged[: conf.get("MONITORING_ALERT_EVIDENCE_LIMIT")]


def alert_record_finding(*, finding: Finding, now: datetime.datetime | None = None) -> tuple[Alert | None, str]:
    """Raise an alert for ``finding`` or fold it into the alert it repeats; return (alert, outcome).

    ``outcome`` is ``"created"``, ``"updated"``, ``"duplicate"`` or ``"suppressed"``:

    * duplicate — the newest alert with the same dedupe key already holds this evidence (its
      ``last_event_id`` is at least the finding's; or, for findings without events, it is closed
      and nothing newer was seen). Re-running a detector, or the sweep finding what real time
      already raised, changes nothing: the detectors are safe to run twice.
    * suppressed — a suppression rule in force covers the finding's detector and subject: no
      alert, no notification; the detection is counted on the rule, which is returned in place
      of an alert (``(None, "suppressed")``).
    * updated — the newest alert is still open or acknowledged and the finding's newest evidence
      is within the dedupe window of the alert's: count, last seen, evidence and counts change;
      a higher severity escalates it (and notifies again).
    * created — otherwise: a new alert, its ``monitoring.alert_raised`` event and its
      notifications, in one transaction. Detection time = now - ``finding.triggered_at``. A
      finding caused by a bootstrap command is created already resolved, with a note, and
      notifies nobody.

    Permission: none (the system raises alerts).
    """
    now = now or timezone.now()
    window = finding.dedupe_window or conf.seconds("MONITORING_ALERT_DEDUPE_WINDOW_SECONDS")
    with transaction.atomic():
        _lock_dedupe_key(finding.dedupe_key)
        latest = Alert.objects.filter(dedupe_key=finding.dedupe_key).order_by("-created_at", "-id").first()
        if latest is not None:
            if finding.last_event_id is not None and latest.last_event_id is not None:
                if finding.last_event_id <= latest.last_event_id:
                    return latest, "duplicate"
            elif not latest.is_active and finding.last_seen <= latest.last_seen:
                return latest, "duplicate"
        if suppression_apply(finding=finding, now=now) is not None:
            logger.info("detection suppressed: %s %s", finding.detector, finding.subject)
            return None, "suppressed"
        if latest is not None and latest.is_active and finding.last_seen - latest.last_seen <= window:
            return _alert_update(latest, finding), "updated"
        return _alert_create(finding, now), "created"


def _alert_update(alert: Alert, finding: Finding) -> Alert:
    escalated = finding.severity > alert.severity
    alert.count += 1
    alert.last_seen = max(alert.last_seen, finding.last_seen)
    alert.first_seen = min(alert.first_seen, finding.first_seen)
    alert.summary = finding.summary[:500]
    alert.evidence = {
        "event_ids": _merged_ids(finding.resolved_event_ids(), alert.evidence.get("event_ids", [])),
        "counts": finding.counts,
    }
    if finding.last_event_id is not None:
        alert.last_event_id = max(alert.last_event_id or 0, finding.last_event_id)
    if escalated:
        alert.severity = finding.severity
    alert.save()
    if escalated and notifications_enqueue_for_alert(alert=alert, event_type="alert.escalated"):
        schedule_delivery_after_commit()
    return alert


def _alert_create(finding: Finding, now: datetime.datetime) -> Alert:
    reason = bootstrap_reason(finding=finding)
    status = AlertStatus.RESOLVED if reason else AlertStatus.OPEN
    alert = Alert.objects.create(
        detector=finding.detector,
        severity=finding.severity,
        status=status,
        dedupe_key=finding.dedupe_key[:255],
        subject_type=finding.subject_type,
        subject=(finding.subject or "")[:255],
        summary=finding.summary[:500],
        evidence={
            "event_ids": finding.resolved_event_ids()[: conf.get("MONITORING_ALERT_EVIDENCE_LIMIT")],
            "counts": finding.counts,
        },
        count=1,
        first_seen=finding.first_seen,
        last_seen=finding.last_seen,
        triggered_at=finding.triggered_at,
        created_at=now,
        detection_seconds=max((now - finding.triggered_at).total_seconds(), 0.0),
        last_event_id=finding.last_event_id,
        closed_at=now if reason else None,
        note=bootstrap_note(reason) if reason else "",
    )
    context = {
        "detector": alert.detector,
        "severity": alert.get_severity_display(),
        "subject_type": alert.subject_type,
        "evidence_events": len(alert.evidence["event_ids"]),
        "detection_seconds": round(alert.detection_seconds, 3),
    }
    if reason:
        context |= {"status": status.value, "resolved_because": reason}
        AlertNote.objects.create(
            alert=alert, created_at=now, from_status=AlertStatus.OPEN, to_status=status, text=bootstrap_note(reason)
        )
    audit.record(action=Action.ALERT_RAISED, outcome=Outcome.SUCCESS, target=alert, context=context)
    if reason:
        logger.info("alert raised already resolved (bootstrap): %s %s", alert.detector, alert.subject)
        return alert
    if notifications_enqueue_for_alert(alert=alert, event_type="alert.raised"):
        schedule_delivery_after_commit()
    logger.warning("alert raised: %s %s %s", alert.get_severity_display(), alert.detector, alert.subject)
    return alert


# --- triage ---------------------------------------------------------------------------------
def _require_triage_permission(actor, alert: Alert | None = None) -> None:
    require_triage_permission(actor, alert)


def _clean_note(note) -> str:
    note = (note or "").strip() if isinstance(note, str) or note is None else None
    if note is None:
        raise ValidationError({"note": ["A note is text."]})
    if len(note) > ALERT_NOTE_MAX_LENGTH:
        raise ValidationError({"note": [f"A note has at most {ALERT_NOTE_MAX_LENGTH} characters."]})
    return note


def _transition(*, actor, alert_id: int, to: AlertStatus, note: str = "") -> Alert:
    _require_triage_permission(actor)
    note = _clean_note(note)
    if to == AlertStatus.FALSE_POSITIVE and not note:
        raise AlertNoteRequired("Say why this is a false positive: a note is required.")
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert_id)
        previous = AlertStatus(alert.status)
        if to not in TRANSITIONS[previous]:
            raise AlertTransitionError(f"An alert that is {previous.label.lower()} cannot become {to.label.lower()}.")
        now = timezone.now()
        alert.status = to
        if to == AlertStatus.ACKNOWLEDGED:
            alert.acknowledged_by, alert.acknowledged_at = actor, now
        else:
            alert.closed_by, alert.closed_at = actor, now
        if note:
            stamp = f"[{now:%Y-%m-%d %H:%M} UTC, {actor.get_username()}, {to.label.lower()}] {note}"
            alert.note = f"{alert.note}\n{stamp}".strip()
        alert.save()
        AlertNote.objects.create(
            alert=alert,
            author=actor,
            author_username=actor.get_username(),
            created_at=now,
            from_status=previous,
            to_status=to,
            text=note,
        )
        audit.record(
            action=TRANSITION_ACTIONS[to],
            outcome=Outcome.SUCCESS,
            actor=actor,
            target=alert,
            context={"from": previous.value, "to": to.value, "detector": alert.detector, "note_given": bool(note)},
        )
    return alert


def alert_acknowledge(*, actor, alert_id: int, note: str = "") -> Alert:
    """Mark an open alert as being looked at. Permission: checked here (``monitoring.triage_alert``)."""
    return _transition(actor=actor, alert_id=alert_id, to=AlertStatus.ACKNOWLEDGED, note=note)


def alert_resolve(*, actor, alert_id: int, note: str = "") -> Alert:
    """Close an open or acknowledged alert as dealt with. Permission: checked here."""
    return _transition(actor=actor, alert_id=alert_id, to=AlertStatus.RESOLVED, note=note)


def alert_mark_false_positive(*, actor, alert_id: int, note: str = "") -> Alert:
    """Close an open or acknowledged alert as not a real incident; ``note`` (why) is required.

    Raises ``AlertNoteRequired`` without a note. Permission: checked here.
    """
    return _transition(actor=actor, alert_id=alert_id, to=AlertStatus.FALSE_POSITIVE, note=note)


def alerts_transition_many(*, actor, alert_ids: Iterable[int], to: AlertStatus, note: str = "") -> tuple[int, int]:
    """Apply one triage step to several alerts (the admin's bulk actions); return (changed, skipped).

    Alerts whose status does not allow the step are skipped and left as they were. A false
    positive without a note raises ``AlertNoteRequired`` before anything changes. Permission:
    checked here, once, before anything changes.
    """
    _require_triage_permission(actor)
    to = AlertStatus(to)
    if to == AlertStatus.FALSE_POSITIVE and not _clean_note(note):
        raise AlertNoteRequired("Say why these are false positives: a note is required.")
    service = {
        AlertStatus.ACKNOWLEDGED: alert_acknowledge,
        AlertStatus.RESOLVED: alert_resolve,
        AlertStatus.FALSE_POSITIVE: alert_mark_false_positive,
    }[to]
    changed = skipped = 0
    for alert_id in alert_ids:
        try:
            service(actor=actor, alert_id=alert_id, note=note)
        except (AlertTransitionError, Alert.DoesNotExist):
            skipped += 1
        else:
            changed += 1
    return changed, skipped


def triage_assignee_list():
    """Who an alert may be assigned to: active staff holding ``monitoring.triage_alert`` (directly,
    through a group such as the Security administrator role, or as superusers)."""
    users = get_user_model().objects.filter(is_active=True, is_staff=True).order_by("username")
    return [user for user in users if may_triage(user)]


def alert_assign(*, actor, alert_id: int, assignee_id: int | None, note: str = "") -> Alert:
    """Assign an alert to an administrator (``assignee_id``), or unassign it (``None``).

    The assignee must be an active staff user who may triage; anyone else raises
    ``ValidationError`` and nothing changes. The step is a line of the alert's history and the
    audit event ``monitoring.alert_assigned``. Permission: checked here (``monitoring.triage_alert``).
    """
    _require_triage_permission(actor)
    note = _clean_note(note)
    assignee = None
    if assignee_id is not None:
        assignee = get_user_model().objects.filter(pk=assignee_id, is_active=True, is_staff=True).first()
        if assignee is None or not may_triage(assignee):
            raise ValidationError({"assignee": ["Alerts go to an active administrator who may triage them."]})
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert_id)
        previous = alert.assigned_to
        if (previous.pk if previous else None) == (assignee.pk if assignee else None):
            raise ValidationError({"assignee": ["The alert is already assigned so."]})
        now = timezone.now()
        alert.assigned_to, alert.assigned_at = assignee, (now if assignee else None)
        alert.save(update_fields=["assigned_to", "assigned_at", "updated_at"])
        what = f"Assigned to {assignee.get_username()}" if assignee else "Unassigned"
        AlertNote.objects.create(
            alert=alert,
            author=actor,
            author_username=actor.get_username(),
            created_at=now,
            from_status=alert.status,
            to_status=alert.status,
            text=f"{what}. {note}".strip() if note else f"{what}.",
        )
        audit.record(
            action=Action.ALERT_ASSIGNED,
            outcome=Outcome.SUCCESS,
            actor=actor,
            subject=assignee,
            target=alert,
            context={
                "detector": alert.detector,
                "assignee": assignee.get_username() if assignee else "",
                "previous_assignee": previous.get_username() if previous else "",
                "note_given": bool(note),
            },
        )
    return alert


__all__ = [
    "TRIAGE_PERMISSION",
    "AlertNoteRequired",
    "AlertTransitionError",
    "Severity",
    "alert_acknowledge",
    "alert_assign",
    "alert_mark_false_positive",
    "alert_record_finding",
    "alert_resolve",
    "alerts_transition_many",
    "triage_assignee_list",
]
