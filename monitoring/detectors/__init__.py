"""The detectors: small read-only services over the audit record.

``DETECTORS`` is the one list. ``detectors_for_action(action)`` answers which detectors look at
an event in real time; ``watched_actions()`` tells the ``event_recorded`` receiver which events
are worth handing to a worker at all; the scheduled sweep runs every detector's ``sweep``.
Thresholds are settings (``MONITORING_*``, defaults in ``monitoring/conf.py``) read at each run,
so a changed setting applies without a restart of the detectors.
"""

from __future__ import annotations

from functools import cache

from monitoring.detectors.api import ApiErrorBurstDetector, DeprecatedEndpointDetector, SignatureFailureDetector
from monitoring.detectors.authentication import (
    BruteForceDetector,
    LockoutDetector,
    NewDeviceDetector,
    PasswordSprayingDetector,
    UnusualHourDetector,
)
from monitoring.detectors.authorization import PermissionProbingDetector, PrivilegeEscalationDetector
from monitoring.detectors.base import Detector, Finding
from monitoring.detectors.rates import ApiKeyRateDetector, BulkReadDetector
from monitoring.detectors.system import (
    AuditChainFailureDetector,
    AuditSilenceDetector,
    BackupFailureDetector,
    JobFailedDetector,
    JobLateDetector,
    KeyRotationFailureDetector,
    ProcessPostureDetector,
)

__all__ = ["DETECTORS", "Detector", "Finding", "detector_get", "detectors_for_action", "watched_actions"]

DETECTORS: tuple[Detector, ...] = (
    BruteForceDetector(),
    PasswordSprayingDetector(),
    LockoutDetector(),
    UnusualHourDetector(),
    NewDeviceDetector(),
    PrivilegeEscalationDetector(),
    PermissionProbingDetector(),
    ApiKeyRateDetector(),
    ApiErrorBurstDetector(),
    SignatureFailureDetector(),
    DeprecatedEndpointDetector(),
    BulkReadDetector(),
    AuditSilenceDetector(),
    JobLateDetector(),
    JobFailedDetector(),
    AuditChainFailureDetector(),
    BackupFailureDetector(),
    KeyRotationFailureDetector(),
    ProcessPostureDetector(),
)


def detector_get(name: str) -> Detector:
    for detector in DETECTORS:
        if detector.name == name:
            return detector
    raise KeyError(name)


@cache
def _by_action() -> dict[str, tuple[Detector, ...]]:
    mapping: dict[str, list[Detector]] = {}
    for detector in DETECTORS:
        for action in detector.actions:
            mapping.setdefault(action, []).append(detector)
    return {action: tuple(detectors) for action, detectors in mapping.items()}


def detectors_for_action(action: str) -> tuple[Detector, ...]:
    return _by_action().get(action, ())


def watched_actions() -> frozenset[str]:
    return frozenset(_by_action())


def sweep_detectors() -> tuple[Detector, ...]:
    """The detectors of the detection sweep (the job-late check runs in the job-health job)."""
    return tuple(detector for detector in DETECTORS if getattr(detector, "in_detection_sweep", True))
