"""Authentication detectors on synthetic audit events, at, just under and just over their thresholds."""

from __future__ import annotations

import datetime

import pytest

from audit.actions import Action, Outcome
from monitoring.detectors import detector_get
from monitoring.models import Alert, Severity
from monitoring.services.detection import detection_run_for_event, detection_sweep
from tests.monitoring.conftest import NOW, bulk, record

pytestmark = pytest.mark.django_db

MINUTE = datetime.timedelta(minutes=1)


def failures(count, *, account="alice", ip="203.0.113.9", start=NOW - 10 * MINUTE, step=MINUTE / 2, **kwargs):
    return [
        record(Action.LOGIN_FAILED, at=start + index * step, ip=ip, subject=account, outcome=Outcome.FAILURE, **kwargs)
        for index in range(count)
    ]


# --- brute force -------------------------------------------------------------------------------
def test_brute_force_fires_on_the_event_that_reaches_the_threshold(settings):
    settings.MONITORING_BRUTE_FORCE_THRESHOLD = 5
    events = failures(6)
    detector = detector_get("brute_force")
    assert detector.on_event(events[3]) == []  # 4 failures: just under
    [finding] = detector.on_event(events[4])  # 5: at the threshold
    assert finding.subject == "alice"
    assert finding.counts["count"] == 5
    assert finding.triggered_at == events[4].timestamp
    assert finding.last_event_id == events[4].pk
    assert finding.resolved_event_ids() == [event.pk for event in reversed(events[:5])]
    assert detector.on_event(events[5])[0].counts["count"] == 6  # over


def test_brute_force_counts_only_the_window(settings):
    settings.MONITORING_BRUTE_FORCE_THRESHOLD = 3
    settings.MONITORING_BRUTE_FORCE_WINDOW_SECONDS = 60
    events = failures(3, step=datetime.timedelta(seconds=31))  # first and third 62 s apart
    assert detector_get("brute_force").on_event(events[2]) == []
    settings.MONITORING_BRUTE_FORCE_WINDOW_SECONDS = 62
    assert len(detector_get("brute_force").on_event(events[2])) == 1  # the window includes its start


def test_brute_force_counts_mfa_failures_and_separates_accounts(settings):
    settings.MONITORING_BRUTE_FORCE_THRESHOLD = 4
    failures(2, account="alice")
    failures(3, account="bob")
    mfa = record(Action.MFA_VERIFY_FAILED, at=NOW - MINUTE, ip="203.0.113.9", subject="alice", outcome=Outcome.FAILURE)
    assert detector_get("brute_force").on_event(mfa) == []  # alice: 3
    second = record(Action.MFA_VERIFY_FAILED, at=NOW, ip="203.0.113.9", subject="alice", outcome=Outcome.FAILURE)
    [finding] = detector_get("brute_force").on_event(second)
    assert finding.subject == "alice" and finding.counts["count"] == 4


def test_brute_force_sweep_matches_real_time(settings, now):
    settings.MONITORING_BRUTE_FORCE_THRESHOLD = 5
    failures(4, account="under")
    failures(5, account="at")
    failures(6, account="over")
    findings = detector_get("brute_force").sweep(now=NOW)
    assert sorted((finding.subject, finding.counts["count"]) for finding in findings) == [("at", 5), ("over", 6)]
    assert all(finding.severity == Severity.HIGH for finding in findings)


def test_real_time_and_sweep_raise_one_alert_between_them(settings, now):
    settings.MONITORING_BRUTE_FORCE_THRESHOLD = 3
    events = failures(3)
    assert detection_run_for_event(event_id=events[2].pk)["alerts_created"] == 1
    result = detection_sweep(now=NOW)
    assert result["alerts_created"] == 0 and result["duplicates"] >= 1
    assert Alert.objects.filter(detector="brute_force").count() == 1


