"""Security notification emails (OWASP ASVS 4.0.3 V2.2.3, V2.5.5), sent through an outbox.

Callers use ``notification_schedule``: it writes a ``SecurityEmail`` row in the current
transaction, so nothing is sent unless the change that caused it commits, and a broker or SMTP
outage only delays the email (``security_emails_deliver`` retries with backoff, every minute from
beat). A row holds ids, names and plain facts only; anything secret that a message needs (a reset
token, a signed link) is made at sending time, so it never sits in the database or the broker.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

import audit
from accounts import conf, links
from accounts.models import SecurityEmail, SecurityEmailStatus
from core.emails import absolute_url, site_url
from core.handoff import hand_off
from core.outbox import claim_due, retry_backoff

# kind -> subject line. Templates: templates/emails/accounts/<kind>.txt and .html.
SUBJECTS = {
    "email_verification": "Confirm your email address",
    "signup_existing_email": "Someone tried to sign up with your email address",
    "password_reset": "Reset your password",
    "email_change_confirm": "Confirm your new email address",
    "password_changed": "Your password was changed",
    "email_changed": "Your email address was changed",
    "mfa_device_added": "An authenticator was added to your account",
    "mfa_device_removed": "An authenticator was removed from your account",
    "backup_codes_generated": "New backup codes were generated",
    "backup_code_used": "A backup code was used to sign in",
    "new_login": "New sign-in to your account",
    "account_locked": "Your account was locked after failed sign-in attempts",
    "api_key_leaked": "Your API key was revoked: it was sent in a URL",
    "context_transfer_offered": "Someone offered you a context: it is yours only if you accept",
}


logger = logging.getLogger("accounts.notifications")

# A row claimed this long ago by a worker that never finished is due again (at-least-once).
CLAIM_TIMEOUT = datetime.timedelta(minutes=5)


def notification_schedule(
    *, user: Any, kind: str, context: dict | None = None, to_email: str | None = None, base_url: str = ""
) -> SecurityEmail:
    """Queue the ``kind`` email to ``user`` (or ``to_email``): sent after the current transaction commits.

    ``context`` holds plain facts for the template (names, counts, times as ISO text): no secret.
    ``base_url`` is the ``scheme://host`` of the request that caused the email, if any: links use
    ``ACCOUNTS_SITE_URL`` first (``core.emails.site_url``).
    """
    if kind not in SUBJECTS:
        raise ValueError(f"unknown notification kind {kind!r}")
    now = timezone.now()
    email = SecurityEmail.objects.create(
        user=user,
        kind=kind,
        context=context or {},
        to_email=to_email or "",
        base_url=site_url(request_base_url=base_url),
        next_attempt_at=now,
        created_at=now,
    )
    transaction.on_commit(_hand_off, robust=True)
    return email


def _hand_off() -> None:
    """Ask a worker to deliver now; if the broker is down, beat's run every minute will."""
    from accounts.tasks import security_emails_deliver

    hand_off(security_emails_deliver)


def email_backoff(attempts: int) -> datetime.timedelta:
    """Delay before retry number ``attempts`` (1, 2, ...): base x 2^(attempts-1), capped."""
    return retry_backoff(
        attempts, base=conf.get("ACCOUNTS_EMAIL_RETRY_BASE_SECONDS"), cap=conf.get("ACCOUNTS_EMAIL_RETRY_MAX_SECONDS")
    )


