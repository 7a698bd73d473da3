"""MFA: TOTP devices, backup codes, and code verification with replay protection and throttling.

RFC 6238 §5.2 (a code is accepted once: the device's ``last_t`` only moves forward, by a
conditional UPDATE), RFC 4226 §7.3 and NIST SP 800-63B §5.2.2 (throttling and lockout through
``accounts.services.lockout``), OWASP ASVS 4.0.3 V2.6 (backup codes) and V2.8 (TOTP reuse
logged and rejected).
"""

from __future__ import annotations

import binascii
import dataclasses
import datetime
import enum
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

import audit
from accounts import conf, totp
from accounts.models import BackupCode, BackupCodeDevice, TOTPDevice
from accounts.normalisation import CONTROL_CHARACTERS_MESSAGE, contains_control_characters
from accounts.selectors import mfa_enabled, mfa_required_for
from accounts.services import lockout
from accounts.services.notifications import notification_schedule

BACKUP_CODE_KEY_SALT = "accounts.backup-code"
DEVICE_NAME_MAX_LENGTH = 64


class MfaError(Exception):
    """A refused MFA change, with a message for the user."""


class Outcome(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"  # wrong code
    REPLAYED = "replayed"  # right code, already used (RFC 6238 §5.2)
    MALFORMED = "malformed"  # not 6 digits nor a backup code
    THROTTLED = "throttled"  # too soon after a failure
    LOCKED = "locked"  # too many failures


@dataclasses.dataclass
class Verification:
    outcome: Outcome
    device: TOTPDevice | BackupCodeDevice | None = None
    method: str = ""  # "totp" or "backup_code"
    retry_at: datetime.datetime | None = None
    remaining_backup_codes: int | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPTED


# --- TOTP devices ------------------------------------------------------------------------------


def totp_device_create(*, actor, user, name: str) -> TOTPDevice:
    """Create an unconfirmed authenticator with a fresh key, expiring after ``ACCOUNTS_MFA_UNCONFIRMED_DEVICE_TTL``.

    Other pending (unconfirmed) devices of the user are discarded: one enrollment at a time.
    A name with control characters is a ``ValidationError`` (the usernames' rule).
    Permission: the caller has checked that ``actor`` is ``user`` with a fresh step-up.
    """
    name = (name or "").strip()[:DEVICE_NAME_MAX_LENGTH] or "Authenticator app"
    if contains_control_characters(name):
        raise ValidationError({"name": [CONTROL_CHARACTERS_MESSAGE]})
    now = timezone.now()
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        device = TOTPDevice.objects.create(
            user=user,
            name=name,
            confirmed=False,
            key=binascii.hexlify(totp.new_key()).decode("ascii"),
            expires_at=now + conf.seconds("ACCOUNTS_MFA_UNCONFIRMED_DEVICE_TTL"),
        )
        audit.record(
            action=audit.Action.MFA_DEVICE_ADDED,
            actor=actor,
            subject=user,
            target=device,
            context={"device_name": name, "confirmed": False},
        )
    return device


def totp_device_pending(*, user) -> TOTPDevice | None:
    """The user's unconfirmed, unexpired device, if any."""
    return (
        TOTPDevice.objects.filter(user=user, confirmed=False, expires_at__gt=timezone.now())
        .order_by("-created_at")
        .first()
    )


def totp_device_confirm(*, actor, device: TOTPDevice, code: str, base_url: str = "") -> list[str] | None:
    """Activate ``device`` if ``code`` is a current code of it; return new backup codes on the first device.

    Raises ``MfaError`` (wrong, malformed or expired) after recording ``MFA_VERIFY_FAILED``.
    Permission: the caller has checked that ``actor`` owns ``device``.
    """
    user = device.user
    normalised = totp.normalise_code_input(code)[: totp.CODE_INPUT_MAX_LENGTH]
    if device.confirmed:
        raise MfaError("This authenticator is already active.")
    reason = None
    step = None
    if device.is_expired:
        reason, message = "expired", "This setup has expired. Start again to get a new key."
    elif not totp.TOTP_CODE_PATTERN.match(normalised):
        reason, message = "malformed", "Enter the 6-digit code shown by your authenticator app."
    else:
        step = device.matching_step(normalised)
        if step is None:
            reason, message = (
                "wrong_code",
                "That code is not right. Check the time on your phone and try the next code.",
            )
    if reason is not None:
        with transaction.atomic():
            audit.record(
                action=audit.Action.MFA_VERIFY_FAILED,
                outcome=audit.Outcome.FAILURE,
                actor=actor,
                subject=user,
                target=device,
                context={"purpose": "enrollment", "reason": reason},
            )
        raise MfaError(message)
    with transaction.atomic():
        first = not TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        updated = TOTPDevice.objects.filter(pk=device.pk, confirmed=False).update(
            confirmed=True, expires_at=None, last_t=step, last_used_at=timezone.now()
        )
        if not updated:
            raise MfaError("This authenticator is already active.")
        device.confirmed, device.expires_at, device.last_t = True, None, step
        audit.record(
            action=audit.Action.MFA_DEVICE_CONFIRMED,
            actor=actor,
            subject=user,
            target=device,
            context={"device_name": device.name, "first_device": first},
        )
        notification_schedule(
            user=user, kind="mfa_device_added", context={"device_name": device.name}, base_url=base_url
        )
        codes = None
        if first or not BackupCode.objects.filter(device__user=user, used_at__isnull=True).exists():
            codes = backup_codes_generate(actor=actor, user=user, notify=False, base_url=base_url)
    return codes


def totp_device_remove(*, actor, device: TOTPDevice, base_url: str = "", enforce_policy: bool = True) -> None:
    """Remove an authenticator. The last one cannot go while MFA is required for the user.

    Removing the last authenticator also discards the backup codes (MFA is then off).
    ``enforce_policy=False`` (administrators, for a lost phone) allows removing the last one of
    a user who needs MFA: they are sent to enrollment at their next sign-in.
    Permission: the caller has checked ownership and a fresh step-up (or that ``actor`` is staff).
    """
    user = device.user
    with transaction.atomic():
        others = TOTPDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk)
        if enforce_policy and device.confirmed and not others.exists() and mfa_required_for(user):
            raise MfaError("Multi-factor authentication is required for your account: add another authenticator first.")
        device_pk, name, confirmed = device.pk, device.name, device.confirmed
        device.delete()
        device.pk = device_pk
        backup_set_discarded = False
        if confirmed and not others.exists():
            BackupCodeDevice.objects.filter(user=user).delete()
            backup_set_discarded = True
        audit.record(
            action=audit.Action.MFA_DEVICE_REMOVED,
            actor=actor,
            subject=user,
            target=("accounts.totpdevice", str(device_pk), f"TOTP device {device_pk}"),
            context={"device_name": name, "confirmed": confirmed, "backup_set_discarded": backup_set_discarded},
        )
        if confirmed:
            notification_schedule(
                user=user, kind="mfa_device_removed", context={"device_name": name}, base_url=base_url
            )


