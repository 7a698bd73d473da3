"""Receivers of the api app: signals of lower apps handed to one service each."""

from __future__ import annotations

from django.dispatch import receiver

from accounts.signals import api_keys_revoke_requested


@receiver(api_keys_revoke_requested, dispatch_uid="api.revoke_keys_of_user")
def revoke_keys_of_user(*, user, actor, reason: str, **kwargs) -> int:
    from api.services import api_keys_revoke_all

    return api_keys_revoke_all(actor=actor, user=user, reason=reason)
