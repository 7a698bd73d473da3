"""Reads and lists counted per user and interval, and volume windows summed from minute buckets (issue #17).

A burst of reads publishes one detection task per user and interval (not one per read), the task
judges every read of the batch on the window ending at it, and the window comes from per-minute
buckets read once each, not from an hour of rows per read. The verdicts are those of the whole
aggregate: the same alerts as one read at a time.
"""

from __future__ import annotations

import datetime
import random

import pytest
import time_machine

from audit.actions import Action
from audit.models import AuditEvent
from monitoring.detectors import detector_get
from monitoring.models import Alert
from monitoring.services import detection
from monitoring.tasks import detect_principal
from tests.monitoring.conftest import NOW, bulk, record

pytestmark = pytest.mark.django_db

SECOND = datetime.timedelta(seconds=1)
MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def reader(make_user, settings):
    """A user with a baseline of 2 reads an hour over two days; the floor is 30 reads an hour."""
    settings.MONITORING_BULK_READ_WINDOW_SECONDS = 3600
    settings.MONITORING_BULK_READ_MIN_EVENTS = 30
    settings.MONITORING_BULK_READ_FACTOR = 5
    settings.MONITORING_BULK_READ_BASELINE_DAYS = 2
    settings.MONITORING_BULK_READ_EXPORT_WEIGHT = 10
    settings.MONITORING_VOLUME_BUCKET_SETTLE_SECONDS = 30
    user = make_user("reader")
    spread = [NOW - HOUR - 47 * HOUR * (index + 1) / 95 for index in range(94)]
    bulk(Action.MEMORY_READ, times=spread, actor=user)
    return user


@pytest.fixture
def not_eager():
    """Tasks published, not run at once (as with a broker and a worker)."""
    conf = detect_principal.app.conf
    saved, conf.task_always_eager = conf.task_always_eager, False
    detection.detection_hand_off_reset()
    yield
    conf.task_always_eager = saved
    detection.detection_hand_off_reset()


@pytest.fixture
def published(monkeypatch, not_eager):
    """What the hand-off publishes, as a broker would hold it (the worker runs it later)."""
    calls = []
    monkeypatch.setattr(
        detection, "hand_off_later", lambda task, countdown, *args: calls.append((task.name, countdown, args)) or True
    )
    return calls


def _run(calls) -> list[dict]:
    """Run the published batch tasks, as the worker would once they are due."""
    return [detect_principal.run(*args) for name, _countdown, args in calls if name == "monitoring.detect_principal"]


# --- the window from minute buckets ---------------------------------------------------------------
def test_the_window_from_buckets_equals_the_whole_aggregate(reader, now):
    rng = random.Random(17)
    times = sorted(NOW - datetime.timedelta(seconds=rng.uniform(0, 2 * 3600)) for _ in range(400))
    bulk(Action.MEMORY_READ, times=times[:300], actor=reader)
    bulk(Action.MEMORY_LIST, times=times[300:390], actor=reader)
    bulk(Action.CONTEXT_EXPORTED, times=times[390:], actor=reader)
    detector = detector_get("bulk_read")
    for until in (NOW, NOW - 7 * SECOND, NOW - 10 * MINUTE - 13 * SECOND, NOW - HOUR + 1500 * SECOND, times[200]):
        whole = detector.window_figures(str(reader.pk), until, buckets=False)
        assert detector.window_figures(str(reader.pk), until) == whole  # buckets read and kept
        assert detector.window_figures(str(reader.pk), until) == whole  # buckets from the cache
        assert whole["current"] > 0


def test_a_kept_window_costs_one_query_of_its_edges_not_an_hour_of_rows(reader, now, django_assert_num_queries):
    bulk(Action.MEMORY_READ, times=[NOW - index * 7 * SECOND for index in range(500)], actor=reader)
    detector = detector_get("bulk_read")
    first = detector.window_figures(str(reader.pk), NOW)
    with django_assert_num_queries(1):  # the edges; every settled minute is a bucket in the cache
        again = detector.window_figures(str(reader.pk), NOW + 20 * SECOND)
    whole = detector.window_figures(str(reader.pk), NOW, buckets=False)
    assert again["current"] == first["current"] == whole["current"]


def test_an_event_committed_into_a_kept_minute_is_not_counted_until_the_sweep(reader, now):
    """The documented bound: a bucket is kept once its minute settled; the sweep reads the audit table."""
    detector = detector_get("bulk_read")
    before = detector.window_figures(str(reader.pk), NOW)["current"]
    bulk(Action.MEMORY_READ, times=[NOW - 20 * MINUTE], actor=reader)  # late: that minute is kept
    assert detector.window_figures(str(reader.pk), NOW)["current"] == before
    assert detector.window_figures(str(reader.pk), NOW, buckets=False)["current"] == before + 1


