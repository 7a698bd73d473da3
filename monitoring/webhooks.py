"""The webhook signature: how we sign, and how a receiver verifies.

``X-Ninaivalaigal-Signature`` is ``v1=`` and the lower-case hex HMAC-SHA256, keyed with
``MONITORING_WEBHOOK_SECRET``, of ``<X-Ninaivalaigal-Timestamp> + "." + <raw body bytes>``. A
receiver computes the same over the raw body before parsing it, compares in constant time and
refuses a timestamp more than five minutes off (replay): ``verify_signature`` does exactly that
and may be copied as is. The headers, retries and deduplication: docs/monitoring.md (Webhook).
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
