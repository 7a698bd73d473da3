"""Health probes: is the process alive, and can it reach what it needs.

Readiness checks the database, the cache, the broker, a worker heartbeat (written every minute
by the ``monitoring.heartbeat`` job) and the last run of beat. When Celery runs tasks eagerly
(tests, a single-process set-up) there is no separate worker or beat to check and those two
report ``ok`` with ``"mode": "eager"``. Failures report an error class or an age, never a
message that could leak a host name or a credential.

Readiness also shows the runtime posture of the web process that answers (``process_posture``):
reported beside the checks, never a reason to be unready.
"""

from __future__ import annotations

import secrets
import time

from celery import current_app as celery_app
from django.core.cache import cache
from django.utils import timezone

from monitoring import conf
from monitoring.database import database_health
from monitoring.posture import posture_summary


def check_database() -> dict:
    """``SELECT 1`` round trips (median latency in milliseconds) and the connection pool's use."""
    return database_health()


def check_cache() -> dict:
    """Write, read back and delete a random value in the default cache."""
    started = time.perf_counter()
    key, value = f"monitoring:readyz:{secrets.token_hex(8)}", secrets.token_hex(8)
    cache.set(key, value, 10)
    ok = cache.get(key) == value
    cache.delete(key)
    result = {"ok": ok, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    if not ok:
        result["error"] = "ValueNotReadBack"
    return result


def check_broker() -> dict:
    """Open a connection to the Celery broker (one try, short timeout)."""
    started = time.perf_counter()
    with celery_app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=1, timeout=2)
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def _eager() -> bool:
    return bool(celery_app.conf.task_always_eager)


def _age_check(moment, max_age: int, *, missing: str) -> dict:
    if moment is None:
        return {"ok": False, "error": missing}
    age = (timezone.now() - moment).total_seconds()
    return {"ok": age <= max_age, "age_seconds": round(age, 1), "max_age_seconds": max_age}


def check_worker() -> dict:
    """The worker heartbeat is fresh (``MONITORING_WORKER_HEARTBEAT_MAX_AGE_SECONDS``)."""
    if _eager():
        return {"ok": True, "mode": "eager"}
    from monitoring.selectors import heartbeat_get

    beat = heartbeat_get("worker")
    return _age_check(
        beat.beat_at if beat else None, conf.get("MONITORING_WORKER_HEARTBEAT_MAX_AGE_SECONDS"), missing="NoHeartbeat"
    )


def check_beat() -> dict:
    """Beat sent a scheduled job recently (``MONITORING_BEAT_MAX_AGE_SECONDS``)."""
    if _eager():
        return {"ok": True, "mode": "eager"}
    from monitoring.selectors import beat_last_run_at

    return _age_check(beat_last_run_at(), conf.get("MONITORING_BEAT_MAX_AGE_SECONDS"), missing="NeverRan")


CHECKS = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
    "worker": check_worker,
    "beat": check_beat,
}


def readiness() -> dict[str, dict]:
    """Run every check; a failing check reports ``ok: False`` and an error class, never its text.

    A check left out of ``MONITORING_READINESS_CHECKS`` still runs and reports, marked
    ``"required": false``, but does not make the service unready.
    """
    required = set(conf.get("MONITORING_READINESS_CHECKS"))
    results = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as error:  # a probe must report, not raise
            results[name] = {"ok": False, "error": type(error).__name__}
        if name not in required:
            results[name]["required"] = False
    return results


def failing_checks(results: dict[str, dict]) -> list[str]:
    """The names of the required checks that failed, sorted."""
    return sorted(name for name, result in results.items() if not result["ok"] and result.get("required", True))


def process_posture() -> dict:
    """The answering process's posture (``monitoring.posture.posture_summary``); an error class if unreadable."""
    try:
        return posture_summary()
    except Exception as error:  # reported, never raised: posture does not decide readiness
        return {"error": type(error).__name__}
