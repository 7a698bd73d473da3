"""Reference client for the Ninaivalaigal API: API-key authentication and signed requests.

Standard library only, so it can be copied into any Python 3.9+ project. ``signature_headers``
computes the canonical form of docs/decisions/request-signing.md on its own, apart from the
server's ``api/signing.py``; ``tests/api/test_client.py`` runs it against the real server.
docs/api.md shows how to use it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

_UNRESERVED = "-_.~"


def _canonical_query(query: str) -> str:
    pairs = sorted(
        (quote(name, safe=_UNRESERVED), quote(value, safe=_UNRESERVED))
        for name, value in parse_qsl(query, keep_blank_values=True)
    )
    return "&".join(f"{name}={value}" for name, value in pairs)


def signature_headers(
    *,
    key: str,
    signing_secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The three ``X-Signature*`` headers for one request. ``path`` may include ``?query``."""
    split = urlsplit(path)
    timestamp_text = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_urlsafe(16)
    prefix = key.split("_")[1]
    canonical = "\n".join(
        [
            "NV1-HMAC-SHA256",
            method.upper(),
            quote(unquote(split.path), safe="/" + _UNRESERVED),
            _canonical_query(split.query),
            timestamp_text,
            nonce,
            prefix,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    mac = hmac.new(signing_secret.encode("utf-8"), canonical.encode("utf-8"), hashlib.sha256)
    return {"X-Signature-Timestamp": timestamp_text, "X-Signature-Nonce": nonce, "X-Signature": mac.hexdigest()}


class ApiError(Exception):
    """An error answer: ``status`` and the envelope's ``error`` object (code, message, request_id)."""

    def __init__(self, status: int, error: dict):
        super().__init__(f"{status} {error.get('code')}: {error.get('message')} (request {error.get('request_id')})")
        self.status = status
        self.error = error


class Client:
    """A minimal API client. The key goes in the Authorization header, never in the URL."""

    def __init__(self, base_url: str, *, key: str, signing_secret: str | None = None, timeout: float = 30.0):
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.signing_secret = signing_secret
        self.timeout = timeout

    def request(self, method: str, path: str, *, json_body=None, query: dict | None = None, sign: bool = False):
        """Send one request; return the decoded JSON (``None`` for 204). Raises ``ApiError``."""
        if query:
            path = f"{path}?{urlencode(query)}"
        body = b"" if json_body is None else json.dumps(json_body, separators=(",", ":")).encode("utf-8")
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json"
        if sign:
            if not self.signing_secret:
                raise ValueError("signing_secret is needed for signed requests")
            headers.update(
                signature_headers(key=self.key, signing_secret=self.signing_secret, method=method, path=path, body=body)
            )
        url = self.base_url + path
        request = urllib.request.Request(url, data=body or None, method=method.upper(), headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - checked in __init__
                payload = response.read()
                return json.loads(payload) if payload else None
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                envelope = json.loads(payload).get("error", {})
            except ValueError:
                envelope = {"code": "http_error", "message": payload[:200].decode("utf-8", "replace")}
            raise ApiError(error.code, envelope) from None
