"""Tracked sessions: begin, rotate, expire, revoke (OWASP ASVS 4.0.3 V3.2, V3.3).

The Django session holds the tracked session's primary key (server side, never sent to the
client); ``accounts.middleware.SessionSecurityMiddleware`` reads that one row per authenticated
request to refuse ended sessions in every process, and writes ``last_seen_at`` at most once per
``ACCOUNTS_SESSION_LAST_SEEN_INTERVAL``.
"""

from __future__ import annotations

import datetime

from django.contrib.auth import logout as django_logout
from django.db import transaction
from django.utils import timezone
from django_otp import login as otp_login

import audit
from accounts import conf
from accounts.models import TrackedSession
from accounts.services.notifications import notification_schedule
from accounts.user_agents import device_label
from core.requests import base_url, client_ip, user_agent

# Keys in the (server-side) session data.
TRACKED_SESSION_KEY = "_accounts_tracked_session"
PRIVILEGE_VERSION_KEY = "_accounts_privilege_version"
REAUTHENTICATED_AT_KEY = "_accounts_reauthenticated_at"
PENDING_LOGIN_KEY = "_accounts_pending_login"


def session_begin(*, request, user, method: str) -> TrackedSession:
    """Start tracking the session that ``django.contrib.auth.login`` just created.

    Called from the ``user_logged_in`` receiver (so every login path is tracked). Records
    ``SESSION_CREATED`` and, for a device/IP pair the user never used before, schedules the
    "new sign-in" email. Permission: the caller has authenticated ``user``.
    """
    now = timezone.now()
    address = client_ip(request)
    agent = user_agent(request)
    label = device_label(agent)
    mfa_verified = getattr(user, "otp_device", None) is not None
    earlier = TrackedSession.objects.filter(user=user)
    known = earlier.filter(device_label=label, ip_address=address).exists()
    first_login = not known and not earlier.exists()
    with transaction.atomic():
        tracked = TrackedSession.objects.create(
            user=user,
            created_at=now,
            last_seen_at=now,
            ip_address=address,
            user_agent=agent,
            device_label=label,
            method=method if method in TrackedSession.Method.values else TrackedSession.Method.OTHER,
            mfa_verified=mfa_verified,
        )
        audit.record(
            action=audit.Action.SESSION_CREATED,
            actor=user,
            subject=user,
            target=_target(tracked),
            context={"method": tracked.method, "device": label},
        )
        if not known and not first_login and conf.get("ACCOUNTS_NOTIFY_NEW_LOGIN"):
            notification_schedule(
                user=user,
                kind="new_login",
                context={"device": label, "address": address or "unknown", "at": now.isoformat(timespec="seconds")},
                base_url=base_url(request),
            )
    request.session[TRACKED_SESSION_KEY] = tracked.pk
    request.session[PRIVILEGE_VERSION_KEY] = user.privilege_version
    request.session[REAUTHENTICATED_AT_KEY] = now.timestamp()
    return tracked


def _target(tracked: TrackedSession) -> tuple[str, str, str]:
    """Sessions are named by their opaque public id in events, never by a key or row id."""
    return ("accounts.trackedsession", tracked.public_id, tracked.device_label)


def session_mfa_passed(*, request, user, device) -> None:
    """Mark the current session as MFA-verified: persist the device, rotate the key (ASVS 3.2.1)."""
    otp_login(request, device)
    request.session.cycle_key()
    request.session[REAUTHENTICATED_AT_KEY] = timezone.now().timestamp()
    tracked_id = request.session.get(TRACKED_SESSION_KEY)
    if tracked_id:
        TrackedSession.objects.filter(pk=tracked_id, user=user).update(mfa_verified=True)


def _end(queryset, reason: str, now: datetime.datetime) -> int:
    return queryset.filter(ended_at__isnull=True).update(ended_at=now, end_reason=reason)


def session_expire(*, tracked_id: int, reason: str) -> None:
    """End a session that timed out (idle or absolute) and record it. Permission: the system."""
    now = timezone.now()
    with transaction.atomic():
        tracked = TrackedSession.objects.select_for_update().filter(pk=tracked_id, ended_at__isnull=True).first()
        if tracked is None:
            return
        _end(TrackedSession.objects.filter(pk=tracked.pk), reason, now)
        audit.record(
            action=audit.Action.SESSION_EXPIRED,
            subject=tracked.user,
            target=_target(tracked),
            context={"reason": reason},
        )