def security_emails_deliver(*, limit: int = 100) -> dict[str, int]:
    """Send every due security email; a failure is retried later with backoff, never dropped.

    Sent rows older than ``ACCOUNTS_EMAIL_KEEP_SENT_DAYS`` are deleted. Permission: none — the
    system sends them (called by the Celery task).
    """
    now = timezone.now()
    sent = failed = 0
    for email in claim_due(SecurityEmail, now=now, limit=limit, claim_timeout=CLAIM_TIMEOUT):
        try:
            security_notification_send(
                user_id=email.user_id, kind=email.kind, context=email.context,
                to_email=email.to_email or None, base_url=email.base_url,
            )
        except Exception as error:  # SMTP down, refused, timed out: try again later
            failed += 1
            attempts = email.attempts + 1
            SecurityEmail.objects.filter(pk=email.pk).update(
                status=SecurityEmailStatus.PENDING, attempts=attempts, claimed_at=None,
                next_attempt_at=timezone.now() + email_backoff(attempts), last_error=type(error).__name__[:200],
            )
            logger.warning("security email %s not sent (%s); retry %s later", email.pk, type(error).__name__, attempts)
            continue
        sent += 1
        SecurityEmail.objects.filter(pk=email.pk).update(
            status=SecurityEmailStatus.SENT, attempts=email.attempts + 1, sent_at=timezone.now(), last_error=""
        )
    keep = datetime.timedelta(days=conf.get("ACCOUNTS_EMAIL_KEEP_SENT_DAYS"))
    pruned, _ = SecurityEmail.objects.filter(status=SecurityEmailStatus.SENT, sent_at__lt=now - keep).delete()
    return {"sent": sent, "failed": failed, "pruned": pruned}


def _links(kind: str, user, context: dict, base_url: str, to_email: str) -> dict:
    def link(path: str) -> str:
        return absolute_url(path, request_base_url=base_url)

    if kind == "email_verification":
        token = links.email_verification_token(user)
        return {"action_url": link(reverse("accounts:verify_email", args=[token]))}
    if kind == "password_reset":
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        token = default_token_generator.make_token(user)
        return {"action_url": link(reverse("accounts:password_reset_confirm", args=[uid, token]))}
    if kind == "email_change_confirm":
        token = links.email_change_token(user, to_email)
        return {"action_url": link(reverse("accounts:email_change_confirm", args=[token]))}
    if kind == "api_key_leaked":
        return {"api_keys_url": link(reverse("api-keys:list")), "security_url": link(reverse("accounts:security"))}
    if kind == "context_transfer_offered":
        return {
            "offers_url": link(reverse("api-v1:transfer-offer-list")),
            "security_url": link(reverse("accounts:security")),
        }
    if kind in {"signup_existing_email", "account_locked", "backup_code_used", "new_login", "password_changed"}:
        return {
            "reset_url": link(reverse("accounts:password_reset")),
            "security_url": link(reverse("accounts:security")),
        }
    return {"security_url": link(reverse("accounts:security"))}


def security_notification_send(
    *, user_id: int, kind: str, context: dict, to_email: str | None = None, base_url: str = ""
) -> bool:
    """Render and send one notification now; record that it was sent. Returns False if nobody to send to.

    Raises what the mail backend raises (``security_emails_deliver`` retries). Permission: none.
    """
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        return False
    recipient = to_email or user.email
    if not recipient:
        return False
    template_context = {
        "user": user,
        "kind": kind,
        "subject": SUBJECTS[kind],
        **context,
        **_links(kind, user, context, base_url, recipient),
        "max_age_hours": _max_age_hours(kind),
    }
    text = render_to_string(f"emails/accounts/{kind}.txt", template_context)
    html = render_to_string(f"emails/accounts/{kind}.html", template_context)
    message = EmailMultiAlternatives(SUBJECTS[kind], text, settings.DEFAULT_FROM_EMAIL, [recipient])
    message.attach_alternative(html, "text/html")
    message.send()
    with transaction.atomic():
        audit.record(
            action=audit.Action.SECURITY_NOTIFICATION_SENT,
            subject=user,
            target=user,
            context={"kind": kind, "recipient": "other address" if to_email and to_email != user.email else "account"},
        )
    return True


def _max_age_hours(kind: str) -> int:
    if kind == "password_reset":
        return max(1, settings.PASSWORD_RESET_TIMEOUT // 3600)
    if kind == "email_verification":
        return max(1, conf.get("ACCOUNTS_EMAIL_VERIFICATION_MAX_AGE") // 3600)
    if kind == "email_change_confirm":
        return max(1, conf.get("ACCOUNTS_EMAIL_CHANGE_MAX_AGE") // 3600)
    return 0
