"""Account lifecycle: sign-up and email verification, password reset and change, email change, unlock,
deactivation, reactivation and deletion."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth.hashers import make_password
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode

import audit
from accounts import conf, links
from accounts.models import TrackedSession
from accounts.normalisation import normalise_email, normalise_username
from accounts.services import lockout, rate_limits
from accounts.services.notifications import notification_schedule
from accounts.services.sessions import TRACKED_SESSION_KEY, session_revoke_all
from accounts.signals import request_api_keys_revocation

User = get_user_model()


class AccountError(Exception):
    """A refused lifecycle step, with a message for the user."""


# --- sign-up and email verification --------------------------------------------------------


def user_sign_up(*, username: str, email: str, password: str, base_url: str = ""):
    """Create an unverified account and email it a verification link; return the user or ``None``.

    Over the per-IP or per-address limit (``accounts.services.rate_limits``) nothing happens and
    ``None`` is returned, as for a registered address. An address already in use gets no second
    account and no error on the page (that would reveal who is registered): its owner is
    emailed instead, and ``None`` is returned. Both
    paths do the same expensive work — the password validators and one password hash (Argon2id
    in production, about half a second) — so the time of the answer does not tell either
    (OWASP ASVS 4.0.3 V2.2.1; ``bench/signup_timing_bench.py`` compares the two). A taken
    username is an error (the person must choose another). Raises ``ValidationError`` for a
    password the validators refuse. Permission: none (anonymous sign-up).
    """
    username, email = normalise_username(username), normalise_email(email)
    candidate = User(username=username, email=email)
    validate_password(password, user=candidate)
    existing = User._default_manager.filter(email=email).first()
    if not rate_limits.email_request_allowed(purpose="signup", email=email, subject=existing):
        return None  # the caller shows the usual page: the limit tells nothing about the address
    if existing is not None:
        # The hash a new account would store, made and thrown away: the work of the other path.
        make_password(password)
        with transaction.atomic():
            audit.record(
                action=audit.Action.SIGNUP,
                outcome=audit.Outcome.DENIED,
                subject=existing,
                context={"reason": "email_in_use"},
            )
            notification_schedule(user=existing, kind="signup_existing_email", base_url=base_url)
        return None
    try:
        with transaction.atomic():
            user = User._default_manager.create_user(
                username=username,
                email=email,
                password=password,
                email_verified=False,
                email_verification_sent_at=timezone.now(),
            )
            audit.record(action=audit.Action.SIGNUP, actor=user, subject=user, target=user)
            audit.record(action=audit.Action.EMAIL_VERIFICATION_SENT, subject=user, target=user)
            notification_schedule(user=user, kind="email_verification", base_url=base_url)
    except IntegrityError:
        raise ValidationError({"username": "A user with that username already exists."}) from None
    return user


def email_verification_resend(*, user, base_url: str = "") -> bool:
    """Send the verification link again, at most once per ``ACCOUNTS_EMAIL_VERIFICATION_RESEND_INTERVAL``.

    Permission: the caller has checked the user's password (login step) — nobody else can ask.
    """
    if user.email_verified:
        return False
    now = timezone.now()
    interval = conf.seconds("ACCOUNTS_EMAIL_VERIFICATION_RESEND_INTERVAL")
    if user.email_verification_sent_at and user.email_verification_sent_at + interval > now:
        return False
    with transaction.atomic():
        User._default_manager.filter(pk=user.pk).update(email_verification_sent_at=now)
        audit.record(action=audit.Action.EMAIL_VERIFICATION_SENT, subject=user, target=user, context={"resend": True})
        notification_schedule(user=user, kind="email_verification", base_url=base_url)
    return True


def email_verify(*, token: str):
    """Mark the account of a valid verification link verified; return the user.

    Raises ``links.LinkInvalid`` (tampered, expired, already used) after recording
    ``EMAIL_VERIFIED`` with outcome failure. Permission: possession of the link.
    """
    try:
        user_id, email = links.email_verification_load(token)
        with transaction.atomic():
            user = User._default_manager.select_for_update().filter(pk=user_id).first()
            if user is None or user.email != email:
                raise links.LinkInvalid("tampered")
            if user.email_verified:
                raise links.LinkInvalid("used")
            user.email_verified = True
            User._default_manager.filter(pk=user.pk).update(email_verified=True)
            audit.record(action=audit.Action.EMAIL_VERIFIED, actor=user, subject=user, target=user)
        return user
    except links.LinkInvalid as error:
        audit.record(
            action=audit.Action.EMAIL_VERIFIED,
            outcome=audit.Outcome.FAILURE,
            context={"reason": error.reason},
        )
        raise


# --- password reset ----------------------------------------------------------------------------


def password_reset_request(*, email: str, base_url: str = "") -> None:
    """Email a reset link if an active account has this address; the same outcome either way.

    The caller answers with one page whatever happens, and this takes at least
    ``ACCOUNTS_PASSWORD_RESET_RESPONSE_FLOOR`` seconds both ways (the email itself is sent by
    Celery after commit), so neither the page nor its timing tells whether the address is
    registered. Over the per-IP or per-address limit (``accounts.services.rate_limits``) no
    email is sent, with the same page and floor. Permission: none (anonymous).
    """
    started = time.monotonic()
    try:
        email = normalise_email(email)[:254]
        user = User._default_manager.filter(email=email, is_active=True).first() if email else None
        with transaction.atomic():
            if not rate_limits.email_request_allowed(purpose="password_reset", email=email, subject=user):
                return
            if user is not None and user.has_usable_password():
                audit.record(action=audit.Action.PASSWORD_RESET_REQUESTED, subject=user, target=user)
                notification_schedule(user=user, kind="password_reset", base_url=base_url)
            else:
                audit.record(
                    action=audit.Action.PASSWORD_RESET_REQUESTED,
                    outcome=audit.Outcome.FAILURE,
                    context={"reason": "no_matching_account"},
                )
    finally:
        remaining = conf.get("ACCOUNTS_PASSWORD_RESET_RESPONSE_FLOOR") - (time.monotonic() - started)
        if remaining > 0:
            time.sleep(remaining)


def password_reset_user(*, uidb64: str, token: str):
    """The user a reset link is for if its token is valid (Django's generator: single use, expiring), else ``None``.

    Records ``PASSWORD_RESET_COMPLETED`` with outcome failure for a bad link.
    """
    user = None
    try:
        user_id = force_str(urlsafe_base64_decode(uidb64))
        user = User._default_manager.filter(pk=int(user_id)).first()
    except (TypeError, ValueError, OverflowError, UnicodeDecodeError):
        user = None
    if user is not None and len(token or "") <= 100 and default_token_generator.check_token(user, token):
        return user
    audit.record(
        action=audit.Action.PASSWORD_RESET_COMPLETED,
        outcome=audit.Outcome.FAILURE,
        subject=user,
        context={"reason": "invalid_or_expired_link"},
    )
    return None


def password_reset_complete(*, user, token: str, new_password: str, base_url: str = "") -> None:
    """Set a new password from a valid reset link: every session and API key ends, locks are cleared, the user is told.

    Raises ``AccountError`` if the token no longer holds (used meanwhile), ``ValidationError``
    for a refused password. Permission: possession of a valid reset token for ``user``.
    """
    validate_password(new_password, user=user)
    with transaction.atomic():
        user = User._default_manager.select_for_update().get(pk=user.pk)
        if not default_token_generator.check_token(user, token):
            raise AccountError("This link is invalid or has expired.")
        user.set_password(new_password)
        user.save(update_fields=["password"])
        cleared = lockout.counters_clear(username=user.username)
        session_revoke_all(actor=user, user=user, reason=TrackedSession.EndReason.PASSWORD_RESET)
        # A reset is the way back in for someone locked out or taken over (the "if this was not
        # you" of every security email): no key made by the intruder may keep working.
        keys_revoked = request_api_keys_revocation(user=user, actor=user, reason="password_reset")
        audit.record(
            action=audit.Action.PASSWORD_RESET_COMPLETED,
            actor=user,
            subject=user,
            target=user,
            context={"api_keys_revoked": keys_revoked},
        )
        if cleared:
            audit.record(
                action=audit.Action.ACCOUNT_UNLOCKED,
                actor=user,
                subject=user,
                target=user,
                context={"reason": "password_reset", "locks_cleared": cleared},
            )
        notification_schedule(user=user, kind="password_changed", context={"how": "reset"}, base_url=base_url)


# --- password and email change (step-up required by the caller) --------------------------------


def password_change(*, request, new_password: str, revoke_api_keys: bool = True) -> int:
    """Change the request user's password; end every other session (ASVS 3.3.3); keep this one.

    With ``revoke_api_keys`` (the page's checkbox, on by default) every API key of the user is
    revoked too (``accounts.signals``): a key made by whoever knew the old password would
    outlive the change. Returns how many other sessions ended. Raises ``ValidationError`` for a
    refused password. Permission: the caller has checked a fresh step-up of the request's user.
    """
    user = request.user
    validate_password(new_password, user=user)
    current = TrackedSession.objects.filter(pk=request.session.get(TRACKED_SESSION_KEY), user=user).first()
    with transaction.atomic():
        user.set_password(new_password)
        user.save(update_fields=["password"])
        ended = session_revoke_all(
            actor=user, user=user, keep=current, reason=TrackedSession.EndReason.PASSWORD_CHANGED
        )
        keys_revoked = (
            request_api_keys_revocation(user=user, actor=user, reason="password_changed") if revoke_api_keys else 0
        )
        audit.record(
            action=audit.Action.PASSWORD_CHANGED,
            actor=user,
            subject=user,
            target=user,
            context={"others_ended": ended, "api_keys_revoked": keys_revoked},
        )
        notification_schedule(user=user, kind="password_changed", context={"how": "change"}, base_url=_base(request))
    update_session_auth_hash(request, user)  # keeps this session, rotates its key
    return ended


def _base(request) -> str:
    from core.requests import base_url

    return base_url(request)


def email_change_request(*, actor, new_email: str, base_url: str = "") -> None:
    """Send a confirmation link to the new address (the change happens when it is followed).

    The current address is told that a change was requested. An address already used by
    another account gets the same page and no link. Permission: the caller has checked a fresh
    step-up of ``actor``, who changes their own address.
    """
    new_email = normalise_email(new_email)
    with transaction.atomic():
        if new_email == actor.email:
            raise AccountError("That is already your email address.")
        taken = User._default_manager.filter(email=new_email).exclude(pk=actor.pk).exists()
        audit.record(
            action=audit.Action.EMAIL_VERIFICATION_SENT,
            outcome=audit.Outcome.DENIED if taken else audit.Outcome.SUCCESS,
            actor=actor,
            subject=actor,
            target=actor,
            context={"purpose": "email_change", **({"reason": "email_in_use"} if taken else {})},
        )
        if not taken:
            notification_schedule(user=actor, kind="email_change_confirm", to_email=new_email, base_url=base_url)


def email_change_confirm(*, token: str):
    """Apply the change a valid email-change link asks for; notify the old and the new address.

    Raises ``links.LinkInvalid`` (tampered, expired, used, address taken meanwhile) after
    recording ``EMAIL_CHANGED`` with outcome failure. Permission: possession of the link.
    """
    try:
        change = links.email_change_load(token)
        with transaction.atomic():
            user = User._default_manager.select_for_update().filter(pk=change.user_id).first()
            if user is None:
                raise links.LinkInvalid("tampered")
            if user.email != change.old_email:
                raise links.LinkInvalid("used")
            if User._default_manager.filter(email=change.new_email).exclude(pk=user.pk).exists():
                raise links.LinkInvalid("email_in_use")
            user.email = change.new_email
            user.email_verified = True
            user.save(update_fields=["email", "email_verified"])
            audit.record(action=audit.Action.EMAIL_CHANGED, actor=user, subject=user, target=user)
            for address in (change.old_email, change.new_email):
                if address:
                    notification_schedule(
                        user=user,
                        kind="email_changed",
                        to_email=address,
                        context={"old_email": change.old_email, "new_email": change.new_email},
                    )
        return user
    except links.LinkInvalid as error:
        audit.record(action=audit.Action.EMAIL_CHANGED, outcome=audit.Outcome.FAILURE, context={"reason": error.reason})
        raise


# --- unlock ------------------------------------------------------------------------------------


def account_unlock(*, actor, username: str) -> int:
    """Clear every lockout and throttle counter of an account (admin action, ``unlock_account``).

    Returns how many locks were active. Works for any normalised username, whether or not an
    account has it. Permission: the caller has checked that ``actor`` is staff (or an operator
    with shell access: ``actor=None``).
    """
    username = normalise_username(username)
    user = User._default_manager.filter(username=username).first()
    with transaction.atomic():
        cleared = lockout.counters_clear(username=username)
        audit.record(
            action=audit.Action.ACCOUNT_UNLOCKED,
            actor=actor,
            subject=user if user is not None else username,
            target=user,
            context={"locks_cleared": cleared},
        )
    return cleared


# --- deactivation, reactivation and deletion (the console's security page) -------------------
# The permissions these need (docs/PERMISSIONS.md); deletion is Django's own delete permission.
DEACTIVATE_PERMISSION = "accounts.deactivate_user"
DELETE_PERMISSION = "accounts.delete_user"


def _end_access(*, actor, user, reason: str) -> dict[str, int]:
    """End every session and revoke every API key of ``user``: a deactivated or deleted account
    keeps no way in (OWASP ASVS 4.0.3 V3.3: sessions end when the account does)."""
    sessions_ended = session_revoke_all(actor=actor, user=user, reason=TrackedSession.EndReason.REVOKED_BY_ADMIN)
    api_keys_revoked = request_api_keys_revocation(user=user, actor=actor, reason=reason)
    return {"ended": sessions_ended, "api_keys_revoked": api_keys_revoked}


def _refuse_own_account(*, actor, user, what: str) -> None:
    """One's own account, and a superuser's account unless by a superuser, are refused (no lock-out
    of the last administrator, no way for a lesser role to remove a greater one)."""
    if actor is not None and actor.pk == user.pk:
        raise AccountError(f"You cannot {what} your own account; another administrator must do it.")
    if user.is_superuser and actor is not None and not actor.is_superuser:
        raise AccountError(f"Only a superuser may {what} the superuser {user.username}; nothing was changed.")


def account_deactivate(*, actor, user) -> dict[str, int]:
    """Deactivate ``user``: no more sign-ins, every session ended, every API key revoked.

    Records ``auth.account_deactivated`` with what ended and the ``is_active`` value before and
    after (``old``, ``new``). Raises ``AccountError`` for one's own account or one already deactivated.
    Permission: the caller has checked ``accounts.deactivate_user`` and a fresh step-up.
    """
    _refuse_own_account(actor=actor, user=user, what="deactivate")
    with transaction.atomic():
        user = User._default_manager.select_for_update().get(pk=user.pk)
        if not user.is_active:
            raise AccountError(f"{user.username} is already deactivated; nothing was changed.")
        user.is_active = False
        user.save(update_fields=["is_active"])
        ended = _end_access(actor=actor, user=user, reason="account_deactivated")
        audit.record(
            action=audit.Action.ACCOUNT_DEACTIVATED,
            actor=actor,
            subject=user,
            target=user,
            context={**ended, "field": "is_active", "old": True, "new": False},
        )
    return ended


def account_reactivate(*, actor, user) -> None:
    """Let ``user`` sign in again (sessions and API keys ended at deactivation stay ended).

    Records ``auth.account_reactivated``. Raises ``AccountError`` for an active account, and for a
    superuser's account unless ``actor`` is a superuser.
    Permission: the caller has checked ``accounts.deactivate_user`` and a fresh step-up.
    """
    _refuse_own_account(actor=actor, user=user, what="reactivate")
    with transaction.atomic():
        user = User._default_manager.select_for_update().get(pk=user.pk)
        if user.is_active:
            raise AccountError(f"{user.username} is active already; nothing was changed.")
        user.is_active = True
        user.save(update_fields=["is_active"])
        audit.record(
            action=audit.Action.ACCOUNT_REACTIVATED,
            actor=actor,
            subject=user,
            target=user,
            context={"field": "is_active", "old": False, "new": True},
        )


def _record_cascade_removals(*, actor, user) -> None:
    """Record what the deletion's cascade removes with the account, as the memories app records it.

    Memberships (``membership.removed``) and context shares (``context.unshared``) go with the user
    row (``on_delete=CASCADE``); without these events a deleted member would vanish from a team's
    record without a trace of the access it held. Reached through the reverse relations, so this
    module imports nothing of ``memories`` (accounts sits below it), with ``reason`` saying why.
    """
    entries = []
    memberships = getattr(user, "memberships", None)
    for membership in memberships.select_related("team", "organization") if memberships is not None else []:
        entries.append(
            {
                "action": audit.Action.MEMBERSHIP_REMOVED,
                "actor": actor,
                "subject": user,
                "target": membership.team or membership.organization,
                "context": {
                    "role": None,
                    "previous_role": membership.role,
                    "scope": "team" if membership.team_id else "organization",
                    "reason": "account_deleted",
                },
            }
        )
    shares = getattr(user, "context_shares", None)
    for share in shares.select_related("context") if shares is not None else []:
        entries.append(
            {
                "action": audit.Action.CONTEXT_UNSHARED,
                "actor": actor,
                "subject": user,
                "target": share.context,
                "context": {
                    "permission": share.permission,
                    "grantee_type": "user",
                    "grantee_id": user.pk,
                    "reason": "account_deleted",
                },
            }
        )
    if entries:
        audit.record_many(entries)


def account_delete(*, actor, user) -> dict[str, int]:
    """Delete ``user`` after ending their sessions and revoking their API keys (each audited).

    Records ``auth.account_deleted`` first, in the same transaction, so the event keeps the
    account's snapshot (id and username) once the row is gone, then one ``membership.removed`` per
    membership and one ``context.unshared`` per share the cascade removes with it. Refused with ``AccountError``,
    nothing changed, for one's own account and for an account that still owns contexts or is a
    service account (their owner must be settled first: the rows are protected).
    Permission: the caller has checked ``accounts.delete_user`` and a fresh step-up.
    """
    from django.db.models import ProtectedError

    _refuse_own_account(actor=actor, user=user, what="delete")
    username = user.username
    try:
        with transaction.atomic():
            user = User._default_manager.select_for_update().get(pk=user.pk)
            ended = _end_access(actor=actor, user=user, reason="account_deleted")
            audit.record(
                action=audit.Action.ACCOUNT_DELETED,
                actor=actor,
                subject=user,
                target=user,
                context={**ended, "was_staff": user.is_staff, "was_superuser": user.is_superuser},
            )
            _record_cascade_removals(actor=actor, user=user)
            user.delete()
    except ProtectedError as error:
        kinds = sorted({str(protected._meta.verbose_name_plural) for protected in error.protected_objects})
        raise AccountError(
            f"{username} still owns {', '.join(kinds)}: transfer or delete them first; nothing was changed."
        ) from None
    return ended


__all__ = [
    "AccountError",
    "account_deactivate",
    "account_delete",
    "account_reactivate",
    "account_unlock",
    "email_change_confirm",
    "email_change_request",
    "email_verification_resend",
    "email_verify",
    "password_change",
    "password_reset_complete",
    "password_reset_request",
    "password_reset_user",
    "settings",
    "user_sign_up",
]
