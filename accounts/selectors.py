"""Reads of the accounts app that more than one place needs (views, admin, middleware, other apps).

Other apps (``api``: creating an API key) use ``step_up_is_fresh`` / ``step_up_required``
(``accounts.decorators``) for their own sensitive actions.
"""

from __future__ import annotations

import datetime

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet
from django.utils import timezone
from django_otp import device_classes

from accounts import conf
from accounts.models import BackupCode, FailureCounter, TOTPDevice, TrackedSession
from accounts.services.sessions import REAUTHENTICATED_AT_KEY, TRACKED_SESSION_KEY


def mfa_enabled(user) -> bool:
    """Whether ``user`` has at least one confirmed authenticator (then login takes a code)."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def backup_codes_remaining(user) -> int:
    """How many of the user's backup codes are still unused."""
    return BackupCode.objects.filter(device__user=user, used_at__isnull=True).count()


def totp_device_list(*, user) -> QuerySet:
    """The user's confirmed authenticators, oldest first."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("created_at", "pk")


def tracked_session_list(*, user, active_only: bool = True) -> QuerySet:
    """The user's sessions, newest first."""
    sessions = TrackedSession.objects.filter(user=user)
    if active_only:
        # A session nobody came back to is never ended by a request: leave out the timed-out ones.
        now = timezone.now()
        sessions = sessions.filter(
            ended_at__isnull=True,
            created_at__gt=now - conf.seconds("ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT"),
            last_seen_at__gt=now - conf.seconds("ACCOUNTS_SESSION_IDLE_TIMEOUT"),
        )
    return sessions.order_by("-created_at")


def current_tracked_session_id(request) -> int | None:
    return request.session.get(TRACKED_SESSION_KEY)


def step_up_is_fresh(request) -> bool:
    """Whether the request's user (re-)authenticated within ``ACCOUNTS_STEP_UP_MAX_AGE`` seconds."""
    at = request.session.get(REAUTHENTICATED_AT_KEY)
    if not isinstance(at, int | float):
        return False
    age = timezone.now().timestamp() - at
    return 0 <= age <= conf.get("ACCOUNTS_STEP_UP_MAX_AGE")


def mfa_required_for(user) -> bool:
    """Whether the policy requires MFA of ``user`` (staff always; everyone under ``ACCOUNTS_MFA_REQUIRED_FOR_ALL``)."""
    return bool(user.is_staff or conf.get("ACCOUNTS_MFA_REQUIRED_FOR_ALL"))


def mfa_grace_deadline(user) -> datetime.datetime | None:
    """When the "MFA for all" grace period of ``user`` ends (``None``: not under it, or not started)."""
    if user.is_staff or not conf.get("ACCOUNTS_MFA_REQUIRED_FOR_ALL") or user.mfa_grace_started_at is None:
        return None
    return user.mfa_grace_started_at + datetime.timedelta(days=conf.get("ACCOUNTS_MFA_GRACE_DAYS"))


def mfa_enforced_now(user) -> bool:
    """Whether ``user`` must have passed MFA to use the site now (staff, or past the grace period)."""
    if user.is_staff:
        return True
    if not conf.get("ACCOUNTS_MFA_REQUIRED_FOR_ALL"):
        return False
    deadline = mfa_grace_deadline(user)
    return deadline is not None and deadline <= timezone.now()


def security_events_list(*, user, limit: int | None = None):
    """Recent audit events about ``user`` (as actor or subject), newest first, for the security page."""
    from audit.selectors import event_list

    limit = limit or conf.get("ACCOUNTS_SECURITY_EVENTS_SHOWN")
    events = event_list(user=user).filter(Q(action__startswith="auth.") | Q(action__startswith="authz."))
    return list(events[:limit])


def _second_factor_models() -> list:
    """django-otp device models that are a second factor (backup codes are not)."""
    return [
        model
        for model in device_classes()
        if not model._meta.abstract and not any(word in model.__name__.lower() for word in ("backup", "static"))
    ]


def mfa_adoption_counts() -> dict[str, int]:
    """Active users and active staff, and how many of each have at least one confirmed second factor."""
    users = get_user_model().objects.filter(is_active=True)
    condition = Q(pk__in=[])
    for model in _second_factor_models():
        condition |= Exists(model.objects.filter(user=OuterRef("pk"), confirmed=True))
    return {
        "users": users.count(),
        "users_with_mfa": users.filter(condition).count(),
        "staff": users.filter(is_staff=True).count(),
        "staff_with_mfa": users.filter(condition, is_staff=True).count(),
    }


def tracked_session_active_count() -> int:
    """Tracked sessions not yet ended."""
    return TrackedSession.objects.filter(ended_at__isnull=True).count()


def locked_account_list(*, now: datetime.datetime, limit: int = 20) -> dict:
    """Accounts with a lock in force now (any counter: password or MFA, all addresses or one IP).

    Per normalised username: when its last lock ends and how many counters are locked; the
    longest lock first, at most ``limit``; and how many accounts are locked in all. For the
    security dashboard, whose unlock button calls ``accounts.services.lifecycle.account_unlock``.
    """
    locked = FailureCounter.objects.filter(locked_until__gt=now)
    rows = (
        locked.values("username")
        .annotate(until=Max("locked_until"), counters=Count("id"))
        .order_by("-until", "username")[:limit]
    )
    return {
        "accounts": [
            {"username": row["username"], "until": row["until"], "counters": row["counters"]} for row in rows
        ],
        "total": locked.values("username").distinct().count(),
    }
