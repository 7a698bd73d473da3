"""Security notification emails (OWASP ASVS 4.0.3 V2.2.3, V2.5.5): rendered and sent by Celery after commit.

Callers use ``notification_schedule``: nothing is sent unless the transaction that caused the
notification commits. The task receives ids and names only; anything secret that a message
needs (a reset token, a signed link) is made inside the task at sending time, so it never sits
in the broker.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

import audit
from accounts import conf, links
from core.emails import absolute_url, site_url

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
}


def notification_schedule(
    *, user: Any, kind: str, context: dict | None = None, to_email: str | None = None, base_url: str = ""
) -> None:
    """Send the ``kind`` email to ``user`` (or ``to_email``) after the current transaction commits.

    ``context`` holds plain facts for the template (names, counts, times as ISO text): no secret.
    ``base_url`` is the ``scheme://host`` of the request that caused the email, if any: links use
    ``ACCOUNTS_SITE_URL`` first (``core.emails.site_url``).
    """
    if kind not in SUBJECTS:
        raise ValueError(f"unknown notification kind {kind!r}")
    from accounts.tasks import security_notification_send

    transaction.on_commit(
        partial(
            security_notification_send.delay,
            user_id=user.pk,
            kind=kind,
            context=context or {},
            to_email=to_email,
            base_url=site_url(request_base_url=base_url),
        )
    )


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

    Permission: none — the system sends it (called by the Celery task).
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
