"""Signals of the accounts app, for apps above it that accounts must not import.

``api_keys_revoke_requested`` is sent, inside the transaction of the change, when a user's
password changed and their API keys must stop working too (OWASP ASVS 4.0.3 V3.3.3: credentials
that outlive a password change keep an intruder in). The api app's receiver hands it to its
service (``api.services.api_keys_revoke_all``) and returns how many keys it revoked.
Arguments: ``user``, ``actor``, ``reason``.
"""

from __future__ import annotations

from django.dispatch import Signal

api_keys_revoke_requested = Signal()


def request_api_keys_revocation(*, user, actor, reason: str) -> int:
    """Ask the receivers to revoke every key of ``user``; return how many they revoked."""
    responses = api_keys_revoke_requested.send(sender=None, user=user, actor=actor, reason=reason)
    return sum(count for _receiver, count in responses if isinstance(count, int))
