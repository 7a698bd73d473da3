"""MFA devices: TOTP authenticators and the backup-code set, as django-otp devices.

Both subclass django-otp's abstract ``Device`` (so ``OTPMiddleware``, ``django_otp.login`` and
``user.is_verified()`` work unchanged), not its ``otp_totp``/``otp_static`` plugins. The TOTP key
is an ``EncryptedCharField``; the replay state ``last_t`` (RFC 6238 §5.2) advances by a
conditional UPDATE, so two requests cannot spend one code; throttling is per user in
``FailureCounter`` (``accounts.services.lockout``); backup codes are salted HMAC-SHA-256 digests.
Why: docs/decisions/totp-devices-on-django-otp.md.
"""

from __future__ import annotations

import binascii

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_otp.models import Device, TimestampMixin

from accounts import totp
from encryption.fields import EncryptedCharField


class TOTPDevice(TimestampMixin, Device):
    """A named authenticator app of a user (several allowed).

    Created unconfirmed with an expiry; confirmed (and the expiry cleared) only when the user
    enters a valid code from it (``accounts.services.mfa.totp_device_confirm``).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="totp_devices")
    confirmed = models.BooleanField(default=False)
    # Hex of the 20-byte key, encrypted at rest. Never shown again after enrollment.
    key = EncryptedCharField(max_length=80)
    # The time step of the last accepted code: only later steps are accepted (RFC 6238 §5.2).
    last_t = models.BigIntegerField(default=-1)
    # Unconfirmed devices stop being confirmable after this and are purged.
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "TOTP device"
        permissions = [("remove_totpdevice", "Can remove a user's authenticator (a lost device)")]
        indexes = [models.Index(fields=["user", "confirmed"], name="accounts_totp_user_confirmed")]

    def __str__(self) -> str:
        return self.name

    def audit_repr(self) -> str:
        return f"TOTP device {self.pk}"

    @property
    def bin_key(self) -> bytes:
        return binascii.unhexlify(self.key.encode("ascii"))

    @property
    def is_expired(self) -> bool:
        return not self.confirmed and self.expires_at is not None and self.expires_at <= timezone.now()

    def matching_step(self, code: str) -> int | None:
        """The time step (±1) whose code is ``code``, ignoring replay state."""
        return totp.matching_step(self.bin_key, code)

    def verify_token(self, token) -> bool:
        """django-otp's device API: accept a fresh code once; advances the replay state.

        Services call ``accounts.services.mfa`` instead, which adds throttling and auditing;
        this exists so django-otp's own helpers can never accept a replayed code either.
        """
        step = self.matching_step(str(token))
        if step is None or step <= self.last_t:
            return False
        advanced = TOTPDevice.objects.filter(pk=self.pk, last_t__lt=step).update(
            last_t=step, last_used_at=timezone.now()
        )
        if advanced:
            self.last_t = step
        return bool(advanced)


class BackupCodeDevice(Device):
    """The backup-code set of a user, as one django-otp device (so a login by backup code is verified)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backup_code_device")
    confirmed = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "backup code set"

    def __str__(self) -> str:
        return self.name

    def audit_repr(self) -> str:
        return f"backup code set {self.pk}"

    def verify_token(self, token) -> bool:
        from accounts.services.mfa import backup_code_consume

        return backup_code_consume(device=self, code=str(token)) is not None


class BackupCode(models.Model):
    """One single-use backup code, stored as a salted HMAC-SHA-256 digest (ASVS 2.6.2)."""

    device = models.ForeignKey(BackupCodeDevice, on_delete=models.CASCADE, related_name="codes")
    salt = models.CharField(max_length=32)
    digest = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["device", "used_at"], name="accounts_backup_device_used")]

    def __str__(self) -> str:
        return f"backup code {self.pk}"