def totp_devices_expire() -> int:
    """Delete unconfirmed devices whose enrollment window has passed. Permission: the system."""
    with transaction.atomic():
        deleted, _ = TOTPDevice.objects.filter(confirmed=False, expires_at__lte=timezone.now()).delete()
    return deleted


# --- backup codes ----------------------------------------------------------------------------


def _digest(salt: str, code: str, secret: str) -> str:
    return salted_hmac(f"{BACKUP_CODE_KEY_SALT}.{salt}", code, secret=secret, algorithm="sha256").hexdigest()


def backup_codes_generate(*, actor, user, notify: bool = True, base_url: str = "") -> list[str]:
    """Replace the user's backup codes with ``ACCOUNTS_BACKUP_CODE_COUNT`` new ones; return them once.

    The codes are stored as salted HMAC-SHA-256 digests (a random 128-bit salt each, keyed with
    ``SECRET_KEY``); the old set stops working in the same transaction.
    Permission: the caller has checked that ``actor`` is ``user`` with a fresh step-up.
    """
    count = conf.get("ACCOUNTS_BACKUP_CODE_COUNT")
    codes = [totp.new_backup_code() for _ in range(count)]
    with transaction.atomic():
        device, _ = BackupCodeDevice.objects.get_or_create(user=user, defaults={"name": "Backup codes"})
        replaced = device.codes.filter(used_at__isnull=True).count()
        device.codes.all().delete()
        rows = []
        for code in codes:
            salt = secrets.token_hex(16)
            rows.append(BackupCode(device=device, salt=salt, digest=_digest(salt, code, settings.SECRET_KEY)))
        BackupCode.objects.bulk_create(rows)
        audit.record(
            action=audit.Action.BACKUP_CODES_GENERATED,
            actor=actor,
            subject=user,
            target=device,
            context={"count": count, "replaced_unused": replaced},
        )
        if notify:
            notification_schedule(user=user, kind="backup_codes_generated", context={"count": count}, base_url=base_url)
    return [totp.format_backup_code(code) for code in codes]


def backup_code_consume(*, device: BackupCodeDevice, code: str) -> int | None:
    """Spend ``code`` if it is an unused code of ``device``; return how many remain, else ``None``.

    Every unused digest is compared in constant time (no early exit); the winner is marked used
    with a conditional UPDATE, so a code cannot be spent twice even concurrently.
    """
    code = totp.normalise_code_input(code)
    if not totp.BACKUP_CODE_PATTERN.match(code):
        return None
    secrets_to_try = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    match = None
    for row in device.codes.filter(used_at__isnull=True):
        for secret in secrets_to_try:
            if constant_time_compare(_digest(row.salt, code, secret), row.digest) and match is None:
                match = row
    if match is None:
        return None
    if not BackupCode.objects.filter(pk=match.pk, used_at__isnull=True).update(used_at=timezone.now()):
        return None
    return device.codes.filter(used_at__isnull=True).count()


# --- verification ----------------------------------------------------------------------------


