"""The security-email outbox: an email to a user, written in the transaction of what it announces."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SecurityEmailStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"


class SecurityEmail(models.Model):
    """One security email (locked account, new sign-in, reset link, ...) waiting to be sent or sent.

    Written with the change that causes it, so a rolled-back change sends nothing and a broker or
    SMTP outage only delays it: ``accounts.security_emails_deliver`` (after commit, and every minute
    from beat) sends due rows and retries a failure with backoff. ``context`` holds plain facts for
    the template (names, counts, times), never a secret: links with tokens are made when sending.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="security_emails")
    kind = models.CharField(max_length=40)
    context = models.JSONField(default=dict, blank=True)
    to_email = models.EmailField(blank=True, default="", help_text="Another address than the account's, if any.")
    base_url = models.CharField(max_length=300, blank=True, default="")
    status = models.CharField(max_length=10, choices=SecurityEmailStatus.choices, default=SecurityEmailStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="accounts_email_due")]

    def __str__(self) -> str:
        return f"{self.kind} email to user {self.user_id} ({self.status})"
