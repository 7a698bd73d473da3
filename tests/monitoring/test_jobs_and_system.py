"""Job runs from Celery's signals, and the detectors that watch the platform itself."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django_celery_beat.models import PeriodicTask

from audit.actions import Action, Outcome
from audit.models import AuditEvent
from monitoring import tasks
from monitoring.detectors import detector_get
from monitoring.models import Alert, JobOutcome, JobRun, Severity, Tally
from monitoring.schedule import BEAT_SCHEDULE, scheduled_task_names
from monitoring.services import detection
from monitoring.services.detection import DetectionSweepError, detection_run_for_event, job_health_check
from tests.monitoring.conftest import NOW, record

pytestmark = pytest.mark.django_db

MINUTE = datetime.timedelta(minutes=1)


# --- job runs ----------------------------------------------------------------------------------
def test_a_scheduled_job_run_is_recorded_with_its_counts(now):
    tasks.detection_sweep.delay()
    run = JobRun.objects.get(task_name="monitoring.detection_sweep")
    assert run.outcome == JobOutcome.SUCCESS
    assert run.started_at == NOW and run.finished_at == NOW
    assert run.counts["detectors"] >= 15 and run.counts["alerts_created"] == 0


def test_a_task_outside_the_schedule_is_not_a_job():
    tasks.health_ping.delay("token")
    assert not JobRun.objects.exists()


@pytest.mark.audit_coverage("system.scheduled_job_failed")
def test_a_failed_job_is_recorded_audited_and_alerted(monkeypatch, django_capture_on_commit_callbacks, now):
    def broken(**kwargs):
        raise ZeroDivisionError("secret detail that must not be stored")

    monkeypatch.setattr(detection, "detection_sweep", broken)
    with django_capture_on_commit_callbacks(execute=True):
        # As a worker runs it: the failure is caught by Celery's tracer, which sends task_failure
        # (eager runs that propagate the exception skip the signal).
        result = tasks.detection_sweep.apply(throw=False)
    assert isinstance(result.result, ZeroDivisionError)
    run = JobRun.objects.get(task_name="monitoring.detection_sweep")
    assert run.outcome == JobOutcome.FAILURE and run.error == "ZeroDivisionError"
    [event] = AuditEvent.objects.filter(action=Action.SCHEDULED_JOB_FAILED.value)
    assert event.outcome == Outcome.ERROR
    assert event.context == {"task": "monitoring.detection_sweep", "task_id": run.task_id, "error": "ZeroDivisionError"}
    assert "secret detail" not in str(event.context) and "secret detail" not in run.error
    alert = Alert.objects.get(detector="job_failed")  # through event_recorded → detect_event (eager)
    assert alert.subject == "monitoring.detection_sweep" and alert.severity == Severity.HIGH
    assert alert.evidence["event_ids"] == [event.pk]


def test_the_sweep_runs_every_detector_even_when_one_fails(monkeypatch, settings, now):
    settings.MONITORING_BRUTE_FORCE_THRESHOLD = 1
    record(Action.LOGIN_FAILED, at=NOW - MINUTE, subject="zoe", ip="192.0.2.5")
    monkeypatch.setattr(detector_get("lockout"), "sweep", lambda *, now: 1 / 0)
    with pytest.raises(DetectionSweepError, match="lockout"):
        detection.detection_sweep(now=NOW)
    assert Alert.objects.filter(detector="brute_force").count() == 1


# --- job late -----------------------------------------------------------------------------------
def _ran(task: str, at: datetime.datetime) -> None:
    JobRun.objects.create(task_name=task, task_id=f"{task}-{at.timestamp()}", started_at=at, finished_at=at,
                          outcome=JobOutcome.SUCCESS)


@pytest.fixture
def other_jobs_on_time():
    """Every scheduled job ran a moment ago, except the heartbeat (each test sets that)."""
    assert PeriodicTask.objects.filter(name__in=BEAT_SCHEDULE).count() == len(BEAT_SCHEDULE)  # post_migrate
    for task in scheduled_task_names() - {"monitoring.heartbeat"}:
        _ran(task, NOW - datetime.timedelta(seconds=30))


def test_a_job_exactly_at_the_grace_is_not_late(other_jobs_on_time, settings):
    settings.MONITORING_JOB_LATE_GRACE_SECONDS = 600
    _ran("monitoring.heartbeat", NOW - 11 * MINUTE)  # due 10 minutes ago: overdue == grace
    with time_machine.travel(NOW, tick=False):
        assert detector_get("job_late").sweep(now=NOW) == []


def test_a_job_past_the_grace_is_late(other_jobs_on_time, settings):
    settings.MONITORING_JOB_LATE_GRACE_SECONDS = 600
    _ran("monitoring.heartbeat", NOW - 11 * MINUTE - datetime.timedelta(seconds=1))
    with time_machine.travel(NOW, tick=False):
        [finding] = detector_get("job_late").sweep(now=NOW)
        assert finding.subject == "monitoring.heartbeat" and finding.counts["overdue_seconds"] == 601
        result = job_health_check(now=NOW)
    assert result["alerts_created"] == 1
    assert Alert.objects.get(detector="job_late").subject == "monitoring.heartbeat"


def test_a_disabled_job_is_never_late(other_jobs_on_time):
    _ran("monitoring.heartbeat", NOW - datetime.timedelta(hours=2))
    PeriodicTask.objects.filter(task="monitoring.heartbeat").update(enabled=False)
    with time_machine.travel(NOW, tick=False):
        assert detector_get("job_late").sweep(now=NOW) == []


def test_daily_jobs_are_measured_by_their_crontab(settings):
    for task in scheduled_task_names():
        _ran(task, NOW - datetime.timedelta(seconds=30))
    daily = BEAT_SCHEDULE["monitoring: daily security report"]["task"]
    JobRun.objects.filter(task_name=daily).delete()
    _ran(daily, datetime.datetime(2031, 3, 11, 6, 0, tzinfo=datetime.UTC))  # yesterday 06:00
    with time_machine.travel(datetime.datetime(2031, 3, 12, 6, 9, tzinfo=datetime.UTC), tick=False):
        assert detector_get("job_late").sweep(now=datetime.datetime(2031, 3, 12, 6, 9, tzinfo=datetime.UTC)) == []
    later = datetime.datetime(2031, 3, 12, 6, 11, tzinfo=datetime.UTC)
    with time_machine.travel(later, tick=False):
        subjects = [finding.subject for finding in detector_get("job_late").sweep(now=later)]
    assert daily in subjects


# --- audit silence -----------------------------------------------------------------------------
def _requests(count: int, at: datetime.datetime) -> None:
    Tally.objects.create(name="http.2xx", minute=at.replace(second=0, microsecond=0), count=count)


def test_audit_silence_while_requests_are_served(settings, make_user):
    settings.MONITORING_AUDIT_SILENCE_SECONDS = 900
    settings.MONITORING_AUDIT_SILENCE_MIN_REQUESTS = 50
    user = make_user("quiet")
    last = record(Action.MEMORY_READ, at=NOW - 20 * MINUTE, actor=user)
    record(Action.AUDIT_HEAD_PUBLISHED, at=NOW - 2 * MINUTE)  # the platform's own events do not count
    _requests(49, NOW - 5 * MINUTE)
    detector = detector_get("audit_silence")
    assert detector.sweep(now=NOW) == []  # 49 requests: under
    _requests(1, NOW - 4 * MINUTE)
    [finding] = detector.sweep(now=NOW)
    assert finding.severity == Severity.CRITICAL and finding.counts == {"requests": 50, "silent_seconds": 1200}
    assert finding.first_seen == last.timestamp and finding.triggered_at == last.timestamp + 15 * MINUTE
    record(Action.LOGIN_FAILED, at=NOW - MINUTE, subject="someone")
    assert detector.sweep(now=NOW) == []


# --- integrity failures ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("action", "outcome", "detector", "severity"),
    [
        (Action.AUDIT_VERIFIED, Outcome.FAILURE, "audit_chain_failure", Severity.CRITICAL),
        (Action.AUDIT_HEAD_PUBLISHED, Outcome.FAILURE, "audit_chain_failure", Severity.CRITICAL),
        (Action.BACKUP_VERIFIED, Outcome.FAILURE, "backup_failure", Severity.HIGH),
        (Action.BACKUP_FAILED, Outcome.ERROR, "backup_failure", Severity.HIGH),
        (Action.KEY_ROTATION_FAILED, Outcome.ERROR, "key_rotation_failure", Severity.HIGH),
    ],
)
def test_integrity_failures_alert(action, outcome, detector, severity):
    context = {"first_bad_sequence": 42} if detector == "audit_chain_failure" else {}  # as declared (audit/schema.py)
    event = record(action, at=NOW, outcome=outcome, context=context)
    detection_run_for_event(event_id=event.pk)
    alert = Alert.objects.get(detector=detector)
    assert alert.severity == severity and alert.evidence["event_ids"] == [event.pk]
    if detector == "audit_chain_failure":
        assert "at sequence 42" in alert.summary


@pytest.mark.parametrize("action", [Action.AUDIT_VERIFIED, Action.AUDIT_HEAD_PUBLISHED, Action.BACKUP_VERIFIED])
def test_successful_verifications_are_quiet(action):
    event = record(action, at=NOW, outcome=Outcome.SUCCESS)
    assert detection_run_for_event(event_id=event.pk)["findings"] == 0