def session_refused(*, tracked_id, user_id) -> None:
    """Record a request refused because its session was ended (revoked, logged out, timed out) or unknown.

    The request's session is flushed by the middleware; this is the audit trail of the attempt.
    Permission: the system (middleware).
    """
    from django.contrib.auth import get_user_model

    tracked = TrackedSession.objects.filter(pk=tracked_id).first() if tracked_id else None
    user = get_user_model()._default_manager.filter(pk=user_id).first() if user_id else None
    audit.record(
        action=audit.Action.SESSION_REVOKED,
        outcome=audit.Outcome.DENIED,
        subject=user,
        target=_target(tracked) if tracked else None,
        context={
            "reason": "ended_session_used" if tracked else "untracked_session",
            "ended_by": tracked.end_reason if tracked else "",
        },
    )


def session_revoke(*, actor, tracked: TrackedSession) -> bool:
    """End one session of ``tracked.user``; refused on its next request in every process.

    Permission: checked by the caller (the user owns it, or ``actor`` is staff in the admin).
    Returns False if it had already ended.
    """
    reason = (
        TrackedSession.EndReason.REVOKED
        if actor is not None and actor.pk == tracked.user_id
        else TrackedSession.EndReason.REVOKED_BY_ADMIN
    )
    with transaction.atomic():
        ended = _end(TrackedSession.objects.filter(pk=tracked.pk), reason, timezone.now())
        if ended:
            audit.record(
                action=audit.Action.SESSION_REVOKED,
                actor=actor,
                subject=tracked.user,
                target=_target(tracked),
                context={"reason": reason},
            )
    return bool(ended)


def session_revoke_all(*, actor, user, keep: TrackedSession | None = None, reason: str | None = None) -> int:
    """End every active session of ``user`` except ``keep``; return how many ended.

    Permission: checked by the caller (the user themself after step-up, or staff in the admin).
    """
    reason = reason or (
        TrackedSession.EndReason.REVOKED
        if actor is not None and actor.pk == user.pk
        else TrackedSession.EndReason.REVOKED_BY_ADMIN
    )
    with transaction.atomic():
        sessions = TrackedSession.objects.filter(user=user)
        if keep is not None:
            sessions = sessions.exclude(pk=keep.pk)
        ended = _end(sessions, reason, timezone.now())
        audit.record(
            action=audit.Action.SESSION_REVOKED_ALL,
            actor=actor,
            subject=user,
            target=user,
            context={"reason": reason, "ended": ended, "kept_current": keep is not None},
        )
    return ended


def session_logout(*, request) -> None:
    """Log the request's user out: end the tracked session, record ``LOGOUT``, flush the session.

    The account pages' sign-out and the console's *Log out* (``accounts.admin_site``) call this.
    Django's ``logout`` sends ``user_logged_out`` before it flushes the session; the receiver hands
    over to ``session_logged_out``, which does the ending and the recording, so any other caller
    of ``django.contrib.auth.logout`` is covered as well, and each way out records one event.
    Permission: the request's own session.
    """
    with transaction.atomic():
        django_logout(request)


def session_logged_out(*, request, user) -> None:
    """End the tracked session of a request being logged out and record ``LOGOUT`` (once).

    Called from the ``user_logged_out`` receiver, while the session still holds the tracked
    session's id. ``user`` is None when the request was not authenticated: nothing is recorded.
    Permission: the request's own session.
    """
    tracked_id = request.session.get(TRACKED_SESSION_KEY)
    tracked = TrackedSession.objects.filter(pk=tracked_id).first() if tracked_id else None
    with transaction.atomic():
        if tracked is not None:
            _end(TrackedSession.objects.filter(pk=tracked.pk), TrackedSession.EndReason.LOGOUT, timezone.now())
        if user is not None:
            audit.record(
                action=audit.Action.LOGOUT,
                actor=user,
                subject=user,
                target=_target(tracked) if tracked else None,
            )


def step_up_record(*, request, user, device=None) -> None:
    """After a successful re-authentication: remember when, and the device if a code was used."""
    if device is not None:
        session_mfa_passed(request=request, user=user, device=device)
    request.session[REAUTHENTICATED_AT_KEY] = timezone.now().timestamp()
