"""The MFA policy: required for staff always; for everyone under ``ACCOUNTS_MFA_REQUIRED_FOR_ALL`` after a grace."""

from __future__ import annotations

from django.utils import timezone

from accounts import conf
from accounts.selectors import mfa_enabled


def mfa_grace_start(*, user) -> None:
    """Start the user's grace period at their first login under the "MFA for all" policy.

    Permission: the system, during a login of ``user``.
    """
    if not conf.get("ACCOUNTS_MFA_REQUIRED_FOR_ALL") or user.is_staff or user.mfa_grace_started_at is not None:
        return
    if mfa_enabled(user):
        return
    user.mfa_grace_started_at = timezone.now()
    type(user)._default_manager.filter(pk=user.pk, mfa_grace_started_at__isnull=True).update(
        mfa_grace_started_at=user.mfa_grace_started_at
    )
