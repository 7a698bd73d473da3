"""API key material: the format, generation, the stored hash and the Authorization header.

A key is ``nvk_<prefix>_<secret>``, shown to its owner once: a public 12-character base32 prefix
(60 bits) that names the key and finds its row, and a 256-bit CSPRNG secret in unpadded
base64url (43 characters). The server stores ``HMAC-SHA256(API_KEY_HASH_KEY, whole key)``,
never the key: a fast keyed hash, not Argon2, because a 256-bit random secret cannot be guessed
(NIST SP 800-63B §5.1.1.2 asks for slow hashing of *memorised* secrets). The signing secret
(``nvs_...``) is independent and stored encrypted. Why: docs/decisions/api-key-hashing.md.
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