# --- password spraying -------------------------------------------------------------------------
def test_spraying_counts_distinct_accounts_from_one_ip(settings, now):
    settings.MONITORING_SPRAYING_ACCOUNT_THRESHOLD = 4
    start = NOW - 5 * MINUTE
    events = [
        record(Action.LOGIN_FAILED, at=start + index * MINUTE / 4, ip="198.51.100.7", subject=f"user{index % 3}")
        for index in range(9)
    ]  # 9 attempts, 3 accounts: under
    assert detector_get("password_spraying").on_event(events[-1]) == []
    at = record(Action.LOGIN_FAILED, at=NOW - MINUTE, ip="198.51.100.7", subject="user3")
    [finding] = detector_get("password_spraying").on_event(at)
    assert finding.subject == "198.51.100.7" and finding.subject_type == "ip"
    assert finding.counts["count"] == 4 and finding.counts["events"] == 10
    record(Action.LOGIN_FAILED, at=NOW - MINUTE, ip="198.51.100.8", subject="user9")  # another IP
    [swept] = detector_get("password_spraying").sweep(now=NOW)
    assert swept.subject == "198.51.100.7"


# --- lockouts ----------------------------------------------------------------------------------
def test_each_lockout_alerts_and_repeats_update_it(settings, now):
    first = record(Action.ACCOUNT_LOCKED, at=NOW - 2 * MINUTE, subject="carol", outcome=Outcome.DENIED)
    assert detection_run_for_event(event_id=first.pk)["alerts_created"] == 1
    second = record(Action.ACCOUNT_LOCKED, at=NOW - MINUTE, subject="carol", outcome=Outcome.DENIED)
    assert detection_run_for_event(event_id=second.pk)["alerts_updated"] == 1
    alert = Alert.objects.get(detector="lockout")
    assert alert.count == 2 and alert.subject == "carol" and alert.severity == Severity.MEDIUM


def test_lockout_threshold_above_one(settings):
    settings.MONITORING_LOCKOUT_THRESHOLD = 2
    first = record(Action.ACCOUNT_LOCKED, at=NOW - 2 * MINUTE, subject="dave")
    assert detector_get("lockout").on_event(first) == []
    second = record(Action.ACCOUNT_LOCKED, at=NOW - MINUTE, subject="dave")
    assert len(detector_get("lockout").on_event(second)) == 1


# --- unusual hour ------------------------------------------------------------------------------
def _office_hours_baseline(user, days: int, hour: int = 9):
    """One login a day at ``hour`` UTC for ``days`` days before NOW."""
    times = [(NOW - datetime.timedelta(days=day)).replace(hour=hour, minute=5) for day in range(1, days + 1)]
    bulk(Action.LOGIN_SUCCEEDED, times=times, ip="192.0.2.1", agent="Firefox", actor=user, subject=user)


def test_unusual_hour_is_silent_while_the_baseline_is_thin(settings, make_user):
    settings.MONITORING_UNUSUAL_HOUR_MIN_LOGINS = 10
    user = make_user("erin")
    _office_hours_baseline(user, days=9)  # just under
    night = record(Action.LOGIN_SUCCEEDED, at=NOW.replace(hour=3), ip="192.0.2.1", actor=user, subject=user)
    assert detector_get("unusual_login_hour").on_event(night) == []
    _office_hours_baseline(user, days=10)  # adds ten more: 19, over the minimum
    assert len(detector_get("unusual_login_hour").on_event(night)) == 1


def test_unusual_hour_against_the_users_own_hours(settings, make_user):
    user = make_user("frank")
    _office_hours_baseline(user, days=20, hour=9)
    detector = detector_get("unusual_login_hour")
    usual = record(Action.LOGIN_SUCCEEDED, at=NOW.replace(hour=9), ip="192.0.2.1", actor=user, subject=user)
    near = record(Action.LOGIN_SUCCEEDED, at=NOW.replace(hour=10), ip="192.0.2.1", actor=user, subject=user)
    assert detector.on_event(usual) == [] and detector.on_event(near) == []  # within the 1 h tolerance
    night = record(Action.LOGIN_SUCCEEDED, at=NOW.replace(hour=3, minute=0), ip="192.0.2.1", actor=user, subject=user)
    [finding] = detector.on_event(night)
    assert finding.subject == "frank" and finding.severity == Severity.LOW  # 09:00 and 10:00 today come later
    assert finding.counts == {"hour_utc": 3, "baseline_logins": 20, "logins_near_hour": 0, "share": 0.0}


