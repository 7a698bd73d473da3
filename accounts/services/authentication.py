"""Login (password, then code), logout and step-up re-authentication.

Every authentication decision is recorded (OWASP ASVS 4.0.3 V7.1.3, V7.2.1): the attempted
username is normalised first and kept as the event's subject when no account has it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import enum
import functools

from django.contrib import auth
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django_otp.middleware import is_verified as otp_is_verified

import audit
from accounts import conf
from accounts.models import TrackedSession
from accounts.normalisation import contains_control_characters, normalise_username
from accounts.selectors import mfa_enabled
from accounts.services import lockout
from accounts.services.mfa import Outcome as MfaOutcome
from accounts.services.mfa import Verification, mfa_verify
from accounts.services.notifications import notification_schedule
from accounts.services.sessions import PENDING_LOGIN_KEY, step_up_record
from core.requests import base_url, client_ip

BACKEND = "accounts.backends.NormalisedUsernameBackend"
USERNAME_MAX_LENGTH = 150
PASSWORD_MAX_LENGTH = 4096  # longer input is refused before hashing (hashing cost is the DoS)


class Result(enum.Enum):
    OK = "ok"
    MFA_REQUIRED = "mfa_required"
    BAD_CREDENTIALS = "bad_credentials"
    LOCKED = "locked"
    EMAIL_UNVERIFIED = "email_unverified"
    INVALID_USERNAME = "invalid_username"


@dataclasses.dataclass
class Check:
    result: Result
    user: object | None = None
    retry_at: datetime.datetime | None = None


def username_is_acceptable(raw: str) -> bool:
    """Refuse control and format characters (log forging, look-alikes) and overlong names.

    Applied to the *normalised* username, so surrounding whitespace (a trailing tab) is not an error.
    """
    if not raw or len(raw) > USERNAME_MAX_LENGTH:
        return False
    return not contains_control_characters(raw)


def password_check(
    *, username: str, password: str, client_ip: str | None, purpose: str = "login", base_url: str = ""
) -> Check:
    """Check a username and password behind the lockout counters; record the decision.

    The attempt is counted before the password is hashed (``lockout.password_attempt_reserve``),
    so a locked client costs no hashing and concurrency cannot exceed the threshold; an unknown
    username is hashed against a dummy password so timing does not reveal it. Returns ``OK``
    only for an active account with a verified email. ``base_url``: the request's
    ``scheme://host``, for the links of a lockout email. Permission: none (anonymous).
    """
    normalised = normalise_username(username or "")
    if not username_is_acceptable(normalised) or len(password or "") > PASSWORD_MAX_LENGTH:
        audit.record(
            action=audit.Action.LOGIN_FAILED,
            outcome=audit.Outcome.FAILURE,
            subject=normalised[:USERNAME_MAX_LENGTH],
            context={"reason": "invalid_input", "stage": "password", "purpose": purpose},
        )
        return Check(Result.INVALID_USERNAME)
    reservation = lockout.password_attempt_reserve(username=normalised, client_ip=client_ip)
    retry_at = reservation.refused_until
    if retry_at is not None:
        audit.record(
            action=audit.Action.LOGIN_FAILED,
            outcome=audit.Outcome.DENIED,
            subject=normalised,
            context={"reason": "locked", "stage": "password", "purpose": purpose, "retry_at": retry_at.isoformat()},
        )
        return Check(Result.LOCKED, retry_at=retry_at)
    user_model = get_user_model()
    user = user_model._default_manager.filter(username=normalised).first()
    if user is None:
        # Run the hasher once, as Django's ModelBackend does (#20760), so that an unknown
        # username takes as long as a wrong password.
        user_model().set_password(password)
        valid = False
    else:
        valid = user.check_password(password) and user.is_active
    if not valid:
        return _password_failed(
            user=user,
            username=normalised,
            client_ip=client_ip,
            purpose=purpose,
            reservation=reservation,
            base_url=base_url,
        )
    lockout.password_attempt_succeeded(username=normalised, client_ip=client_ip)
    if not user.email_verified:
        audit.record(
            action=audit.Action.LOGIN_FAILED,
            outcome=audit.Outcome.DENIED,
            actor=None,
            subject=user,
            context={"reason": "email_unverified", "stage": "password", "purpose": purpose},
        )
        return Check(Result.EMAIL_UNVERIFIED, user=user)
    return Check(Result.OK, user=user)


def _password_failed(
    *, user, username: str, client_ip: str | None, purpose: str, reservation, base_url: str = ""
) -> Check:
    subject = user if user is not None else username
    # One statement when nothing locks (the usual case): no transaction needed around it.
    with transaction.atomic() if reservation.reached else contextlib.nullcontext():
        locks = lockout.password_attempt_failed(username=username, client_ip=client_ip, reservation=reservation)
        audit.record(
            action=audit.Action.LOGIN_FAILED,
            outcome=audit.Outcome.FAILURE,
            subject=subject,
            context={"reason": "bad_credentials", "stage": "password", "purpose": purpose},
        )
        for lock in locks:
            audit.record(
                action=audit.Action.ACCOUNT_LOCKED,
                outcome=audit.Outcome.DENIED,
                subject=subject,
                target=user,
                context={
                    "kind": "password",
                    "scope": lock.scope,
                    "failures": lock.failures,
                    "until": lock.until.isoformat(),
                },
            )
        if locks and user is not None and user.email:
            notification_schedule(
                user=user,
                kind="account_locked",
                context={"until": max(lock.until for lock in locks).isoformat(timespec="seconds"), "what": "passwords"},
                base_url=base_url,
            )
    if locks:
        return Check(Result.LOCKED, user=None, retry_at=max(lock.until for lock in locks))
    return Check(Result.BAD_CREDENTIALS)


def login_password_step(*, request, username: str, password: str) -> Check:
    """Step one of the login. ``OK``: logged in. ``MFA_REQUIRED``: the session waits for a code.

    On ``MFA_REQUIRED`` the session key is rotated and holds only the pending user id and the
    time (the code must follow within ``ACCOUNTS_MFA_LOGIN_TIMEOUT``). Permission: none.
    """
    check = password_check(
        username=username, password=password, client_ip=client_ip(request), base_url=base_url(request)
    )
    if check.result is not Result.OK:
        if check.result is Result.EMAIL_UNVERIFIED:
            from accounts.services.lifecycle import email_verification_resend

            email_verification_resend(user=check.user, base_url=base_url(request))
        return check
    user = check.user
    if mfa_enabled(user):
        request.session.cycle_key()
        request.session[PENDING_LOGIN_KEY] = {"user_id": user.pk, "at": timezone.now().timestamp()}
        return Check(Result.MFA_REQUIRED, user=user)
    login_complete(request=request, user=user, method=TrackedSession.Method.PASSWORD)
    return check


def pending_login_user(request):
    """The user waiting for the code step of this session, or ``None`` (absent or timed out)."""
    pending = request.session.get(PENDING_LOGIN_KEY)
    if not isinstance(pending, dict):
        return None
    started = pending.get("at", 0)
    if timezone.now().timestamp() - started > conf.get("ACCOUNTS_MFA_LOGIN_TIMEOUT"):
        request.session.pop(PENDING_LOGIN_KEY, None)
        return None
    return get_user_model()._default_manager.filter(pk=pending.get("user_id"), is_active=True).first()


def login_mfa_step(*, request, code: str) -> Verification | None:
    """Step two: check the code for the pending user; log in on success. ``None``: nothing pending."""
    user = pending_login_user(request)
    if user is None:
        return None
    verification = mfa_verify(user=user, code=code, purpose="login", base_url=base_url(request))
    if verification.accepted:
        request.session.pop(PENDING_LOGIN_KEY, None)
        method = (
            TrackedSession.Method.PASSWORD_TOTP
            if verification.method == "totp"
            else TrackedSession.Method.PASSWORD_BACKUP_CODE
        )
        login_complete(request=request, user=user, method=method, device=verification.device)
    return verification


def login_complete(*, request, user, method: str, device=None) -> None:
    """Log ``user`` in: new session key (``auth.login`` rotates it), OTP device, tracked session, event.

    Permission: the caller has verified the password (and the code when MFA is on).
    """
    user.backend = BACKEND
    user.authentication_method = method
    # As OTPMiddleware would set them; django_otp's user_logged_in receiver persists the device.
    user.otp_device = device
    user.is_verified = functools.partial(otp_is_verified, user)
    with transaction.atomic():
        auth.login(request, user, backend=BACKEND)
        audit.record(
            action=audit.Action.LOGIN_SUCCEEDED,
            actor=user,
            subject=user,
            context={"method": method},
        )
        from accounts.services.policy import mfa_grace_start

        mfa_grace_start(user=user)


def reauthenticate(*, request, password: str, code: str = "") -> tuple[Check, Verification | None]:
    """Step-up (ASVS V3.7.1): the password, and a code if the user has MFA, again.

    Password failures count toward lockout like login failures; code failures toward the MFA
    counter. On success the session remembers the time (and the device: MFA passed, key rotated).
    Permission: the request's authenticated user re-authenticates themself.
    """
    user = request.user
    check = password_check(
        username=user.get_username(),
        password=password,
        client_ip=client_ip(request),
        purpose="step_up",
        base_url=base_url(request),
    )
    if check.result is not Result.OK or check.user.pk != user.pk:
        return check, None
    verification = None
    device = None
    if mfa_enabled(user):
        verification = mfa_verify(user=user, code=code, purpose="step_up", base_url=base_url(request))
        if not verification.accepted:
            return check, verification
        device = verification.device
    with transaction.atomic():
        step_up_record(request=request, user=user, device=device)
        audit.record(
            action=audit.Action.REAUTHENTICATED,
            actor=user,
            subject=user,
            context={"method": verification.method if verification else "password"},
        )
    return check, verification


__all__ = [
    "BACKEND",
    "Check",
    "MfaOutcome",
    "Result",
    "login_complete",
    "login_mfa_step",
    "login_password_step",
    "password_check",
    "pending_login_user",
    "reauthenticate",
    "username_is_acceptable",
]


def login_input_refused(*, username: str, purpose: str = "login") -> None:
    """Record a login form refused for its shape (control characters in the username)."""
    audit.record(
        action=audit.Action.LOGIN_FAILED,
        outcome=audit.Outcome.FAILURE,
        subject=normalise_username(username or "")[:USERNAME_MAX_LENGTH],
        context={"reason": "invalid_input", "stage": "password", "purpose": purpose},
    )
