"""Limits on the anonymous requests that send email: sign-up and password reset (OWASP ASVS 4.0.3 V2.2.1).

Each request is counted twice, per client IP and per target address (normalised), in fixed
windows of the shared cache ``ACCOUNTS_RATE_LIMIT_CACHE_ALIAS`` (the API's cache by default:
Redis when ``API_CACHE_URL`` names one, so every process and machine counts together). Over
either limit, the request does nothing and the caller answers exactly as for a request that went
through (same page, same status), so the limit tells nobody whether an address is registered;
the refusal is an audit event (``auth.email_rate_limited``). The client IP is the one the request
context resolved (``AUDIT_TRUSTED_PROXY_COUNT``), never a forgeable header.
"""

from __future__ import annotations

import hashlib
import time

from django.core.cache import caches

import audit
from accounts import conf
from core import context as request_context

_DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PURPOSES = {
    "signup": ("ACCOUNTS_SIGNUP_RATE_PER_IP", "ACCOUNTS_SIGNUP_RATE_PER_ADDRESS"),
    "password_reset": ("ACCOUNTS_PASSWORD_RESET_RATE_PER_IP", "ACCOUNTS_PASSWORD_RESET_RATE_PER_ADDRESS"),
}


def parse_rate(rate: str) -> tuple[int, int] | None:
    """``"5/h"`` → (5, 3600); an empty rate → ``None`` (no limit). Raises ``ValueError`` if malformed."""
    if not rate:
        return None
    count, separator, period = str(rate).partition("/")
    period = period.strip().lower()
    if not separator or not period or period[0] not in _DURATIONS or int(count) < 1:
        raise ValueError(f"not a rate like 5/h: {rate!r}")
    return int(count), _DURATIONS[period[0]]


def _count(name: str, ident: str, rate: str) -> bool:
    """Count one request of ``ident`` against ``rate``; return whether it is within the limit."""
    parsed = parse_rate(rate)
    if parsed is None:
        return True
    limit, duration = parsed
    window = int(time.time() // duration)
    # The address is hashed: the cache (Redis) holds no list of who asked for what.
    digest = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    key = f"accounts:rate:{name}:{digest}:{window}"
    cache = caches[conf.get("ACCOUNTS_RATE_LIMIT_CACHE_ALIAS")]
    try:
        count = cache.incr(key)
    except ValueError:
        # The window's first request: add() is atomic, so two processes racing both count.
        count = 1 if cache.add(key, 1, timeout=duration + 60) else cache.incr(key)
    return count <= limit


def email_request_allowed(*, purpose: str, email: str, subject=None) -> bool:
    """Count a ``purpose`` request for ``email``; ``False`` (and an audit event) if over a limit.

    Both counters are incremented on every call, so a client that spreads addresses is stopped by
    the IP limit and a target asked for from many IPs by the address limit. ``subject`` is the
    account of the address, if any, named in the event. Permission: none (anonymous requests).
    """
    ip_setting, address_setting = PURPOSES[purpose]
    current = request_context.current()
    client_ip = (current.client_ip if current is not None else None) or "unknown"
    ip_ok = _count(f"{purpose}:ip", client_ip, conf.get(ip_setting))
    address_ok = _count(f"{purpose}:address", email or "", conf.get(address_setting))
    if ip_ok and address_ok:
        return True
    audit.record(
        action=audit.Action.EMAIL_RATE_LIMITED,
        outcome=audit.Outcome.DENIED,
        subject=subject,
        target=subject,
        context={"purpose": purpose, "limit": "client_ip" if not ip_ok else "address"},
    )
    return False
