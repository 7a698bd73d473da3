"""Celery tasks of the accounts app: thin wrappers around services, taking ids, safe to retry."""

from __future__ import annotations

from celery import shared_task

from accounts.services import mfa, notifications


@shared_task(name="accounts.security_emails_deliver", ignore_result=True)
def security_emails_deliver() -> dict:
    """Send the due security emails of the outbox (``accounts.services.notifications.security_emails_deliver``)."""
    return notifications.security_emails_deliver()


# Messages queued by the previous release (before the outbox) still find their task during a
# rolling deploy; nothing publishes it any more. Remove in the release after next.
@shared_task(name="accounts.security_notification_send", autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def security_notification_send(
    *, user_id: int, kind: str, context: dict, to_email: str | None = None, base_url: str = ""
) -> bool:
    """Send one security email queued by the previous release (``notifications.security_notification_send``)."""
    return notifications.security_notification_send(
        user_id=user_id, kind=kind, context=context, to_email=to_email, base_url=base_url
    )


@shared_task(name="accounts.totp_devices_expire")
def totp_devices_expire() -> int:
    """Delete unconfirmed TOTP devices past their expiry (``accounts.services.mfa.totp_devices_expire``)."""
    return mfa.totp_devices_expire()
