"""API anomaly detectors and the bulk-read (exfiltration) detector."""

from __future__ import annotations

import datetime

import pytest

from audit.actions import Action, Outcome
from monitoring.detectors import detector_get
from monitoring.models import Severity
from tests.monitoring.conftest import NOW, bulk, record

pytestmark = pytest.mark.django_db

MINUTE = datetime.timedelta(minutes=1)
HOUR = datetime.timedelta(hours=1)


def spread(count: int, *, end: datetime.datetime, span: datetime.timedelta) -> list[datetime.datetime]:
    return [end - span + span * (index + 1) / (count + 1) for index in range(count)]


# --- API key rate ------------------------------------------------------------------------------
@pytest.fixture
def rate_settings(settings):
    settings.MONITORING_API_RATE_WINDOW_SECONDS = 300
    settings.MONITORING_API_RATE_MIN_REQUESTS = 20
    settings.MONITORING_API_RATE_FACTOR = 10
    settings.MONITORING_API_RATE_BASELINE_DAYS = 1
    return settings


def _baseline_of_ten_per_window(key: str) -> None:
    """2,870 requests in the day before the window: (86,400 - 300) / 300 = 287 windows, 10 each."""
    bulk(Action.API_KEY_USED, times=spread(2870, end=NOW - HOUR, span=22 * HOUR), api_key_id=key)


def test_api_key_rate_against_its_own_baseline(rate_settings):
    _baseline_of_ten_per_window("busy")
    bulk(Action.API_KEY_USED, times=spread(99, end=NOW - MINUTE, span=4 * MINUTE), api_key_id="busy")
    hundredth = record(Action.API_KEY_USED, at=NOW - MINUTE / 2, api_key_id="busy")
    detector = detector_get("api_key_rate")
    [finding] = detector.on_event(hundredth)  # 100 in the window = 10 x the mean of 10: at the limit
    assert finding.counts["volume"] == 100 and finding.counts["baseline_mean_per_window"] == pytest.approx(10.0)
    assert finding.subject == "busy" and finding.subject_type == "api_key"
    assert detector_get("api_key_rate").sweep(now=NOW)[0].counts["volume"] == 100


def test_api_key_rate_just_under_its_baseline_limit(rate_settings):
    _baseline_of_ten_per_window("busy")
    bulk(Action.API_KEY_USED, times=spread(98, end=NOW - MINUTE, span=4 * MINUTE), api_key_id="busy")
    last = record(Action.API_KEY_USED, at=NOW - MINUTE / 2, api_key_id="busy")  # 99 < 100
    assert detector_get("api_key_rate").on_event(last) == []
    assert detector_get("api_key_rate").sweep(now=NOW) == []


def test_a_new_key_alerts_only_from_the_floor(rate_settings):
    bulk(Action.API_KEY_USED, times=spread(18, end=NOW - MINUTE, span=3 * MINUTE), api_key_id="fresh")
    under = record(Action.API_KEY_USED, at=NOW - MINUTE / 2, api_key_id="fresh")  # 19
    assert detector_get("api_key_rate").on_event(under) == []
    at = record(Action.API_KEY_USED, at=NOW - MINUTE / 3, api_key_id="fresh")  # 20, no baseline
    [finding] = detector_get("api_key_rate").on_event(at)
    assert finding.counts["volume"] == 20 and finding.counts["baseline_mean_per_window"] == 0


# --- API error bursts, signatures, deprecated endpoints ----------------------------------------
def test_api_error_burst_counts_401_403_with_a_key_and_429(settings, now):
    settings.MONITORING_API_ERROR_THRESHOLD = 4
    detector = detector_get("api_error_burst")
    ip = "203.0.113.44"
    record(Action.API_KEY_REFUSED, at=NOW - 4 * MINUTE, ip=ip, api_key_id="k1", outcome=Outcome.DENIED)
    record(Action.RATE_LIMITED, at=NOW - 3 * MINUTE, ip=ip, api_key_id="k1", outcome=Outcome.DENIED)
    plain_denial = record(Action.PERMISSION_DENIED, at=NOW - 2 * MINUTE, ip=ip, outcome=Outcome.DENIED)
    assert detector.on_event(plain_denial) == []  # no key: not an API error (the probing detector's)
    third = record(Action.PERMISSION_DENIED, at=NOW - 2 * MINUTE, ip=ip, api_key_id="k1", outcome=Outcome.DENIED)
    assert detector.on_event(third) == []  # 3: under
    fourth = record(Action.RATE_LIMITED, at=NOW - MINUTE, ip=ip, api_key_id="k1", outcome=Outcome.DENIED)
    [finding] = detector.on_event(fourth)
    assert finding.subject == "k1" and finding.counts["count"] == 4
    assert [f.subject for f in detector.sweep(now=NOW)] == ["k1"]


