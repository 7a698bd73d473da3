"""Typed errors of the crypto core.

A value that cannot be decrypted raises one of these; it is never returned as data (the failure
of django-encrypted-model-fields, whose ``to_python`` hands back the ciphertext on
``InvalidToken``). Messages name the key id, the model and the column, never key material,
ciphertext or plaintext (OWASP ASVS 4.0.3 V7.1.1).
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class EncryptionError(Exception):
    """Base class of every error raised by the ``encryption`` app."""


class KeyConfigurationError(EncryptionError, ImproperlyConfigured):
    """A key ring cannot be built: no key, a malformed or duplicated key, an unknown provider.

    ``code`` is one of ``"missing"``, ``"malformed"``, ``"duplicate"``, ``"provider"`` (the
    provider could not be reached or refused us), ``"insecure"`` (an endpoint the policy refuses)
    and ``"unknown-provider"``; the system checks map it to their ids.
    """

    def __init__(self, message: str, *, purpose: str | None = None, code: str = "malformed") -> None:
        super().__init__(message)
        self.purpose = purpose
        self.code = code


class KeyProviderError(KeyConfigurationError):
    """The key provider (a file, HashiCorp Vault, AWS Secrets Manager) could not give the key ring.

    ``code`` is ``"provider"`` (unreachable, refused) unless the store answered that the secret
    or the purpose's field is not there (``"missing"``) or not a JSON object (``"malformed"``).
    The key ring already resolved is kept while the provider fails (``encryption/keyring.py``).
    """

    def __init__(self, message: str, *, purpose: str | None = None, code: str = "provider") -> None:
        super().__init__(message, purpose=purpose, code=code)


class DecryptionError(EncryptionError):
    """A stored value failed to decrypt: tampered, moved to another column, wrong key, not a token.

    ``context`` is ``"<app_label>.<model>.<column>"`` when the value belongs to a model field,
    ``key_id`` the key the token names (``"legacy-fernet"`` for a django-encrypted-model-fields
    token) and ``reason`` a short fixed phrase.
    """

    def __init__(self, reason: str, *, key_id: str | None = None, context: str | None = None) -> None:
        self.reason = reason
        self.key_id = key_id
        self.context = context
        where = f" {context}" if context else ""
        under = f" (key id {key_id!r})" if key_id else ""
        super().__init__(f"Cannot decrypt{where}: {reason}{under}.")


class UnknownKeyError(DecryptionError):
    """The token names a key id that the key ring does not hold (a missing or retired key)."""
