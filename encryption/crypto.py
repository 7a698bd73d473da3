"""The cipher: the versioned ``nv1`` token, AES-256-GCM with associated data, legacy Fernet reads.

A token is ``nv1:<key id>:<base64(nonce || ciphertext || tag)>``, safe in any text column: a
12-byte random nonce per value (NIST SP 800-38D §8.2.2), a 16-byte tag, and the id of the ring
key that sealed it. The associated data (``associated_data_for``) binds a value to its model and
column, not to its row. Every failure raises a typed ``DecryptionError`` (``UnknownKeyError`` for
a key the ring lacks) and sends ``decryption_failed``. Crypto core: Django, cryptography and
pybase64 only. Why: docs/decisions/encrypted-fields-nv1.md.
"""

from __future__ import annotations

import binascii
import functools
import os

import pybase64
from cryptography.exceptions import InvalidTag
from cryptography.fernet import InvalidToken
from django.dispatch import Signal

from encryption.errors import DecryptionError, UnknownKeyError
from encryption.keyring import LEGACY_FERNET_KEY_ID, get_key_ring, get_legacy_fernet

_b64encode = pybase64.b64encode_as_string
# A partial, not a wrapper function: one Python frame less on every read.
_b64decode = functools.partial(pybase64.b64decode, validate=True)


TOKEN_VERSION = "nv1"  # noqa: S105 - a format name, not a secret
TOKEN_PREFIX = TOKEN_VERSION + ":"
NONCE_LENGTH = 12
TAG_LENGTH = 16
# A Fernet token is base64url(0x80 || 64-bit timestamp || ...): it starts with "gAAAAA" until
# the year 8000 or so.
LEGACY_FERNET_PREFIX = "gAAAAA"
_MAX_KEY_ID_END = len(TOKEN_PREFIX) + 65

# Sent whenever a value fails to decrypt, with ``error`` (the DecryptionError, which names the
# context and key id and never the value). The encryption app connects the audit event to it.
decryption_failed = Signal()

DEFAULT_PURPOSE = "field"


def associated_data_for(label: str, column: str) -> bytes:
    """Return the associated data that binds a value to model ``label`` and ``column``."""
    return f"{TOKEN_VERSION}\x1f{label}\x1f{column}".encode()


def describe_associated_data(associated_data: bytes) -> str:
    """Return ``label.column`` for associated data made by ``associated_data_for`` (for messages)."""
    parts = associated_data.decode("utf-8", "replace").split("\x1f")
    return ".".join(parts[1:]) if len(parts) > 1 else ""


def decryption_failure(
    reason: str, *, key_id: str | None, associated_data: bytes, error_class=DecryptionError
) -> DecryptionError:
    """Build the typed error of a failed decryption and send ``decryption_failed``; raise the result."""
    error = error_class(reason, key_id=key_id, context=describe_associated_data(associated_data) or None)
    # send_robust: a failing receiver (say, the audit table is unreachable) must not replace the
    # typed error the caller is about to get.
    decryption_failed.send_robust(sender=error_class, error=error)
    return error


def encrypt(plaintext: bytes, *, associated_data: bytes, purpose: str = DEFAULT_PURPOSE) -> str:
    """Seal ``plaintext`` under the primary key of ``purpose``; return an ``nv1`` token."""
    key = get_key_ring(purpose).primary
    nonce = os.urandom(NONCE_LENGTH)
    # 12 bytes encode to exactly 16 base64 characters, so the two parts concatenate cleanly.
    return (
        f"{TOKEN_PREFIX}{key.id}:{_b64encode(nonce)}{_b64encode(key.aead.encrypt(nonce, plaintext, associated_data))}"
    )


def decrypt(token: str, *, associated_data: bytes, purpose: str = DEFAULT_PURPOSE) -> bytes:
    """Open an ``nv1`` token (or a legacy Fernet token); raise ``DecryptionError`` on any failure."""
    if token.startswith(TOKEN_PREFIX):
        end = token.find(":", len(TOKEN_PREFIX), _MAX_KEY_ID_END)
        if end < 0:
            raise decryption_failure("malformed token", key_id=None, associated_data=associated_data)
        key_id = token[len(TOKEN_PREFIX) : end]
        try:
            key = get_key_ring(purpose).get(key_id)
        except UnknownKeyError as error:
            raise decryption_failure(
                error.reason, key_id=key_id, associated_data=associated_data, error_class=UnknownKeyError
            ) from None
        try:
            sealed = _b64decode(token[end + 1 :])
        except (ValueError, binascii.Error):
            raise decryption_failure("malformed token", key_id=key_id, associated_data=associated_data) from None
        if len(sealed) < NONCE_LENGTH + TAG_LENGTH:
            raise decryption_failure("truncated token", key_id=key_id, associated_data=associated_data)
        try:
            return key.aead.decrypt(sealed[:NONCE_LENGTH], sealed[NONCE_LENGTH:], associated_data)
        except InvalidTag:
            raise decryption_failure(
                "authentication failed (tampered, moved from another column or model, or a different key)",
                key_id=key_id,
                associated_data=associated_data,
            ) from None
    if token.startswith(LEGACY_FERNET_PREFIX):
        return _decrypt_legacy(token, associated_data)
    raise decryption_failure("not an encrypted value", key_id=None, associated_data=associated_data)


def _decrypt_legacy(token: str, associated_data: bytes) -> bytes:
    fernet = get_legacy_fernet()
    if fernet is None:
        raise decryption_failure(
            "legacy Fernet token but no legacy key is configured (ENCRYPTION_LEGACY_FERNET_KEYS)",
            key_id=LEGACY_FERNET_KEY_ID,
            associated_data=associated_data,
            error_class=UnknownKeyError,
        )
    try:
        return fernet.decrypt(token.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError):
        raise decryption_failure(
            "legacy Fernet token did not verify under any legacy key",
            key_id=LEGACY_FERNET_KEY_ID,
            associated_data=associated_data,
        ) from None


def token_key_id(token: str) -> str | None:
    """Return the key id a token names without decrypting it.

    ``"legacy-fernet"`` for a django-encrypted-model-fields token, ``None`` for text that is not a
    token at all.
    """
    if token.startswith(TOKEN_PREFIX):
        end = token.find(":", len(TOKEN_PREFIX), _MAX_KEY_ID_END)
        return token[len(TOKEN_PREFIX) : end] if end > len(TOKEN_PREFIX) else None
    if token.startswith(LEGACY_FERNET_PREFIX):
        return LEGACY_FERNET_KEY_ID
    return None


def reencrypt(token: str, *, associated_data: bytes, purpose: str = DEFAULT_PURPOSE) -> str:
    """Return ``token`` sealed under the primary key (a fresh nonce), or itself if it already is.

    The value is decrypted first, so a token is never encrypted twice; a legacy Fernet token
    becomes an ``nv1`` token over the same plaintext bytes.
    """
    if token_key_id(token) == get_key_ring(purpose).primary.id:
        return token
    return encrypt(
        decrypt(token, associated_data=associated_data, purpose=purpose),
        associated_data=associated_data,
        purpose=purpose,
    )


def encrypt_text(plaintext: str, *, associated_data: bytes, purpose: str = DEFAULT_PURPOSE) -> str:
    """Seal a string (UTF-8)."""
    return encrypt(plaintext.encode("utf-8"), associated_data=associated_data, purpose=purpose)


def decrypt_text(token: str, *, associated_data: bytes, purpose: str = DEFAULT_PURPOSE) -> str:
    """Open a token sealed by ``encrypt_text``."""
    return decrypt(token, associated_data=associated_data, purpose=purpose).decode("utf-8")
