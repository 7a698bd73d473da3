"""The load test's own accounting (bench/load_bench.py; the run itself is make bench-load)."""

from __future__ import annotations

from collections import Counter

import pytest

from api import conf as api_conf
from bench import e2e_bench, load_bench
from encryption.keyring import PURPOSES

STATS_CSV = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,\
Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
GET,api: read,31,0,62,80,20,440,900,0.5,0.0,62,70,80,90,100,200,300,440,440,440,440
,Aggregated,77,2,57,70,20,500,800,1.3,0.0,57,60,70,80,90,200,300,500,500,500,500
"""


def test_locust_figures_are_read_per_request_name():
    stats = load_bench.parse_locust_stats(STATS_CSV)
    assert stats["api: read"] == {"requests": 31, "failures": 0, "rps": 0.5, "p50": 62.0, "p99": 440.0}
    assert stats["Aggregated"]["failures"] == 2


def test_no_statistics_is_a_clear_error():
    with pytest.raises(e2e_bench.BenchError, match="no statistics"):
        load_bench.parse_locust_stats("Type,Name,Request Count\n")


def test_completed_operations_give_the_expected_events_and_the_one_alert():
    ledger = {"login": {"ok": 2, "unexpected": {}}, "read": {"ok": 31, "unexpected": {}},
              "failed_login": {"ok": 10, "unexpected": {}}, "console_page": {"ok": 5, "unexpected": {}}}  # fmt: skip
    expected = load_bench.expected_events(ledger)
    assert expected["auth.login_succeeded"] == 2 and expected["memory.read"] == 31
    assert expected["auth.login_failed"] == 10 and expected["monitoring.alert_raised"] == 1
    observed = Counter(expected) | Counter({"system.process_started": 3})
    assert load_bench.compare_events(expected, observed) == []
    observed["memory.read"] -= 1  # one event lost
    assert load_bench.compare_events(expected, observed) == ["memory.read: expected 31, recorded 30"]


def test_an_unknown_operation_kind_is_refused():
    with pytest.raises(e2e_bench.BenchError, match="does not know"):
        load_bench.expected_events({"upload": {"ok": 1, "unexpected": {}}})


def test_alerts_must_be_exactly_the_bursts():
    assert load_bench.compare_alerts(Counter({("brute_force", "load-victim"): 1})) == []
    assert load_bench.compare_alerts(Counter()) == ["alert brute_force on load-victim: expected 1, raised 0"]
    extra = Counter({("brute_force", "load-victim"): 1, ("api_key_rate", "load-0001"): 1})
    assert load_bench.compare_alerts(extra) == ["alert api_key_rate on load-0001: expected 0, raised 1"]


def test_server_errors_count_5xx_and_unanswered_requests_only():
    ledger = {"read": {"ok": 1, "unexpected": {"500": 2, "0": 1, "403": 4}}}
    assert load_bench.server_errors(ledger) == 3


def test_key_use_bounds():
    assert load_bench.key_use_bounds(10, 300) == (10, 60)


def test_the_load_keeps_the_default_throttles_and_every_key_purpose():
    assert api_conf.DEFAULTS["API_THROTTLE_RATES"] == load_bench.DEFAULT_THROTTLE_RATES
    assert set(e2e_bench.ENCRYPTION_PURPOSES) == set(PURPOSES)