def test_an_export_weight_change_reads_new_buckets(reader, now, settings):
    bulk(Action.CONTEXT_EXPORTED, times=[NOW - 30 * MINUTE], actor=reader)
    detector = detector_get("bulk_read")
    assert detector.window_figures(str(reader.pk), NOW)["current"] == 10
    settings.MONITORING_BULK_READ_EXPORT_WEIGHT = 50
    assert detector.window_figures(str(reader.pk), NOW)["current"] == 50


# --- batches: one task per user and interval ------------------------------------------------------
def _reads(user, count: int, *, end: datetime.datetime, span: datetime.timedelta, capture) -> list[AuditEvent]:
    events = []
    with capture(execute=True):
        for index in range(count):
            events.append(record(Action.MEMORY_READ, at=end - span + span * (index + 1) / count, actor=user))
    return events


def test_a_burst_of_reads_publishes_one_task_and_raises_exactly_one_alert(
    reader, now, published, django_capture_on_commit_callbacks
):
    events = _reads(reader, 45, end=NOW, span=20 * SECOND, capture=django_capture_on_commit_callbacks)
    assert [(name, args[:2]) for name, _countdown, args in published] == [
        ("monitoring.detect_principal", ("bulk_read", str(reader.pk)))
    ]
    [(_name, countdown, (_detector, _principal, since))] = published
    assert countdown >= 1.0 and since == events[0].timestamp.isoformat()
    [result] = _run(published)
    assert result["events"] == 45 and result["alerts_created"] == 1
    [alert] = Alert.objects.filter(detector="bulk_read")
    assert alert.subject == "reader" and alert.count == 1
    assert alert.evidence["counts"]["volume"] == 45  # the newest read's window
    assert alert.triggered_at == events[29].timestamp  # the 30th read reached the floor (30 >= 5 x 2)
    assert alert.last_event_id == events[-1].pk


def test_the_next_interval_updates_the_alert_and_a_rerun_changes_nothing(
    reader, now, published, django_capture_on_commit_callbacks, settings
):
    settings.MONITORING_DETECTION_BATCH_SECONDS = 1
    _reads(reader, 35, end=NOW, span=10 * SECOND, capture=django_capture_on_commit_callbacks)
    _run(published)
    assert _run(published)[0]["alerts_created"] == 0  # the same batch again: a duplicate
    published.clear()
    detection.detection_hand_off_reset()  # the interval has passed
    later = _reads(reader, 5, end=NOW + 5 * SECOND, span=2 * SECOND, capture=django_capture_on_commit_callbacks)
    assert len(published) == 1
    [result] = _run(published)
    assert result["alerts_updated"] == 1 and result["events"] < 40  # from the cursor, not the whole burst
    [alert] = Alert.objects.filter(detector="bulk_read")
    assert alert.count == 2 and alert.evidence["counts"]["volume"] == 40 and alert.last_event_id == later[-1].pk


def test_reads_spread_under_the_threshold_raise_nothing(
    reader, make_user, now, published, django_capture_on_commit_callbacks
):
    """A read every 125 s for three hours, in hourly batches: any hour holds at most 29 < 30 (3,600 / 125 = 28.8)."""
    steady = make_user("steady")  # no baseline: the floor (30) is the limit
    times = [NOW - 3 * HOUR + index * 125 * SECOND for index in range(86)]
    for hour in range(3):
        detection.detection_hand_off_reset()  # a new interval: the next read publishes again
        with django_capture_on_commit_callbacks(execute=True):
            for moment in times[hour * 29 : (hour + 1) * 29]:
                record(Action.MEMORY_READ, at=moment, actor=steady)
    results = _run(published)
    assert len(results) == 3 and sum(result["events"] for result in results) >= 86
    assert not Alert.objects.filter(detector="bulk_read").exists()
    assert detector_get("bulk_read").sweep(now=NOW) == []


