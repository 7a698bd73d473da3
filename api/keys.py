"""API key material: the format, generation, the stored hash and the Authorization header.

A key is one string, shown to its owner once::

    nvk_<prefix>_<secret>
    nvk_k3x9q2mwa7bd_Vb2Qm3...(43 characters)

- ``prefix``: 12 characters of lower-case base32 (60 random bits). Public: it names the key in
  lists, logs and audit events, and it is how the server finds the key's row.
- ``secret``: 32 random bytes (256 bits) in unpadded base64url (43 characters), from the
  operating system's CSPRNG (``secrets``).

The server stores ``HMAC-SHA256(API_KEY_HASH_KEY, whole key)`` and never the key.

Why a fast keyed hash and not Argon2 (OWASP Password Storage Cheat Sheet, "hashing vs.
encryption"; NIST SP 800-63B §5.1.1.2 applies slow hashing to *memorised* secrets): a slow,
memory-hard hash exists to make guessing a low-entropy human password expensive. A 256-bit random
secret cannot be guessed at any hashing speed (2**255 tries on average), so Argon2 would add no
security, only ~50 ms of CPU and 64 MiB of memory to *every* API request — a denial-of-service
lever and far beyond the 5 % overhead budget. The HMAC key (the "pepper") lives outside the
database, so a database dump alone cannot even confirm a guessed key.

The signing secret of signed requests (``nvs_<43 characters>``) is a second, independent secret:
a bearer key that leaks (a logged header, a proxy) cannot sign critical operations. The server
must compute HMACs with it, so it is stored encrypted (``encryption.fields``), never hashed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from api import conf

KEY_PREFIX = "nvk_"
SIGNING_SECRET_PREFIX = "nvs_"  # noqa: S105 - a format prefix, not a secret
PREFIX_LENGTH = 12
SECRET_BYTES = 32
SECRET_LENGTH = 43  # unpadded base64url of 32 bytes

# What a key looks like, anywhere (the leak scanner in the tests uses the same patterns).
KEY_PATTERN = re.compile(r"nvk_([a-z2-7]{12})_([A-Za-z0-9_-]{43})")
SIGNING_SECRET_PATTERN = re.compile(r"nvs_[A-Za-z0-9_-]{43}")
_FULL_KEY = re.compile(r"\Anvk_([a-z2-7]{12})_[A-Za-z0-9_-]{43}\Z")
# A prefix we can look up without a full, well-formed key (query strings, logs).
_ANY_PREFIX = re.compile(r"nvk_([a-z2-7]{12})")

AUTHORIZATION_SCHEME = "Bearer"


@dataclass(frozen=True)
class NewKey:
    """A freshly generated key: the public prefix, the full key (shown once) and its hash."""

    prefix: str
    key: str
    secret_hash: str


def _random_secret() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode("ascii")


def _random_prefix() -> str:
    # 8 random bytes → 13 base32 characters; keep 12 (60 bits). Collisions are checked on insert.
    return base64.b32encode(secrets.token_bytes(8)).decode("ascii").lower()[:PREFIX_LENGTH]


_hash_template: hmac.HMAC | None = None


def _hash_key() -> bytes:
    configured = conf.get("API_KEY_HASH_KEY")
    if configured:
        return configured.encode("utf-8")
    # Derived from SECRET_KEY with a purpose label, so the two are never the same key. Rotating
    # SECRET_KEY then invalidates every API key: production sets API_KEY_HASH_KEY of its own.
    return hashlib.sha256(b"ninaivalaigal.api.key-hash\x00" + settings.SECRET_KEY.encode("utf-8")).digest()


def hash_key(key: str) -> str:
    """Return the stored form of a key: hex HMAC-SHA256 under the hash key."""
    global _hash_template
    if _hash_template is None:
        _hash_template = hmac.new(_hash_key(), digestmod=hashlib.sha256)
    mac = _hash_template.copy()
    mac.update(key.encode("utf-8", "surrogatepass"))
    return mac.hexdigest()


@receiver(setting_changed)
def _forget_hash_key(*, setting: str, **kwargs) -> None:
    global _hash_template
    if setting in {"API_KEY_HASH_KEY", "SECRET_KEY"}:
        _hash_template = None


def generate_key() -> NewKey:
    """Return a new key with its prefix and hash."""
    prefix = _random_prefix()
    key = f"{KEY_PREFIX}{prefix}_{_random_secret()}"
    return NewKey(prefix=prefix, key=key, secret_hash=hash_key(key))


def generate_signing_secret() -> str:
    """Return a new signing secret (``nvs_`` + 256 random bits)."""
    return f"{SIGNING_SECRET_PREFIX}{_random_secret()}"


def parse_key(candidate: str) -> str | None:
    """Return the prefix of a well-formed key, else ``None`` (nothing about the secret)."""
    match = _FULL_KEY.match(candidate)
    return match.group(1) if match else None


def prefix_in(text: str) -> str | None:
    """The prefix of anything that looks like a key in ``text`` (to name it in an audit event)."""
    match = _ANY_PREFIX.search(text)
    return match.group(1) if match else None


def key_from_authorization(header: str) -> str | None:
    """Return the credential of ``Authorization: Bearer nvk_...``; ``None`` if it is another scheme.

    An ``Authorization`` header with another scheme (Basic...) is not ours and is left to other
    authentication classes. Any ``Bearer`` credential is ours, well-formed or not: a malformed one
    is refused (and recorded) like a wrong one.
    """
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != AUTHORIZATION_SCHEME.lower():
        return None
    return credential.strip()
