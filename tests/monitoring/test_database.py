"""Database monitoring: the health check (latency, pool use) and slow-query capture."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from django.db import connection, connections

from monitoring.database import (
    SlowQueryLogger,
    connect_slow_query_capture,
    database_health,
    disconnect_slow_query_capture,
    install_slow_query_logger,
    normalise_sql,
    pool_stats,
)

SECRET = "hunter2-very-secret-value"


@pytest.fixture
def capture():
    """Slow-query capture on (as MonitoringConfig.ready() turns it on), off again afterwards."""
    connect_slow_query_capture()
    yield
    disconnect_slow_query_capture()


@pytest.fixture
def slow_records(caplog):
    caplog.set_level(logging.WARNING, logger="monitoring.slow_query")

    def records():
        return [record for record in caplog.records if record.name == "monitoring.slow_query"]

    return records


def _slow_sql(milliseconds: int) -> tuple[str, list]:
    """A statement that takes ``milliseconds`` on this database, with one secret parameter."""
    if connection.vendor == "postgresql":
        return "SELECT %s AS label, pg_sleep(%s)", [SECRET, milliseconds / 1000]
    connection.ensure_connection()
    connection.connection.create_function("sleep_ms", 1, lambda ms: time.sleep(ms / 1000) or 0)
    return "SELECT %s AS label, sleep_ms(%s)", [SECRET, milliseconds]


# --- Normalisation -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT * FROM t WHERE a = 'x' AND b = 42", "SELECT * FROM t WHERE a = ? AND b = ?"),
        ("SELECT * FROM t WHERE a = %s AND b = %(name)s", "SELECT * FROM t WHERE a = ? AND b = ?"),
        ("SELECT * FROM t WHERE a = $1 AND b = ?", "SELECT * FROM t WHERE a = ? AND b = ?"),
        ("SELECT 'it''s -- not a comment' FROM t", "SELECT ? FROM t"),
        ("SELECT 1 -- trailing 'secret'\nFROM t", "SELECT ? FROM t"),
        ("SELECT /* 'secret' */ a FROM t", "SELECT a FROM t"),
        ("SELECT E'\\x41', x'ff', N'abc', U&'d' FROM t", "SELECT ?, ?, ?, ? FROM t"),
        ("SELECT $$ body ' with quote $$, $fn$ other $fn$", "SELECT ?, ?"),
        ("SELECT a FROM t WHERE id IN (1, 2, 3, 4)", "SELECT a FROM t WHERE id IN (...)"),
        ("SELECT a FROM t WHERE id IN (%s, %s, %s)", "SELECT a FROM t WHERE id IN (...)"),
        ("INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s), (%s, %s)", "INSERT INTO t (a, b) VALUES (...), ..."),
        ('SELECT "t1"."col 2", t2.x1 FROM "t1"', 'SELECT "t1"."col 2", t2.x1 FROM "t1"'),
        ("SELECT a::text, -1.5e3, .5, 0x1F FROM t", "SELECT a::text, ?, ?, ? FROM t"),
        ("SELECT  a\n\t FROM   t", "SELECT a FROM t"),
    ],
)
def test_normalise_sql_replaces_every_literal_and_placeholder(sql, expected):
    assert normalise_sql(sql) == expected


def test_normalise_sql_bounds_the_length():
    columns = ", ".join(f"c{index}" for index in range(2000))
    text = normalise_sql(f"SELECT {columns} FROM t")  # noqa: S608 - a string, never executed
    assert len(text) < 2100
    assert "truncated from" in text


# --- Slow-query capture --------------------------------------------------------------------
@pytest.mark.django_db
def test_slow_query_is_logged_with_normalised_sql_and_duration_never_its_parameters(capture, settings, slow_records):
    settings.MONITORING_SLOW_QUERY_MS = 50
    sql, params = _slow_sql(120)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        assert cursor.fetchone()[0] == SECRET

    [record] = slow_records()
    details = record.slow_query
    assert details["duration_ms"] >= 100
    assert details["threshold_ms"] == 50
    assert details["sql"] in ("SELECT ? AS label, pg_sleep(?)", "SELECT ? AS label, sleep_ms(?)")
    assert details["vendor"] == connection.vendor
    assert details["database"] == "default"
    assert SECRET not in record.getMessage()
    assert SECRET not in repr(record.__dict__)


@pytest.mark.django_db
def test_literals_written_into_the_sql_are_not_logged_either(capture, settings, slow_records):
    settings.MONITORING_SLOW_QUERY_MS = 50
    sql, params = _slow_sql(80)
    inline = sql.replace("SELECT %s", f"SELECT '{SECRET}'", 1)
    with connection.cursor() as cursor:
        cursor.execute(inline, params[1:])
    [record] = slow_records()
    assert SECRET not in record.getMessage()
    assert record.slow_query["sql"].startswith("SELECT ? AS label")


@pytest.mark.django_db
def test_queries_under_the_threshold_are_not_logged(capture, settings, slow_records):
    settings.MONITORING_SLOW_QUERY_MS = 10_000
    sql, params = _slow_sql(5)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    list(connection.introspection.table_names())
    assert slow_records() == []


@pytest.mark.django_db
def test_default_threshold_is_500_ms(settings):
    from monitoring.database import _threshold_ms

    del settings.MONITORING_SLOW_QUERY_MS
    assert _threshold_ms() == 500


@pytest.mark.django_db(transaction=True)
def test_a_slow_query_that_fails_is_logged_with_its_error_class(capture, settings, slow_records):
    """A statement cancelled by the statement timeout is the slowest query of all: it is reported."""
    from django.db import DatabaseError, transaction

    settings.MONITORING_SLOW_QUERY_MS = 50
    if connection.vendor == "postgresql":
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 100")
            cursor.execute("SELECT %s, pg_sleep(%s)", [SECRET, 2])
    else:
        connection.ensure_connection()

        def sleep_then_fail(milliseconds):
            time.sleep(milliseconds / 1000)
            raise RuntimeError("interrupted")

        connection.connection.create_function("sleep_then_fail", 1, sleep_then_fail)
        with pytest.raises(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT %s, sleep_then_fail(%s)", [SECRET, 100])
    [record] = slow_records()
    assert record.slow_query["error"] in ("QueryCanceled", "OperationalError")
    assert record.slow_query["duration_ms"] >= 90
    assert SECRET not in record.getMessage()


@pytest.mark.django_db
def test_wrapper_reports_errors_of_slow_statements(settings, caplog):
    """A statement that fails after the threshold (say, a statement timeout) is reported with its class."""
    caplog.set_level(logging.WARNING, logger="monitoring.slow_query")
    settings.MONITORING_SLOW_QUERY_MS = 1

    def slow_failure(sql, params, many, context):
        time.sleep(0.01)
        raise TimeoutError("canceling statement due to statement timeout")

    with pytest.raises(TimeoutError):
        SlowQueryLogger()(slow_failure, "SELECT pg_sleep(%s)", [SECRET], False, {"connection": connection})
    [record] = [r for r in caplog.records if r.name == "monitoring.slow_query"]
    assert record.slow_query["error"] == "TimeoutError"
    assert record.slow_query["sql"] == "SELECT pg_sleep(?)"


@pytest.mark.django_db(transaction=True)
def test_wrapper_is_installed_once_however_often_the_connection_reconnects(capture):
    install_slow_query_logger(connection)
    connect_slow_query_capture()
    connection.close()
    connection.ensure_connection()
    connection.close()
    connection.ensure_connection()
    assert sum(isinstance(wrapper, SlowQueryLogger) for wrapper in connection.execute_wrappers) == 1


@pytest.mark.django_db(transaction=True)
def test_new_connections_in_other_threads_get_the_wrapper(capture):
    seen = {}

    def worker():
        try:
            connections["default"].ensure_connection()
            seen["installed"] = any(isinstance(w, SlowQueryLogger) for w in connections["default"].execute_wrappers)
        finally:
            connections["default"].close()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == {"installed": True}


@pytest.mark.django_db
def test_disconnect_removes_the_wrapper():
    connect_slow_query_capture()
    connection.ensure_connection()
    assert any(isinstance(wrapper, SlowQueryLogger) for wrapper in connection.execute_wrappers)
    disconnect_slow_query_capture()
    assert not any(isinstance(wrapper, SlowQueryLogger) for wrapper in connection.execute_wrappers)


@pytest.mark.django_db
def test_reporting_never_breaks_the_query(capture, settings, monkeypatch):
    settings.MONITORING_SLOW_QUERY_MS = 0.000001

    def broken(*args, **kwargs):
        raise RuntimeError("log handler exploded")

    monkeypatch.setattr("monitoring.database.normalise_sql", broken)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone()[0] == 1


# --- Health --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_health_measures_round_trip_latency():
    result = database_health()
    assert result["ok"] is True
    assert result["vendor"] == connection.vendor
    assert result["round_trips"] == 3
    assert 0 < result["latency_ms"] <= result["latency_max_ms"] < 5000


@pytest.mark.django_db
def test_health_reports_a_failure_by_error_class_only(monkeypatch):
    from django.db.utils import OperationalError

    def refuse(*args, **kwargs):
        raise OperationalError('connection to server at "db.internal" (10.1.2.3) failed: password for "app"')

    monkeypatch.setattr(connection, "cursor", refuse)
    result = database_health()
    assert result == {"ok": False, "error": "OperationalError", "vendor": connection.vendor}


@pytest.mark.django_db
def test_without_a_pool_pool_stats_are_none(on_postgresql):
    if on_postgresql and connection.pool is not None:
        pytest.skip("this run uses the pool (see the PostgreSQL test below)")
    assert pool_stats() is None
    assert database_health()["pool"] is None


@pytest.mark.postgresql
@pytest.mark.django_db
def test_health_reports_pool_use_when_the_pool_is_configured():
    if connection.pool is None:
        pytest.skip("DATABASE_POOL=false in this run")
    connection.ensure_connection()  # this test's connection is lent out of the pool
    result = database_health()
    pool = result["pool"]
    assert pool["max"] == connection.settings_dict["OPTIONS"]["pool"]["max_size"]
    assert pool["min"] <= pool["size"] <= pool["max"]
    assert pool["in_use"] >= 1
    assert pool["available"] == pool["size"] - pool["in_use"]
    assert pool["waiting"] == 0
    assert 0 < pool["usage"] <= 1
    assert pool["timeout_seconds"] > 0