def test_a_window_that_crosses_inside_a_batch_and_falls_back_still_fires(reader, now):
    """The batch slides event by event: a peak in its middle is seen, not only its last window."""
    detector = detector_get("bulk_read")
    # 30 reads within half a minute, about an hour ago, then one read now: the peak has left the window.
    peak = [NOW - 62 * MINUTE + index * SECOND for index in range(30)]
    bulk(Action.MEMORY_READ, times=peak, actor=reader)
    bulk(Action.MEMORY_READ, times=[NOW], actor=reader)
    principal = str(reader.pk)
    assert detector.window_figures(principal, NOW)["current"] < 30
    volumes = {moment: detector.window_figures(principal, moment, buckets=False)["current"] for moment in peak}
    crossing = min(moment for moment, volume in volumes.items() if volume >= 30)
    findings, judged, newest = detector.on_principal(principal, since=NOW - 63 * MINUTE)
    assert judged == 31 and newest == NOW
    [finding] = findings
    assert finding.triggered_at == crossing and finding.last_seen == peak[-1]
    assert finding.counts["volume"] == volumes[peak[-1]]


def test_only_reads_and_lists_are_batched_other_watched_events_go_alone(
    reader, now, published, django_capture_on_commit_callbacks, monkeypatch
):
    alone = []
    monkeypatch.setattr(detection, "hand_off", lambda task, *args: alone.append((task.name, args)) or True)
    with django_capture_on_commit_callbacks(execute=True):
        export = record(Action.CONTEXT_EXPORTED, at=NOW, actor=reader)
        read = record(Action.MEMORY_READ, at=NOW, actor=reader)
        listed = record(Action.CONTEXT_LIST, at=NOW, actor=reader)
    assert alone == [("monitoring.detect_event", (export.pk,))]
    assert len(published) == 1 and read.pk and listed.pk  # the read and the list: one batch task


def test_with_batching_off_every_read_is_handed_off_alone(
    reader, now, published, django_capture_on_commit_callbacks, monkeypatch, settings
):
    settings.MONITORING_DETECTION_BATCHING = False
    alone = []
    monkeypatch.setattr(detection, "hand_off", lambda task, *args: alone.append((task.name, args)) or True)
    events = _reads(reader, 3, end=NOW, span=SECOND, capture=django_capture_on_commit_callbacks)
    assert alone == [("monitoring.detect_event", (event.pk,)) for event in events] and published == []


def test_a_refused_publish_is_tried_again_by_the_next_read(
    reader, now, monkeypatch, not_eager, django_capture_on_commit_callbacks
):
    attempts = []
    monkeypatch.setattr(detection, "hand_off_later", lambda task, countdown, *args: attempts.append(args) and False)
    _reads(reader, 3, end=NOW, span=SECOND, capture=django_capture_on_commit_callbacks)
    assert len(attempts) == 3  # each read tried: none was covered by a queued task


def test_a_batch_for_an_unknown_detector_does_nothing(reader):
    result = detect_principal.run("no_such_detector", str(reader.pk), NOW.isoformat())
    assert result["events"] == 0 and result["findings"] == 0


def test_with_the_cache_down_a_batch_still_judges_from_its_start(reader, now, monkeypatch):
    from django.core.cache import cache

    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    bulk(Action.MEMORY_READ, times=[NOW - index * SECOND for index in range(35)], actor=reader)
    for name in ("get", "set", "get_many", "set_many"):
        monkeypatch.setattr(cache, name, down)
    result = detection.detection_run_for_principal(
        detector_name="bulk_read", principal=str(reader.pk), since=NOW - 40 * SECOND
    )
    assert result["alerts_created"] == 1 and result["events"] == 35


@pytest.mark.parametrize("batching", [True, False])
def test_one_read_at_a_time_and_in_batches_reach_the_same_alert(reader, batching, settings):
    settings.MONITORING_DETECTION_BATCHING = batching
    bulk(Action.MEMORY_READ, times=[NOW - 50 * MINUTE + index * MINUTE for index in range(29)], actor=reader)
    with time_machine.travel(NOW + 10 * MINUTE, tick=False):
        last = record(Action.MEMORY_READ, at=NOW + 5 * MINUTE, actor=reader)
        [finding] = detector_get("bulk_read").on_event(last)
        assert finding.counts["volume"] == 30 and finding.triggered_at == last.timestamp


def test_eager_tasks_judge_every_read_at_once(reader, now, monkeypatch, django_capture_on_commit_callbacks):
    """With eager Celery (no worker runs the task later) no read waits for a later task."""
    calls = []
    monkeypatch.setattr(detection, "hand_off_later", lambda task, countdown, *args: calls.append(args) or True)
    detection.detection_hand_off_reset()
    assert detect_principal.app.conf.task_always_eager
    _reads(reader, 3, end=NOW, span=SECOND, capture=django_capture_on_commit_callbacks)
    assert len(calls) == 3
