"""Health probes: is the process alive, and can it reach what it needs."""

from __future__ import annotations

import time

from django.db import connection

from config.celery import app as celery_app


def check_database() -> dict:
    """Run ``SELECT 1`` and report the round-trip time in milliseconds."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def check_broker() -> dict:
    """Open a connection to the Celery broker (one try, short timeout)."""
    started = time.perf_counter()
    with celery_app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=1, timeout=2)
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


CHECKS = {"database": check_database, "broker": check_broker}


def readiness() -> dict[str, dict]:
    """Run every check; a failing check reports ``ok: False`` and an error class, never its text."""
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as error:  # a probe must report, not raise
            results[name] = {"ok": False, "error": type(error).__name__}
    return results
