"""Database monitoring: a health check (round-trip latency, pool use) and slow-query capture.

``database_health()`` times a few ``SELECT 1`` round trips and reports the psycopg pool's use,
in the shape of the checks of ``monitoring.health`` (``/readyz`` uses it). A query slower than
``MONITORING_SLOW_QUERY_MS`` is logged on ``monitoring.slow_query`` with its SQL normalised
(literals and placeholders become ``?``); the parameters are never read, so no value a user
typed and no secret reaches the log (OWASP ASVS 4.0.3 V7.1.1). This module imports Django only.
Details: docs/monitoring.md (Health and metrics).
"""

from __future__ import annotations

import logging
import re
import statistics
import time

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.signals import connection_created

from monitoring import conf

logger = logging.getLogger("monitoring.slow_query")

# Longest normalised statement written to the log (characters).
SQL_MAX_LENGTH = 2000
# Round trips timed by the health check.
HEALTH_ROUND_TRIPS = 3

# --- Normalisation --------------------------------------------------------------------------
# One pass, left to right, so a quote inside a comment or a "--" inside a string is handled right.
_TOKENS = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<dollar>\$\$.*?\$\$|\$(?P<tag>[A-Za-z_][A-Za-z0-9_]*)\$.*?\$(?P=tag)\$)
    | (?P<string>(?:(?<!\w)(?:[EeBbXxNn]|[Uu]&))?'(?:[^']|'')*')
    | (?P<identifier>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
    | (?P<placeholder>%\(\w+\)s|%s|\$\d+|(?<!:):[A-Za-z_]\w*|\?)
    | (?P<number>(?<![\w.])[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|0[xX][0-9a-fA-F]+)(?![\w.]))
    """,
    re.VERBOSE | re.DOTALL,
)
_IN_LIST = re.compile(r"\(\s*\?(?:\s*,\s*\?)+\s*\)")
_VALUES_LIST = re.compile(r"(\(\?(?:, \?)*\))(?:\s*,\s*\1)+")
_WHITESPACE = re.compile(r"\s+")


def _replace(match: re.Match) -> str:
    kind = match.lastgroup
    if kind == "comment":
        return " "
    if kind == "identifier":
        return match.group(0)
    return "?"


def normalise_sql(sql: str) -> str:
    """Return ``sql`` with every literal and placeholder replaced by ``?``: safe to log and group.

    >>> normalise_sql("SELECT * FROM t WHERE a = 'x' AND b IN (1, 2, 3) AND c = %s")
    'SELECT * FROM t WHERE a = ? AND b IN (...) AND c = ?'
    """
    text = _TOKENS.sub(_replace, str(sql))
    text = _WHITESPACE.sub(" ", text).strip()
    text = _VALUES_LIST.sub(r"\1, ...", text)
    text = _IN_LIST.sub("(...)", text)
    if len(text) > SQL_MAX_LENGTH:
        text = text[:SQL_MAX_LENGTH] + f"...[truncated from {len(text)} chars]"
    return text


# --- Slow-query capture ---------------------------------------------------------------------
def _threshold_ms() -> float:
    return float(conf.get("MONITORING_SLOW_QUERY_MS"))


class SlowQueryLogger:
    """A Django execute wrapper that logs statements slower than ``MONITORING_SLOW_QUERY_MS``.

    The threshold is read on every statement (a settings lookup), so it can change without a
    restart of the wrapper and tests can override it. Statements that fail are logged too when
    they were slow (a statement timeout is the slowest query of all), with the error's class.
    """

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        error = None
        try:
            return execute(sql, params, many, context)
        except Exception as exception:
            error = exception
            raise
        finally:
            duration_ms = (time.perf_counter() - started) * 1000
            threshold = _threshold_ms()
            if duration_ms >= threshold > 0:
                self.report(sql, duration_ms, many=many, context=context, error=error, threshold=threshold)

    @staticmethod
    def report(sql, duration_ms: float, *, many: bool, context, error, threshold: float) -> None:
        try:
            database = context["connection"]
            normalised = normalise_sql(sql)
            details = {
                "duration_ms": round(duration_ms, 1),
                "threshold_ms": threshold,
                "sql": normalised,
                "database": database.alias,
                "vendor": database.vendor,
                "many": bool(many),
            }
            if error is not None:
                details["error"] = type(error).__name__
            logger.warning("slow query (%.1f ms): %s", duration_ms, normalised, extra={"slow_query": details})
        except Exception:  # monitoring must never break a query that already ran
            logger.debug("could not report a slow query", exc_info=True)


slow_query_logger = SlowQueryLogger()


def install_slow_query_logger(connection) -> None:
    """Add the slow-query wrapper to one Django connection, once (it may reconnect many times)."""
    if not any(isinstance(wrapper, SlowQueryLogger) for wrapper in connection.execute_wrappers):
        connection.execute_wrappers.append(slow_query_logger)


def _on_connection_created(sender, connection, **kwargs) -> None:
    install_slow_query_logger(connection)


def connect_slow_query_capture() -> None:
    """Capture slow queries on every database connection of this process; call from ``ready()``.

    Connects ``connection_created`` (each new connection, in every thread, gets the wrapper) and
    covers connections opened before this call. Safe to call more than once.
    """
    connection_created.connect(_on_connection_created, dispatch_uid="monitoring.database.slow_query_capture")
    for connection in connections.all(initialized_only=True):
        install_slow_query_logger(connection)


def disconnect_slow_query_capture() -> None:
    """Undo ``connect_slow_query_capture`` for this thread's connections and new ones (tests)."""
    connection_created.disconnect(dispatch_uid="monitoring.database.slow_query_capture")
    for connection in connections.all(initialized_only=True):
        connection.execute_wrappers[:] = [w for w in connection.execute_wrappers if not isinstance(w, SlowQueryLogger)]


# --- Health ---------------------------------------------------------------------------------
def pool_stats(using: str = DEFAULT_DB_ALIAS) -> dict | None:
    """The psycopg pool's figures for ``using``, or ``None`` when no pool is configured.

    ``size`` connections are open, ``in_use`` of them lent out, ``waiting`` requests queue for
    one; ``usage`` is ``in_use / max`` (1.0 means every request beyond this one waits).
    """
    connection = connections[using]
    pool = getattr(connection, "pool", None) if connection.vendor == "postgresql" else None
    if pool is None:
        return None
    stats = pool.get_stats()
    size = int(stats.get("pool_size", 0))
    available = int(stats.get("pool_available", 0))
    maximum = int(stats.get("pool_max", pool.max_size))
    in_use = max(size - available, 0)
    return {
        "min": int(stats.get("pool_min", pool.min_size)),
        "max": maximum,
        "size": size,
        "available": available,
        "in_use": in_use,
        "waiting": int(stats.get("requests_waiting", 0)),
        "usage": round(in_use / maximum, 3) if maximum else 0.0,
        "timeout_seconds": float(pool.timeout),
        "requests_errors": int(stats.get("requests_errors", 0)),
    }


def database_health(using: str = DEFAULT_DB_ALIAS, *, round_trips: int = HEALTH_ROUND_TRIPS) -> dict:
    """Time ``round_trips`` ``SELECT 1`` round trips and read the pool; never raises.

    ``latency_ms`` is the median round trip (``latency_max_ms`` the slowest); ``pool`` is
    ``pool_stats()`` or ``None``. On failure: ``{"ok": False, "error": <exception class>}``, never
    the message (it may name a host or a user).
    """
    connection = connections[using]
    timings = []
    try:
        with connection.cursor() as cursor:
            for _ in range(max(1, round_trips)):
                started = time.perf_counter()
                cursor.execute("SELECT 1")
                cursor.fetchone()
                timings.append((time.perf_counter() - started) * 1000)
    except Exception as error:
        return {"ok": False, "error": type(error).__name__, "vendor": connection.vendor}
    result = {
        "ok": True,
        "vendor": connection.vendor,
        "latency_ms": round(statistics.median(timings), 3),
        "latency_max_ms": round(max(timings), 3),
        "round_trips": len(timings),
        "pool": None,
    }
    try:
        result["pool"] = pool_stats(using)
    except Exception as error:
        result["pool"] = {"error": type(error).__name__}
    return result
