"""The end-to-end benchmark's own promises (bench/e2e_bench.py; the run itself is make bench-e2e).

It reads wrk's figures right, stops on a non-2xx cell, and measures the platform as deployed:
production settings, nothing eager, and a database whose durability it does not turn off.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import e2e_bench

WRK_OUTPUT = """Running 5s test @ http://127.0.0.1:4000/api/v2/memories/1/
  2 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.31ms    4.02ms  60.11ms   81.22%
    Req/Sec   163.40     20.12   210.00     70.00%
  Latency Distribution
     50%   11.52ms
     75%   13.90ms
     90%   16.01ms
     99%  812.00us
  1634 requests in 5.01s, 2.11MB read
  Non-2xx or 3xx responses: 3
Requests/sec:    326.15
Transfer/sec:    431.12KB
"""


def test_wrk_figures_are_read_with_their_units():
    result = e2e_bench.parse_wrk(WRK_OUTPUT)
    assert result["rps"] == 326.15
    assert result["p50"] == pytest.approx(0.01152)
    assert result["p99"] == pytest.approx(0.000812)
    assert result["non_2xx"] == 3 and result["socket_errors"] == ""


def test_output_without_figures_is_a_clear_error():
    with pytest.raises(e2e_bench.BenchError, match="no throughput"):
        e2e_bench.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")
    with pytest.raises(e2e_bench.BenchError, match="no latency distribution"):
        e2e_bench.parse_wrk("Requests/sec:    1.00\n")


def test_the_platform_runs_with_production_settings_and_nothing_eager(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CELERY_TASK_ALWAYS_EAGER", "true")  # inherited from a test shell: dropped
    monkeypatch.setenv("DATABASE_URL", "sqlite:///elsewhere.sqlite3")
    environment = e2e_bench.platform_env("postgres://u:p@127.0.0.1:5432", "redis://127.0.0.1:6379", 8000, tmp_path, {})
    assert environment["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
    assert "CELERY_TASK_ALWAYS_EAGER" not in environment
    assert environment["DATABASE_URL"] == "postgres://u:p@127.0.0.1:5432/platform"
    assert environment["CELERY_BROKER_URL"].startswith("redis://") and environment["API_CACHE_URL"].startswith(
        "redis://"
    )
    assert environment["WEB_CONCURRENCY"] == "2"


def test_the_database_server_keeps_its_durable_defaults():
    """No option that turns durability off is passed to PostgreSQL (with-postgres.sh passes three)."""
    source = Path(e2e_bench.__file__).read_text()
    for option in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
        assert option not in source
