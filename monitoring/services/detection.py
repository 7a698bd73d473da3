"""Running the detectors: for one event (real time) and over everything recent (the sweep)."""

from __future__ import annotations

import datetime
import hashlib
import logging
import threading
import time

from django.core.cache import cache
from django.db.models import Max
from django.utils import timezone

from audit.models import AuditEvent
from core.handoff import hand_off, hand_off_later
from monitoring import conf
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


# --- the hand-off of committed events to real-time detection ----------------------------------
# A principal's batch task runs this much after its interval, so that an event this process
# counted in the interval (committed before the task was due by this clock) is committed before
# the worker reads, even with a worker clock a little ahead.
EARLY_RUN_GUARD_SECONDS = 0.25
# A batch re-reads this far before its principal's newest judged event: an event committed this
# much later than its timestamp says (a longer transaction) is still judged in real time.
LATE_COMMIT_MARGIN = datetime.timedelta(seconds=2)
CURSOR_CACHE_SECONDS = 86400
_PENDING_LIMIT = 10_000  # principals remembered per process before expired entries are dropped

_pending_lock = threading.Lock()
_pending_until: dict[tuple[str, str], float] = {}  # (detector, principal) -> time.monotonic() its task covers


def detection_hand_off(*, event, event_task, principal_task) -> None:
    """Hand one committed audit event to real-time detection (called after commit by the receiver).

    With ``MONITORING_DETECTION_BATCHING`` on, an event of ``MONITORING_BATCHED_ACTIONS`` is
    *counted* for its principal rather than handed off alone: the first of a principal's events
    in this process publishes one ``monitoring.detect_principal`` task due in
    ``MONITORING_DETECTION_BATCH_SECONDS``; the principal's further events until then publish
    nothing, since that task reads them all from the audit table. So a burst costs one task per
    principal, interval and web process, whatever its rate. Every other watched event (and every
    event with batching off) is handed to ``monitoring.detect_event`` alone. A publish the broker
    refuses is logged and left to the sweep. ``event_task`` and ``principal_task`` are those two
    tasks (the receiver passes them: the tasks call this module). Permission: none (system).
    """
    batched = conf.get("MONITORING_DETECTION_BATCHING") and event.action in conf.get("MONITORING_BATCHED_ACTIONS")
    alone = False
    for detector in detectors_for_action(event.action):
        if not (batched and getattr(detector, "batchable", False)):
            alone = True
            continue
        principal = getattr(event, detector.principal)
        if principal not in (None, ""):
            _count_for_principal(principal_task, detector.name, str(principal), event.timestamp)
    if alone:
        hand_off(event_task, event.pk)  # broker down: the sweep finds it within a minute


def _count_for_principal(detect_principal, detector: str, principal: str, timestamp: datetime.datetime) -> None:
    interval = float(conf.get("MONITORING_DETECTION_BATCH_SECONDS"))
    # Eager tasks (tests) run at once, not after the interval: nothing may wait for a later task.
    eager = bool(detect_principal.app.conf.task_always_eager)
    key = (detector, principal)
    now = time.monotonic()
    with _pending_lock:
        if not eager and _pending_until.get(key, 0.0) > now:
            return  # a queued task of this principal will read this event
        if len(_pending_until) >= _PENDING_LIMIT:
            for stale in [name for name, until in _pending_until.items() if until <= now]:
                del _pending_until[stale]
        _pending_until[key] = now + interval
    published = hand_off_later(
        detect_principal, interval + EARLY_RUN_GUARD_SECONDS, detector, principal, timestamp.isoformat()
    )
    if not published:
        with _pending_lock:
            _pending_until.pop(key, None)  # the next event tries again (or the sweep catches up)


def detection_hand_off_reset() -> None:
    """Forget which principals have a task queued in this process (tests)."""
    with _pending_lock:
        _pending_until.clear()


def _cursor_key(detector: str, principal: str) -> str:
    digest = hashlib.sha256(principal.encode()).hexdigest()[:24]
    return f"monitoring:detection-cursor:{detector}:{digest}"


def detection_run_for_principal(*, detector_name: str, principal: str, since: datetime.datetime) -> dict[str, int]:
    """Judge a principal's events that a batch task covers, in one pass; raise or update alerts.

    The events judged are those from ``since`` (the timestamp of the event that queued the task)
    or from the newest event an earlier batch judged, whichever is later, less
    ``LATE_COMMIT_MARGIN``. A batch makes at most one finding (the detector's ``on_principal``).
    Safe to run twice (the second finds a duplicate). An unknown detector does nothing.
    Permission: none (system).
    """
    try:
        detector = detector_get(detector_name)
    except KeyError:
        logger.warning("batch detection for an unknown detector %r ignored", detector_name[:100])
        return _tally([]) | {"events": 0}
    key = _cursor_key(detector.name, principal)
    try:
        cursor = cache.get(key)
    except Exception:  # the cache is a shortcut here: without it the batch starts from ``since``
        cursor = None
    start = since
    if cursor is not None:
        start = max(start, datetime.datetime.fromtimestamp(cursor, tz=datetime.UTC))
    findings, judged, newest = detector.on_principal(principal, since=start - LATE_COMMIT_MARGIN)
    outcomes = [alert_record_finding(finding=finding)[1] for finding in findings]
    if newest is not None and (cursor is None or newest.timestamp() > cursor):
        try:
            cache.set(key, newest.timestamp(), CURSOR_CACHE_SECONDS)
        except Exception:
            logger.warning("could not keep the detection cursor of %s (the cache is down)", detector.name)
    return _tally(outcomes) | {"events": judged}


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
