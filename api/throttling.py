"""Rate limits per API key, per user and per client IP, counted in the shared API cache → 429.

One integer per client and window (the sliding-window approximation), where DRF's
``SimpleRateThrottle`` rewrites a list of every request time. The cache is ``API_CACHE_ALIAS``
("api"): Redis when ``API_CACHE_URL`` names one, process memory otherwise. On Redis, every counter
of a request (each throttle of the view: increment this window, read the previous one) is one
round trip — a small Lua script, atomic in Redis, through one client kept for the life of the
cache object — so the limits hold across every process and machine at the cost of one command.
Elsewhere each throttle makes two cache operations (``incr``, ``get``). The client IP is
``request.client_ip``, never a forgeable header.
Why: docs/decisions/throttles-sliding-window-counters.md.
"""

from __future__ import annotations

import time

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import BaseThrottle

from api import conf
from api.models import ApiKey

_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"600/min"`` → (600, 60)."""
    count, _, period = rate.partition("/")
    return int(count), _DURATIONS[period.strip()[0].lower()]


# KEYS: (this window's counter, the previous window's counter) per throttle; ARGV: each counter's
# lifetime in seconds. Returns (count after the increment, previous count) per throttle. A script
# runs atomically in Redis: two processes racing on one counter both end up counted.
_COUNTERS_SCRIPT = """
local result = {}
for index = 1, #KEYS, 2 do
  local count = redis.call('INCR', KEYS[index])
  if count == 1 then redis.call('EXPIRE', KEYS[index], ARGV[(index + 1) / 2]) end
  result[#result + 1] = count
  result[#result + 1] = tonumber(redis.call('GET', KEYS[index + 1])) or 0
end
return result
"""


def _redis_counters(cache: RedisCache):
    """The counting script bound to one Redis client, kept on the cache object (one per thread).

    Django's Redis cache builds a new client for every operation; this one is built once and
    shares the cache's connection pool.
    """
    script = getattr(cache, "_api_throttle_counters", None)
    if script is None:
        client = cache._cache.get_client(write=True)
        script = client.register_script(_COUNTERS_SCRIPT)
        cache._api_throttle_counters = script
    return script


def _count(cache, counters: list[tuple[str, str, int]]) -> list[tuple[int, int]]:
    """Increment each (current key, previous key, lifetime) counter; return (count, previous) each."""
    if isinstance(cache, RedisCache):
        keys = [cache.make_and_validate_key(name) for current, previous, _ in counters for name in (current, previous)]
        values = _redis_counters(cache)(keys=keys, args=[lifetime for _, _, lifetime in counters])
        return [(int(values[index]), int(values[index + 1])) for index in range(0, len(values), 2)]
    results = []
    for current, previous, lifetime in counters:
        try:
            count = cache.incr(current)
        except ValueError:
            # First request of the window (or the counter expired): create it. add() is atomic, so
            # two threads racing here both end up counted.
            count = 1 if cache.add(current, 1, timeout=lifetime) else cache.incr(current)
        results.append((count, cache.get(previous, 0)))
    return results


def _request_counts(request, throttles: list[type[_CounterThrottle]]) -> dict[str, tuple | None]:
    """Count the request in every throttle of ``throttles`` not counted yet; all counts so far.

    ``scope -> (count, previous, now, limit, duration)``, or None where the scope has no rate or
    the request no identity (no key, anonymous). Kept on the request: DRF asks every throttle of
    the view in turn (it does not stop at the first refusal), so counting them all at the first
    question, in one round trip, counts exactly what it always did, once.
    """
    counts = request._request.__dict__.setdefault("_api_throttle_counts", {})
    pending = [throttle for throttle in throttles if throttle.scope not in counts]
    if not pending:
        return counts
    rates = conf.get("API_THROTTLE_RATES")
    now = time.time()
    plan = []
    for throttle_class in pending:
        scope = throttle_class.scope
        rate = rates.get(scope)
        ident = throttle_class().ident(request) if rate else None
        counts[scope] = None
        if ident is None:
            continue
        limit, duration = parse_rate(rate)
        window = int(now // duration)
        prefix = f"api:throttle:{scope}:{ident}"
        plan.append((scope, limit, duration, (f"{prefix}:{window}", f"{prefix}:{window - 1}", 2 * duration)))
    if plan:
        results = _count(caches[conf.get("API_CACHE_ALIAS")], [counter for *_, counter in plan])
        for (scope, limit, duration, _), (count, previous) in zip(plan, results, strict=True):
            counts[scope] = (count, previous, now, limit, duration)
    return counts


class _CounterThrottle(BaseThrottle):
    scope = ""

    def ident(self, request) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        throttles = [
            throttle
            for throttle in getattr(view, "throttle_classes", None) or ()
            if isinstance(throttle, type) and issubclass(throttle, _CounterThrottle)
        ]
        if type(self) not in throttles:
            throttles.append(type(self))
        entry = _request_counts(request, throttles)[self.scope]
        if entry is None:
            return True
        count, previous, now, limit, duration = entry
        window = int(now // duration)
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