def _classify(code: str) -> tuple[str, str | None]:
    raw = code or ""
    if len(raw) > totp.CODE_INPUT_MAX_LENGTH:
        return "", None
    normalised = totp.normalise_code_input(raw)
    if totp.TOTP_CODE_PATTERN.match(normalised):
        return normalised, "totp"
    if totp.BACKUP_CODE_PATTERN.match(normalised):
        return normalised, "backup_code"
    return normalised, None


def mfa_verify(*, user, code: str, purpose: str, base_url: str = "") -> Verification:
    """Check a code (TOTP or backup) of ``user`` for ``purpose`` ("login" or "step_up").

    Throttled per account with a bounded, growing delay; locks the account's code step at
    ``ACCOUNTS_MFA_FAILURE_LIMIT``; every outcome is recorded (``MFA_VERIFY_SUCCEEDED``,
    ``MFA_VERIFY_FAILED``, ``MFA_CODE_REPLAYED``, ``BACKUP_CODE_USED``, ``ACCOUNT_LOCKED``).
    Nothing but the counters changes on failure. Permission: the caller has established that
    the request is acting for ``user`` (password step passed, or a logged-in session).
    """
    normalised, kind = _classify(code)
    with transaction.atomic():
        gate = lockout.mfa_gate_open(username=user.username)
        retry_at = gate.retry_at
        if retry_at is not None:
            outcome = Outcome.LOCKED if gate.locked else Outcome.THROTTLED
            audit.record(
                action=audit.Action.MFA_VERIFY_FAILED,
                outcome=audit.Outcome.DENIED,
                actor=user,
                subject=user,
                context={"purpose": purpose, "reason": outcome.value, "retry_at": retry_at.isoformat()},
            )
            return Verification(outcome=outcome, retry_at=retry_at)
        result = Verification(outcome=Outcome.MALFORMED)
        if kind == "totp":
            result = _verify_totp(user, normalised)
        elif kind == "backup_code":
            result = _verify_backup_code(user, normalised)
        if result.accepted:
            gate.succeeded()
            audit.record(
                action=audit.Action.MFA_VERIFY_SUCCEEDED,
                actor=user,
                subject=user,
                target=result.device,
                context={"purpose": purpose, "method": result.method},
            )
            if result.method == "backup_code":
                audit.record(
                    action=audit.Action.BACKUP_CODE_USED,
                    actor=user,
                    subject=user,
                    target=result.device,
                    context={"purpose": purpose, "remaining": result.remaining_backup_codes},
                )
                notification_schedule(
                    user=user,
                    kind="backup_code_used",
                    context={"remaining": result.remaining_backup_codes},
                    base_url=base_url,
                )
            return result
        lock = gate.failed()
        if result.outcome is Outcome.REPLAYED:
            audit.record(
                action=audit.Action.MFA_CODE_REPLAYED,
                outcome=audit.Outcome.DENIED,
                actor=user,
                subject=user,
                target=result.device,
                context={"purpose": purpose, "failures": gate.row.failure_count},
            )
        else:
            audit.record(
                action=audit.Action.MFA_VERIFY_FAILED,
                outcome=audit.Outcome.FAILURE,
                actor=user,
                subject=user,
                context={
                    "purpose": purpose,
                    "reason": "wrong_code" if result.outcome is Outcome.REJECTED else "malformed",
                    "method": kind or "unknown",
                    "failures": gate.row.failure_count,
                },
            )
        if lock is not None:
            result.outcome = Outcome.LOCKED
            result.retry_at = lock.until
            audit.record(
                action=audit.Action.ACCOUNT_LOCKED,
                outcome=audit.Outcome.DENIED,
                subject=user,
                target=user,
                context={
                    "kind": "mfa",
                    "scope": lock.scope,
                    "failures": lock.failures,
                    "until": lock.until.isoformat(),
                },
            )
            notification_schedule(
                user=user,
                kind="account_locked",
                context={"until": lock.until.isoformat(timespec="seconds"), "what": "authentication codes"},
                base_url=base_url,
            )
        else:
            result.retry_at = gate.retry_at
        return result


def _verify_totp(user, code: str) -> Verification:
    replayed = None
    for device in TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk"):
        step = device.matching_step(code)
        if step is None:
            continue
        if step <= device.last_t:
            replayed = device
            continue
        if TOTPDevice.objects.filter(pk=device.pk, last_t__lt=step).update(last_t=step, last_used_at=timezone.now()):
            device.last_t = step
            return Verification(outcome=Outcome.ACCEPTED, device=device, method="totp")
        replayed = device
    if replayed is not None:
        return Verification(outcome=Outcome.REPLAYED, device=replayed, method="totp")
    return Verification(outcome=Outcome.REJECTED, method="totp")


def _verify_backup_code(user, code: str) -> Verification:
    device = BackupCodeDevice.objects.filter(user=user).first()
    if device is None or not mfa_enabled(user):
        return Verification(outcome=Outcome.REJECTED, method="backup_code")
    remaining = backup_code_consume(device=device, code=code)
    if remaining is None:
        return Verification(outcome=Outcome.REJECTED, device=device, method="backup_code")
    return Verification(outcome=Outcome.ACCEPTED, device=device, method="backup_code", remaining_backup_codes=remaining)
