"""Count served requests per status class, cheaply, for /metrics and the audit-silence detector.

Counts are kept in process memory and added to the per-minute ``Tally`` rows at most every
``MONITORING_REQUEST_COUNT_FLUSH_SECONDS`` (one UPDATE per status class), so a request costs a
dictionary increment. Probe endpoints are not counted: a load balancer polling /readyz is not
traffic that should produce audit events. A failed flush is logged and never fails the request.
Nothing is written while the request's connection is inside a transaction (``ATOMIC_REQUESTS``
or a test case's): a count must not ride on, or be rolled back with, someone else's work; the
counts simply wait for the next request outside one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from django.db import connection
from django.utils import timezone

from monitoring import conf

logger = logging.getLogger("monitoring.requests")

UNCOUNTED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_lock = threading.Lock()
_pending: Counter = Counter()
_last_flush = time.monotonic()


def _take_pending(force: bool) -> Counter | None:
    global _last_flush
    if connection.in_atomic_block:
        return None
    with _lock:
        if not _pending:
            return None
        if not force and time.monotonic() - _last_flush < conf.get("MONITORING_REQUEST_COUNT_FLUSH_SECONDS"):
            return None
        taken = _pending.copy()
        _pending.clear()
        _last_flush = time.monotonic()
        return taken


def flush_request_counts(*, force: bool = False) -> None:
    """Write the buffered counts into the current minute's tallies (``force``: now, whatever the interval)."""
    taken = _take_pending(force)
    if not taken:
        return
    from monitoring.services.jobs import tally_add

    at = timezone.now()
    try:
        for name, count in taken.items():
            tally_add(name=name, count=count, at=at)
    except Exception as error:  # counting must never break serving
        logger.warning("could not write request counts (%s)", type(error).__name__)
        with _lock:
            _pending.update(taken)


class RequestCountMiddleware:
    """Count each response as ``http.2xx`` / ``http.3xx`` / ``http.4xx`` / ``http.5xx``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path not in UNCOUNTED_PATHS:
            with _lock:
                _pending[f"http.{response.status_code // 100}xx"] += 1
            flush_request_counts()
        return response
