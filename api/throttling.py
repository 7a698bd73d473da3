"""Rate limits per API key, per user and per client IP, counted in the shared API cache → 429.

One integer per client and window (the sliding-window approximation) and two cache operations
per throttle (``incr``, ``get``), where DRF's ``SimpleRateThrottle`` rewrites a list of every
request time. The cache is ``API_CACHE_ALIAS`` ("api"): Redis when ``API_CACHE_URL`` names one,
process memory otherwise. The client IP is ``request.client_ip``, never a forgeable header.
Why: docs/decisions/throttles-sliding-window-counters.md.
"""

from __future__ import annotations

import time

from django.core.cache import caches
from rest_framework.throttling import BaseThrottle

from api import conf
from api.models import ApiKey

_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"600/min"`` → (600, 60)."""
    count, _, period = rate.partition("/")
    return int(count), _DURATIONS[period.strip()[0].lower()]


class _CounterThrottle(BaseThrottle):
    scope = ""

    def ident(self, request) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        rate = conf.get("API_THROTTLE_RATES").get(self.scope)
        if not rate:
            return True
        ident = self.ident(request)
        if ident is None:
            return True
        limit, duration = parse_rate(rate)
        now = time.time()
        window = int(now // duration)
        cache = caches[conf.get("API_CACHE_ALIAS")]
        key = f"api:throttle:{self.scope}:{ident}:{window}"
        try:
            count = cache.incr(key)
        except ValueError:
            # First request of the window (or the counter expired): create it. add() is atomic, so
            # two processes racing here both end up counted.
            count = 1 if cache.add(key, 1, timeout=2 * duration) else cache.incr(key)
        previous = cache.get(f"api:throttle:{self.scope}:{ident}:{window - 1}", 0)
        elapsed = (now - window * duration) / duration
        if previous * (1.0 - elapsed) + count <= limit:
            return True
        self._wait = max(1.0, (window + 1) * duration - now)
        request._request.throttle_scope = self.scope
        return False

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)


class ApiKeyThrottle(_CounterThrottle):
    """Requests per API key (``API_THROTTLE_RATES["api_key"]``)."""

    scope = "api_key"

    def ident(self, request) -> str | None:
        return str(request.auth.pk) if isinstance(request.auth, ApiKey) else None


class UserThrottle(_CounterThrottle):
    """Requests per authenticated user, all their keys and sessions together."""

    scope = "user"

    def ident(self, request) -> str | None:
        user = request.user
        return str(user.pk) if user is not None and user.is_authenticated else None


class IPThrottle(_CounterThrottle):
    """Requests per client IP, authenticated or not."""

    scope = "ip"

    def ident(self, request) -> str | None:
        return getattr(request._request, "client_ip", None) or "unknown"
