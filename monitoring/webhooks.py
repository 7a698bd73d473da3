"""The webhook signature: how we sign, and how a receiver verifies.

Every webhook is an HTTP ``POST`` with a JSON body (UTF-8) and these headers:

``Content-Type: application/json``
``X-Ninaivalaigal-Event``: ``alert.raised`` or ``alert.escalated``
``X-Ninaivalaigal-Delivery``: a UUID, the same on every retry of one notification — a receiver
    that has seen it already should answer 2xx and do nothing (deliveries are at-least-once).
``X-Ninaivalaigal-Timestamp``: Unix time in seconds when this attempt was signed.
``X-Ninaivalaigal-Signature``: ``v1=`` followed by the lower-case hex HMAC-SHA256, keyed with
    ``MONITORING_WEBHOOK_SECRET`` (UTF-8), of ``<timestamp> + "." + <raw body bytes>``.

A receiver verifies by computing the same HMAC over the raw body it received (before parsing
the JSON), comparing in constant time, and refusing timestamps more than five minutes from its
clock (replay). ``verify_signature`` below does exactly that and may be copied as is::

    expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    hmac.compare_digest("v1=" + expected, signature_header) and abs(now - int(timestamp)) <= 300

Any 2xx answer counts as delivered; anything else (or no answer within
``MONITORING_WEBHOOK_TIMEOUT_SECONDS``) is retried with exponential backoff. Redirects are not
followed.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_VERSION = "v1"
HEADER_EVENT = "X-Ninaivalaigal-Event"
HEADER_DELIVERY = "X-Ninaivalaigal-Delivery"
HEADER_TIMESTAMP = "X-Ninaivalaigal-Timestamp"
HEADER_SIGNATURE = "X-Ninaivalaigal-Signature"
DEFAULT_TOLERANCE_SECONDS = 300


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(*, secret: str | bytes, timestamp: int | str, body: bytes) -> str:
    """Return the ``X-Ninaivalaigal-Signature`` value for ``body`` signed at ``timestamp``."""
    message = str(timestamp).encode() + b"." + body
    return f"{SIGNATURE_VERSION}=" + hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def verify_signature(
    *,
    secret: str | bytes,
    timestamp: str | None,
    body: bytes,
    signature: str | None,
    now: float | None = None,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when ``signature`` is ours for ``timestamp`` and ``body`` and the timestamp is fresh."""
    if not timestamp or not signature or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    return hmac.compare_digest(sign(secret=secret, timestamp=timestamp, body=body), signature)
