"""Signed requests for critical operations (OWASP ASVS 4.0.3 V13.2.6: message integrity).

``X-Signature`` is an HMAC-SHA256 with the key's signing secret over ``canonical_request``.
``verify`` refuses a timestamp more than ``API_SIGNATURE_MAX_SKEW_SECONDS`` from the clock and
compares in constant time; only then does the caller store the nonce
(``services.request_nonce_consume``), so a replay is refused and garbage cannot fill the store.
``api/client.py`` is the reference client; the tests check that the two agree.
Why, and the canonical form line by line: docs/decisions/request-signing.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import parse_qsl, quote

from api import conf

ALGORITHM = "NV1-HMAC-SHA256"
HEADER_TIMESTAMP = "X-Signature-Timestamp"
HEADER_NONCE = "X-Signature-Nonce"
HEADER_SIGNATURE = "X-Signature"
_META_TIMESTAMP = "HTTP_X_SIGNATURE_TIMESTAMP"
_META_NONCE = "HTTP_X_SIGNATURE_NONCE"
_META_SIGNATURE = "HTTP_X_SIGNATURE"

NONCE_PATTERN = re.compile(r"\A[A-Za-z0-9_-]{16,64}\Z")
SIGNATURE_PATTERN = re.compile(r"\A[0-9a-f]{64}\Z")
TIMESTAMP_PATTERN = re.compile(r"\A[0-9]{1,12}\Z")
_UNRESERVED = "-_.~"


class SignatureError(Exception):
    """Why a signature was refused: ``reason`` for the audit trail, ``missing`` for the status code."""

    def __init__(self, reason: str, *, missing: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


def canonical_path(path: str) -> str:
    return quote(path, safe="/" + _UNRESERVED)


def canonical_query(query_string: str) -> str:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    encoded = sorted((quote(name, safe=_UNRESERVED), quote(value, safe=_UNRESERVED)) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_request(
    *, method: str, path: str, query_string: str, timestamp: str, nonce: str, key_prefix: str, body: bytes
) -> bytes:
    """The bytes that are signed: the canonical form of docs/decisions/request-signing.md."""
    return "\n".join(
        [
            ALGORITHM,
            method.upper(),
            canonical_path(path),
            canonical_query(query_string),
            timestamp,
            nonce,
            key_prefix,
            hashlib.sha256(body).hexdigest(),
        ]
    ).encode("utf-8")


def signature(secret: str, canonical: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), canonical, hashlib.sha256).hexdigest()


def verify(request, *, api_key, now: float | None = None) -> str:
    """Check the signature of a Django ``request`` made with ``api_key``; return the nonce.

    Raises ``SignatureError`` for a missing or malformed header, a timestamp outside the window,
    or a wrong signature. The caller consumes the nonce (a replay check needs the store).
    """
    meta = request.META
    timestamp = meta.get(_META_TIMESTAMP, "")
    nonce = meta.get(_META_NONCE, "")
    presented = meta.get(_META_SIGNATURE, "")
    if not (timestamp or nonce or presented):
        raise SignatureError("signature_missing", missing=True)
    if not (timestamp and nonce and presented):
        raise SignatureError("signature_headers_incomplete", missing=True)
    if not TIMESTAMP_PATTERN.match(timestamp) or not NONCE_PATTERN.match(nonce):
        raise SignatureError("signature_headers_malformed")
    presented = presented.lower()
    if not SIGNATURE_PATTERN.match(presented):
        raise SignatureError("signature_headers_malformed")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > conf.get("API_SIGNATURE_MAX_SKEW_SECONDS"):
        raise SignatureError("timestamp_outside_window")
    canonical = canonical_request(
        method=request.method,
        path=request.path,
        query_string=meta.get("QUERY_STRING", ""),
        timestamp=timestamp,
        nonce=nonce,
        key_prefix=api_key.prefix,
        body=request.body,
    )
    expected = signature(signing_secret(api_key), canonical)
    if not hmac.compare_digest(expected, presented):
        raise SignatureError("signature_mismatch")
    return nonce


# (key id, key prefix) -> (decrypted signing secret, time.monotonic() after which it is loaded again).
_SECRETS: dict[tuple[int, str], tuple[str, float]] = {}
_SECRETS_MAX = 1024


def signing_secret(api_key) -> str:
    """The key's signing secret, kept in process memory for ``API_SIGNATURE_SECRET_CACHE_SECONDS``.

    Loading it is a query (authentication defers the column) and a decryption: about 0.9 ms per
    signed request (issue #17). A key's secret never changes (a rotation issues a new key), and
    a revoked or expired key is refused by authentication before its signature is checked, so
    keeping the secret briefly changes no decision. At most ``_SECRETS_MAX`` keys are kept.
    """
    lifetime = conf.get("API_SIGNATURE_SECRET_CACHE_SECONDS")
    if not lifetime or getattr(api_key, "pk", None) is None:
        return api_key.signing_secret
    now = time.monotonic()
    name = (api_key.pk, api_key.prefix)
    kept = _SECRETS.get(name)
    if kept is not None and kept[1] > now:
        return kept[0]
    secret = api_key.signing_secret
    if len(_SECRETS) >= _SECRETS_MAX:
        _SECRETS.clear()
    _SECRETS[name] = (secret, now + lifetime)
    return secret