def test_signature_failures_by_key(settings):
    settings.MONITORING_SIGNATURE_FAILURE_THRESHOLD = 2
    first = record(Action.REQUEST_SIGNATURE_FAILED, at=NOW - MINUTE, api_key_id="k2", outcome=Outcome.FAILURE)
    assert detector_get("signature_failures").on_event(first) == []
    second = record(Action.REQUEST_SIGNATURE_FAILED, at=NOW, api_key_id="k2", outcome=Outcome.FAILURE)
    [finding] = detector_get("signature_failures").on_event(second)
    assert finding.severity == Severity.HIGH and finding.subject == "k2"


def test_deprecated_endpoint_call_raises_one_low_alert_per_caller_a_day():
    from monitoring.services.alerts import alert_record_finding

    detector = detector_get("deprecated_endpoint")
    first = record(Action.DEPRECATED_ENDPOINT_CALLED, at=NOW - 5 * HOUR, api_key_id="old-client")
    later = record(Action.DEPRECATED_ENDPOINT_CALLED, at=NOW, api_key_id="old-client")
    [finding] = detector.on_event(first)
    assert finding.severity == Severity.LOW
    created, outcome = alert_record_finding(finding=finding)
    assert outcome == "created"
    updated, outcome = alert_record_finding(finding=detector.on_event(later)[0])
    assert outcome == "updated" and updated.pk == created.pk and updated.count == 2


# --- bulk reads --------------------------------------------------------------------------------
@pytest.fixture
def reader(make_user, settings):
    settings.MONITORING_BULK_READ_WINDOW_SECONDS = 3600
    settings.MONITORING_BULK_READ_MIN_EVENTS = 30
    settings.MONITORING_BULK_READ_FACTOR = 5
    settings.MONITORING_BULK_READ_BASELINE_DAYS = 2
    settings.MONITORING_BULK_READ_EXPORT_WEIGHT = 10
    user = make_user("reader")
    # Baseline: 94 reads in the 47 hours before the window = 2 per hour.
    bulk(Action.MEMORY_READ, times=spread(94, end=NOW - HOUR, span=47 * HOUR), actor=user)
    return user


def test_bulk_read_at_floor_and_factor(reader):
    detector = detector_get("bulk_read")
    bulk(Action.MEMORY_READ, times=spread(28, end=NOW - MINUTE, span=50 * MINUTE), actor=reader)
    under = record(Action.MEMORY_READ, at=NOW - MINUTE / 2, actor=reader)  # 29 < floor 30
    assert detector.on_event(under) == []
    at = record(Action.MEMORY_LIST, at=NOW - MINUTE / 3, actor=reader)  # 30 >= max(30, 5 x 2)
    [finding] = detector.on_event(at)
    assert finding.subject == "reader" and finding.severity == Severity.HIGH
    assert finding.counts["volume"] == 30 and finding.counts["baseline_mean_per_window"] == pytest.approx(2.0)


def test_an_export_weighs_like_many_reads(reader, now):
    bulk(Action.MEMORY_READ, times=spread(19, end=NOW - MINUTE, span=30 * MINUTE), actor=reader)
    export = record(Action.CONTEXT_EXPORTED, at=NOW - MINUTE / 2, actor=reader)  # 19 + 10 = 29
    assert detector_get("bulk_read").on_event(export) == []
    context_export = record(Action.CONTEXT_EXPORTED, at=NOW - MINUTE / 3, actor=reader)  # 39
    assert detector_get("bulk_read").on_event(context_export)[0].counts["volume"] == 39
    [swept] = detector_get("bulk_read").sweep(now=NOW)
    assert swept.counts["volume"] == 39


def test_a_heavy_reader_is_measured_against_their_own_baseline(make_user, settings):
    settings.MONITORING_BULK_READ_MIN_EVENTS = 30
    settings.MONITORING_BULK_READ_FACTOR = 5
    settings.MONITORING_BULK_READ_BASELINE_DAYS = 2
    heavy = make_user("heavy")
    bulk(Action.MEMORY_READ, times=spread(470, end=NOW - HOUR, span=47 * HOUR), actor=heavy)  # 10 per hour
    bulk(Action.MEMORY_READ, times=spread(48, end=NOW - MINUTE, span=50 * MINUTE), actor=heavy)
    last = record(Action.MEMORY_READ, at=NOW - MINUTE / 2, actor=heavy)  # 49 < 5 x 10
    assert detector_get("bulk_read").on_event(last) == []
