"""Running the detectors: for one event (real time) and over everything recent (the sweep)."""

from __future__ import annotations

import datetime
import logging

from django.db.models import Max
from django.utils import timezone

from audit.models import AuditEvent
from monitoring.detectors import detector_get, detectors_for_action, sweep_detectors
from monitoring.models import Alert
from monitoring.services.alerts import alert_record_finding
from monitoring.services.jobs import monitoring_records_prune

logger = logging.getLogger("monitoring.detection")


class DetectionSweepError(RuntimeError):
    """One or more detectors failed during a sweep (the others still ran)."""


def _tally(outcomes: list[str]) -> dict[str, int]:
    return {
        "findings": len(outcomes),
        "alerts_created": outcomes.count("created"),
        "alerts_updated": outcomes.count("updated"),
        "duplicates": outcomes.count("duplicate"),
        # Detections a suppression rule kept from alerting (counted on the rule as well).
        "suppressed": outcomes.count("suppressed"),
    }


def detection_run_for_event(*, event_id: int) -> dict[str, int]:
    """Run the real-time detectors that watch this event's action; raise or update alerts.

    Safe to run twice for one event (the second run finds duplicates). An event that no longer
    exists (archived) is ignored. Permission: none (system).
    """
    event = AuditEvent.objects.filter(pk=event_id).first()
    if event is None:
        return _tally([])
    outcomes = []
    for detector in detectors_for_action(event.action):
        for finding in detector.on_event(event):
            _alert, outcome = alert_record_finding(finding=finding)
            outcomes.append(outcome)
    return _tally(outcomes)


def _already_alerted(findings) -> set[int]:
    """Positions of findings whose evidence an alert already holds (one query for the batch).

    A sweep mostly re-finds what real time raised; recognising those here spares a transaction
    each. The alert service makes the same check again, authoritatively, for the rest.
    """
    keys = {finding.dedupe_key for finding in findings if finding.last_event_id is not None}
    if not keys:
        return set()
    newest = dict(
        Alert.objects.filter(dedupe_key__in=keys)
        .values("dedupe_key")
        .annotate(last=Max("last_event_id"))
        .values_list("dedupe_key", "last")
        .order_by()
    )
    return {
        position
        for position, finding in enumerate(findings)
        if finding.last_event_id is not None
        and newest.get(finding.dedupe_key) is not None
        and finding.last_event_id <= newest[finding.dedupe_key]
    }


def _run_sweep(detectors, now: datetime.datetime) -> dict[str, int]:
    outcomes, failed = [], []
    for detector in detectors:
        try:
            findings = detector.sweep(now=now)
            known = _already_alerted(findings)
            outcomes.extend(["duplicate"] * len(known))
            for position, finding in enumerate(findings):
                if position in known:
                    continue
                _alert, outcome = alert_record_finding(finding=finding)
                outcomes.append(outcome)
        except Exception:  # one broken detector must not blind the others
            logger.exception("detector %s failed during the sweep", detector.name)
            failed.append(detector.name)
    result = _tally(outcomes) | {"detectors": len(detectors), "detectors_failed": len(failed)}
    if failed:
        raise DetectionSweepError(f"detectors failed: {', '.join(failed)}")
    return result


def detection_sweep(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Run every detector's sweep over the windows ending ``now``; raise or update alerts.

    Findings that real time already raised are recognised and change nothing. If a detector
    fails, the others still run and ``DetectionSweepError`` is raised at the end, so the job
    run is recorded as failed (and alerted on). Permission: none (system).
    """
    return _run_sweep(sweep_detectors(), now or timezone.now())


def job_health_check(*, now: datetime.datetime | None = None) -> dict[str, int]:
    """Alert on late scheduled jobs, then prune old job runs and tallies. Permission: none."""
    now = now or timezone.now()
    result = _run_sweep([detector_get("job_late")], now)
    return result | monitoring_records_prune(now=now)
