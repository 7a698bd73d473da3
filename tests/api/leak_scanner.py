"""Fail any test whose responses carry a secret (the response-security rule of the API issue).

Installed as an autouse fixture for tests/api and tests/memories: every response the Django test
client returns (``Client`` and DRF's ``APIClient``) is scanned — body and headers, except
``Set-Cookie``, whose whole job is to carry the session cookie — for

- the shapes of our secrets: API keys (``nvk_…``), signing secrets (``nvs_…``), Django password
  hashes, ciphertext tokens of the encryption app (``nv1:…``) and legacy Fernet tokens;
- the secrets that exist right now, read from the database: every session key, every password
  hash, every API key's stored hash and signing secret, every TOTP secret (hex and base32).

A test that legitimately shows a secret (the page that issues a key shows it once) says so with
``with allow_secrets("api_key", "signing_secret"):``.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import re

import pytest
from django.db import DatabaseError, transaction
from django.test import client as django_client

from api import keys

PATTERNS: dict[str, re.Pattern] = {
    "api_key": keys.KEY_PATTERN,
    "signing_secret": keys.SIGNING_SECRET_PATTERN,
    "password_hash": re.compile(
        r"(?:argon2\$argon2(?:id|i|d)\$|pbkdf2_sha(?:256|1)\$\d+\$|md5\$[A-Za-z0-9]+\$[0-9a-f]{32}|scrypt\$|bcrypt(?:_sha256)?\$)"
    ),
    "ciphertext": re.compile(r"nv1:[A-Za-z0-9_-]{1,64}:[A-Za-z0-9+/]{16,}"),
    "fernet_token": re.compile(r"gAAAAA[A-Za-z0-9_=-]{40,}"),
}
KNOWN_KINDS = ("session_key", "password_hash", "api_key_hash", "signing_secret", "otp_secret")

_allowed: contextvars.ContextVar[frozenset] = contextvars.ContextVar("allowed_secrets", default=frozenset())


class SecretLeak(AssertionError):
    pass


@contextlib.contextmanager
def allow_secrets(*kinds: str):
    """Let responses inside the block carry the named kinds of secret (say why in the test)."""
    token = _allowed.set(_allowed.get() | frozenset(kinds))
    try:
        yield
    finally:
        _allowed.reset(token)


def _known_secrets() -> dict[str, set[str]]:
    """The secrets in the database now, by kind (empty when the test has no database access)."""
    found: dict[str, set[str]] = {kind: set() for kind in KNOWN_KINDS}
    try:
        with transaction.atomic():
            from django.contrib.auth import get_user_model
            from django.contrib.sessions.models import Session

            from api.models import ApiKey

            found["session_key"].update(Session.objects.values_list("session_key", flat=True))
            found["password_hash"].update(
                value
                for value in get_user_model().objects.values_list("password", flat=True)
                if value and value[0] != "!"
            )
            for secret_hash, signing_secret in ApiKey.objects.values_list("secret_hash", "signing_secret"):
                found["api_key_hash"].add(secret_hash)
                found["signing_secret"].add(signing_secret)
            try:
                from accounts.models import TOTPDevice

                for hex_key in TOTPDevice.objects.values_list("key", flat=True):
                    found["otp_secret"].add(hex_key)
                    with contextlib.suppress(ValueError):
                        found["otp_secret"].add(base64.b32encode(bytes.fromhex(hex_key)).decode().rstrip("="))
            except ImportError:  # pragma: no cover - accounts without MFA
                pass
    except (DatabaseError, RuntimeError):
        # No database access in this test (pytest-django raises RuntimeError) or none yet.
        pass
    return {kind: {value for value in values if value and len(value) >= 16} for kind, values in found.items()}


def response_text(response) -> str:
    """The body (when not streamed) and the headers other than Set-Cookie, as one text."""
    parts = []
    if not getattr(response, "streaming", False):
        parts.append(response.content.decode("utf-8", "replace"))
    for name, value in response.headers.items():
        if name.lower() != "set-cookie":
            parts.append(f"{name}: {value}")
    return "\n".join(parts)


def find_leaks(text: str, *, known: dict[str, set[str]] | None = None, allowed=frozenset()) -> list[str]:
    """The kinds of secret found in ``text`` (each once), skipping ``allowed`` kinds."""
    leaks = [kind for kind, pattern in PATTERNS.items() if kind not in allowed and pattern.search(text)]
    for kind, values in (known or {}).items():
        if kind not in allowed and any(value in text for value in values):
            leaks.append(kind)
    return leaks


# Every known secret is a run of 32+ letters and digits (session keys, hex hashes and keys, base32
# OTP secrets): a response without such a run (the request id aside) needs no database look-up.
_CANDIDATE = re.compile(r"[A-Za-z0-9]{32,}")


def scan(response, *, where: str = "") -> None:
    """Raise ``SecretLeak`` if ``response`` carries a secret that the test did not allow."""
    text = response_text(response)
    allowed = _allowed.get()
    request_id = response.headers.get("X-Request-ID", "")
    needs_lookup = _CANDIDATE.search(text.replace(request_id, "") if request_id else text)
    leaks = find_leaks(text, known=_known_secrets() if needs_lookup else None, allowed=allowed)
    if leaks:
        raise SecretLeak(f"response to {where or 'a request'} carries secret(s): {', '.join(sorted(set(leaks)))}")


@pytest.fixture
def secret_leak_scanner(monkeypatch):
    """Wrap the test client so every response is scanned; a leak fails the test that caused it."""
    original = django_client.Client.request

    def request(self, **request_kwargs):
        response = original(self, **request_kwargs)
        scan(response, where=f"{request_kwargs.get('REQUEST_METHOD', 'GET')} {request_kwargs.get('PATH_INFO', '')}")
        return response

    monkeypatch.setattr(django_client.Client, "request", request)
    yield