def test_unusual_hour_share_at_the_threshold_is_usual(settings, make_user):
    settings.MONITORING_UNUSUAL_HOUR_MIN_SHARE = 0.1
    settings.MONITORING_UNUSUAL_HOUR_TOLERANCE_HOURS = 0
    user = make_user("gina")
    _office_hours_baseline(user, days=18, hour=9)
    bulk(
        Action.LOGIN_SUCCEEDED,
        times=[NOW - datetime.timedelta(days=3, hours=11), NOW - datetime.timedelta(days=4, hours=11)],
        actor=user, subject=user,
    )  # 2 of 20 logins at 03:xx: share 0.1
    night = record(Action.LOGIN_SUCCEEDED, at=NOW.replace(hour=3), actor=user, subject=user)
    assert detector_get("unusual_login_hour").on_event(night) == []
    settings.MONITORING_UNUSUAL_HOUR_MIN_SHARE = 0.11
    assert len(detector_get("unusual_login_hour").on_event(night)) == 1


def test_unusual_hour_sweep_finds_the_same(make_user):
    user = make_user("hank")
    _office_hours_baseline(user, days=20, hour=14)
    early_morning = NOW.replace(hour=2, minute=10)
    assert detector_get("unusual_login_hour").sweep(now=early_morning) == []
    login = record(Action.LOGIN_SUCCEEDED, at=early_morning - 5 * MINUTE, actor=user, subject=user)
    [swept] = detector_get("unusual_login_hour").sweep(now=early_morning)
    [live] = detector_get("unusual_login_hour").on_event(login)
    assert swept.counts == live.counts and swept.last_event_id == live.last_event_id == login.pk


# --- new device / IP ---------------------------------------------------------------------------
def test_new_ip_and_device_after_enough_history(settings, make_user, now):
    settings.MONITORING_NEW_DEVICE_MIN_PRIOR_LOGINS = 3
    user = make_user("ivy")
    bulk(
        Action.LOGIN_SUCCEEDED, times=[NOW - datetime.timedelta(days=day) for day in (1, 2)],
        ip="192.0.2.10", agent="Firefox/120", actor=user, subject=user,
    )
    detector = detector_get("new_device")
    early = record(Action.LOGIN_SUCCEEDED, at=NOW - 20 * MINUTE, ip="203.0.113.50", agent="Firefox/120", actor=user,
                   subject=user)
    assert detector.on_event(early) == []  # two prior logins: history too thin
    same = record(Action.LOGIN_SUCCEEDED, at=NOW - 10 * MINUTE, ip="192.0.2.10", agent="Firefox/120", actor=user,
                  subject=user)
    assert detector.on_event(same) == []  # known IP, known device
    new_ip = record(Action.LOGIN_SUCCEEDED, at=NOW - 5 * MINUTE, ip="198.51.100.77", agent="Firefox/120", actor=user,
                    subject=user)
    [finding] = detector.on_event(new_ip)
    assert finding.counts == {"new_ip": True, "new_device": False, "prior_logins": 4}
    assert finding.severity == Severity.LOW and "198.51.100.77" in finding.summary
    both = record(Action.LOGIN_SUCCEEDED, at=NOW - MINUTE, ip="198.51.100.99", agent="curl/8", actor=user, subject=user)
    [finding] = detector.on_event(both)
    assert finding.severity == Severity.MEDIUM
    swept = {(f.counts["new_ip"], f.counts["new_device"]) for f in detector.sweep(now=NOW)}
    assert swept == {(True, False), (True, True)}
