"""Tracked sessions: what the user sees on /accounts/sessions/ and the admin revokes."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models


def new_public_id() -> str:
    """An opaque, random public id (128 bits): never the session key (ASVS 3.3.4)."""
    return secrets.token_urlsafe(16)


class TrackedSession(models.Model):
    """One login: who, from where, how, until when.

    The Django session stores this row's primary key; the session key itself is never stored
    here, shown or used as an identifier (the django-user-sessions mistake).
    """

    class Method(models.TextChoices):
        PASSWORD = "password", "Password"
        PASSWORD_TOTP = "password+totp", "Password and authenticator code"
        PASSWORD_BACKUP_CODE = "password+backup_code", "Password and backup code"
        OTHER = "other", "Other"

    class EndReason(models.TextChoices):
        LOGOUT = "logout", "Logged out"
        REVOKED = "revoked", "Revoked by the user"
        REVOKED_BY_ADMIN = "revoked_by_admin", "Revoked by an administrator"
        IDLE_TIMEOUT = "idle_timeout", "Idle timeout"
        ABSOLUTE_TIMEOUT = "absolute_timeout", "Absolute timeout"
        PASSWORD_CHANGED = "password_changed", "Password changed"
        PASSWORD_RESET = "password_reset", "Password reset"
        ACCOUNT_LOCKED = "account_locked", "Account locked"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tracked_sessions")
    created_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=256, blank=True, default="")
    device_label = models.CharField(max_length=100, blank=True, default="")
    method = models.CharField(max_length=32, choices=Method.choices, default=Method.PASSWORD)
    mfa_verified = models.BooleanField(default=False)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, choices=EndReason.choices, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        permissions = [("revoke_session", "Can end other users' sessions")]
        indexes = [models.Index(fields=["user", "ended_at"], name="accounts_session_user_ended")]

    def __str__(self) -> str:
        return f"session {self.public_id}"

    def audit_repr(self) -> str:
        return f"session {self.public_id} ({self.device_label})"

    @property
    def is_active(self) -> bool:
        return self.ended_at is None
