"""Suppression rules: "don't alert on detector X for subject Y until date Z", with a reason.

An administrator creates a rule (usually from an alert's page), may end it early or delete it;
each step is audited (``monitoring.suppression_created`` / ``_ended`` / ``_deleted``) and needs
``monitoring.triage_alert``, checked here. While a rule is in force a matching detection raises
no alert and no notification: ``alert_record_finding`` counts it on the rule
(``suppressed_count``, ``last_suppressed_at``; the Suppression rules page of the console lists
them) and returns the outcome ``"suppressed"``, which the detection job's counts show. A rule
applies only to its detector and subject, and only until ``expires_at``: past it, it stops
applying by itself (no job needed) and stays listed for the record. No rule may run longer than
``MONITORING_SUPPRESSION_MAX_DAYS`` from its creation.
"""

from __future__ import annotations

import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone

import audit
from audit.actions import Action, Outcome
from monitoring import conf
from monitoring.detectors.base import Finding
from monitoring.models import ALERT_NOTE_MAX_LENGTH, Alert, AlertNote, SubjectType, SuppressionRule
from monitoring.permissions import require_triage_permission


def _context(rule: SuppressionRule, **extra) -> dict:
    return {
        "detector": rule.detector,
        "subject_type": rule.subject_type,
        "subject": rule.subject,
        "expires_at": rule.expires_at.isoformat(),
        **({"source_alert": rule.source_alert_id} if rule.source_alert_id else {}),
        **extra,
    }


def _clean(*, detector: str, subject_type: str, subject: str, reason: str, expires_at, now) -> dict:
    errors: dict[str, list[str]] = {}
    detector = (detector or "").strip()
    subject = (subject or "").strip()
    reason = (reason or "").strip()
    if not detector or len(detector) > 50:
        errors["detector"] = ["Name the detector (at most 50 characters)."]
    if subject_type not in SubjectType.values:
        errors["subject_type"] = ["Unknown subject type."]
    if not subject or len(subject) > 255:
        errors["subject"] = ["Name the subject (at most 255 characters)."]
    if not reason:
        errors["reason"] = ["Say why these alerts are not wanted."]
    elif len(reason) > ALERT_NOTE_MAX_LENGTH:
        errors["reason"] = [f"At most {ALERT_NOTE_MAX_LENGTH} characters."]
    max_days = conf.get("MONITORING_SUPPRESSION_MAX_DAYS")
    if not isinstance(expires_at, datetime.datetime) or expires_at.tzinfo is None:
        errors["expires_at"] = ["Give the end as a date and time (UTC)."]
    elif expires_at <= now:
        errors["expires_at"] = ["The end must be in the future."]
    elif expires_at > now + datetime.timedelta(days=max_days):
        errors["expires_at"] = [f"A rule may run at most {max_days} days (MONITORING_SUPPRESSION_MAX_DAYS)."]
    if errors:
        raise ValidationError(errors)
    return {"detector": detector, "subject_type": subject_type, "subject": subject, "reason": reason}


def suppression_create(
    *,
    actor,
    detector: str,
    subject_type: str,
    subject: str,
    reason: str,
    expires_at: datetime.datetime,
    source_alert_id: int | None = None,
    now: datetime.datetime | None = None,
) -> SuppressionRule:
    """Create a rule; with ``source_alert_id`` the alert's history records it too.

    Raises ``ValidationError`` (nothing written) for a blank reason, an end in the past or beyond
    the maximum. Permission: checked here (``monitoring.triage_alert``).
    """
    require_triage_permission(actor)
    now = now or timezone.now()
    cleaned = _clean(
        detector=detector, subject_type=subject_type, subject=subject, reason=reason, expires_at=expires_at, now=now
    )
    with transaction.atomic():
        alert = None
        if source_alert_id is not None:
            alert = Alert.objects.select_for_update().filter(pk=source_alert_id).first()
            if alert is None:
                raise ValidationError({"source_alert": ["No such alert."]})
        rule = SuppressionRule.objects.create(
            **cleaned, created_by=actor, created_at=now, expires_at=expires_at, source_alert=alert
        )
        if alert is not None:
            AlertNote.objects.create(
                alert=alert,
                author=actor,
                author_username=actor.get_username(),
                created_at=now,
                from_status=alert.status,
                to_status=alert.status,
                text=f"Suppressed {rule.detector} for {rule.subject} until "
                f"{expires_at.astimezone(datetime.UTC):%Y-%m-%d %H:%M} UTC: {cleaned['reason']}",
            )
        audit.record(
            action=Action.SUPPRESSION_CREATED,
            outcome=Outcome.SUCCESS,
            actor=actor,
            target=rule,
            context=_context(rule, reason_given=True),
        )
    return rule


def suppression_end(*, actor, rule_id: int, now: datetime.datetime | None = None) -> SuppressionRule:
    """End a rule now (it stays listed). Ending one that is no longer in force changes nothing and
    raises ``ValidationError``. Permission: checked here."""
    require_triage_permission(actor)
    now = now or timezone.now()
    with transaction.atomic():
        rule = SuppressionRule.objects.select_for_update().get(pk=rule_id)
        if not rule.in_force(now):
            raise ValidationError("This rule is no longer in force.")
        rule.ended_at, rule.ended_by = now, actor
        rule.save(update_fields=["ended_at", "ended_by"])
        audit.record(
            action=Action.SUPPRESSION_ENDED,
            outcome=Outcome.SUCCESS,
            actor=actor,
            target=rule,
            context=_context(rule, suppressed=rule.suppressed_count),
        )
    return rule


def suppression_delete(*, actor, rule_id: int) -> None:
    """Delete a rule (its audit events stay). Permission: checked here."""
    require_triage_permission(actor)
    with transaction.atomic():
        rule = SuppressionRule.objects.select_for_update().get(pk=rule_id)
        audit.record(
            action=Action.SUPPRESSION_DELETED,
            outcome=Outcome.SUCCESS,
            actor=actor,
            target=rule,
            context=_context(rule, suppressed=rule.suppressed_count),
        )
        rule.delete()


def suppression_apply(*, finding: Finding, now: datetime.datetime) -> SuppressionRule | None:
    """The rule in force that silences ``finding``, after counting the detection on it; else ``None``.

    A detection is counted once: a sweep that finds the same evidence again (no newer event, or
    for findings without events no later ``last_seen``) is not counted again. Called inside the
    alert service's transaction. Permission: none (the system).
    """
    rule = (
        SuppressionRule.objects.select_for_update()
        .filter(
            detector=finding.detector,
            subject_type=finding.subject_type,
            subject=(finding.subject or "")[:255],
            ended_at__isnull=True,
            expires_at__gt=now,
        )
        .order_by("-expires_at", "-id")
        .first()
    )
    if rule is None:
        return None
    if finding.last_event_id is not None:
        counted = rule.last_event_id is not None and finding.last_event_id <= rule.last_event_id
    else:
        counted = rule.last_finding_seen is not None and finding.last_seen <= rule.last_finding_seen
    if not counted:
        SuppressionRule.objects.filter(pk=rule.pk).update(
            suppressed_count=F("suppressed_count") + 1,
            last_suppressed_at=now,
            last_event_id=finding.last_event_id if finding.last_event_id is not None else rule.last_event_id,
            last_finding_seen=finding.last_seen,
        )
    return rule


def suppression_in_force_list(*, now: datetime.datetime | None = None):
    """Rules in force now, soonest to expire first."""
    now = now or timezone.now()
    return SuppressionRule.objects.filter(ended_at__isnull=True, expires_at__gt=now).order_by("expires_at")
