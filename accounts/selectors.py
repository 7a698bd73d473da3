"""Reads of the accounts app that more than one place needs (views, admin, middleware, other apps).

Other apps (``api``: creating an API key) use ``step_up_is_fresh`` / ``step_up_required``
(``accounts.decorators``) for their own sensitive actions.
"""

from __future__ import annotations

import datetime

from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django_otp import device_classes

from accounts import conf
from accounts.models import BackupCode, FailureCounter, TOTPDevice, TrackedSession
from accounts.roles import UNLOCK_PERMISSION
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


def may_unlock_accounts(user) -> bool:
    """Whether ``user`` may clear lockout counters (``accounts.unlock_user``): seeing them is not enough."""
    return user.has_perm(UNLOCK_PERMISSION)


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


# --- the user's security page in the console (accounts/admin_views.py) ---------------------------
# Privilege events of one user read to find when each privilege was granted: a user's
# privilege history is short, so this bounds the read without missing real grants (events).
PRIVILEGE_EVENTS_READ = 200
_GRANT_ACTIONS = ("authz.staff_granted", "authz.superuser_granted")
_NAMED_GRANT_ACTIONS = {
    "authz.group_membership_changed": "groups",
    "authz.user_permissions_changed": "permissions",
}
PASSWORD_SET_ACTIONS = ("auth.password_changed", "auth.password_reset_completed")
EVENT_COLUMNS = (
    "id",
    "timestamp",
    "action",
    "outcome",
    "actor_id",
    "actor_username",
    "subject_id",
    "subject_username",
    "target_type",
    "target_repr",
    "client_ip",
    "request_id",
)


def _grant(row: dict) -> dict:
    return {
        "at": row["timestamp"],
        "by_id": row["actor_id"],
        "by": row["actor_username"],
        "event_id": row["id"],
        "request_id": row["request_id"],
    }


def user_privilege_grants(*, user) -> dict:
    """When and by whom each privilege ``user`` holds now was granted, read from the audit trail.

    For the staff and superuser flags, each group and each direct permission the user holds,
    the newest event that granted it (``authz.staff_granted``, ``authz.superuser_granted``,
    ``authz.group_membership_changed`` / ``authz.user_permissions_changed`` naming it under
    ``added``), or ``None`` when the trail has none among the user's newest
    ``PRIVILEGE_EVENTS_READ`` privilege events: the page then says "not recorded", never a guess
    (a grant made before auditing existed, or written straight to the database, has no event).
    Two queries for the held groups and permissions and one for the events, whose
    ``(subject_id, timestamp)`` and ``(action, timestamp)`` indexes serve it on any table size.
    """
    from audit.models import AuditEvent

    groups = sorted(user.groups.values_list("name", flat=True))
    permissions = sorted(
        f"{app}.{codename}"
        for app, codename in user.user_permissions.values_list("content_type__app_label", "codename")
    )
    rows = (
        AuditEvent.objects.filter(
            subject_id=str(user.pk), action__in=[*_GRANT_ACTIONS, *_NAMED_GRANT_ACTIONS]
        )
        .order_by("-timestamp")
        .values("id", "timestamp", "action", "actor_id", "actor_username", "request_id", "context")[
            :PRIVILEGE_EVENTS_READ
        ]
    )
    flags: dict[str, dict] = {}
    named: dict[str, dict[str, dict]] = {"groups": {}, "permissions": {}}
    for row in rows:
        if row["action"] in _GRANT_ACTIONS:
            flags.setdefault(row["action"], _grant(row))
            continue
        added = (row["context"] or {}).get("added") or []
        for name in added if isinstance(added, list) else []:
            named[_NAMED_GRANT_ACTIONS[row["action"]]].setdefault(str(name), _grant(row))
    return {
        "staff": flags.get("authz.staff_granted") if user.is_staff else None,
        "superuser": flags.get("authz.superuser_granted") if user.is_superuser else None,
        "groups": [{"name": name, "grant": named["groups"].get(name)} for name in groups],
        "permissions": [{"name": name, "grant": named["permissions"].get(name)} for name in permissions],
    }


def user_password_changed(*, user) -> dict | None:
    """The newest successful password change or reset of ``user`` in the audit trail, or ``None``.

    A password set by an administrator through the console's password form is recorded as
    ``admin.changed`` of the user object (``audit/admin_log.py``), which is not read here; the
    account's first password is its sign-up or creation.
    """
    from audit.models import AuditEvent

    row = (
        AuditEvent.objects.filter(subject_id=str(user.pk), action__in=PASSWORD_SET_ACTIONS, outcome="success")
        .order_by("-timestamp")
        .values("id", "timestamp", "action", "actor_id", "actor_username", "request_id")
        .first()
    )
    return None if row is None else {**_grant(row), "action": row["action"]}


def user_recent_events(*, user, limit: int | None = None) -> dict[str, list[dict]]:
    """The newest events ``user`` did (``as_actor``) and that were done to them by others (``as_subject``).

    Two queries of at most ``limit`` rows (``ACCOUNTS_CONSOLE_USER_EVENTS_SHOWN``), each walking
    one index backwards (``(actor_id, timestamp)``, ``(subject_id, timestamp)``): the cost does
    not grow with the audit table or with the user's history. Events the user did to themselves
    (a login, a password change) are in ``as_actor`` only.
    """
    from audit.models import AuditEvent

    limit = limit or conf.get("ACCOUNTS_CONSOLE_USER_EVENTS_SHOWN")
    identifier = str(user.pk)
    # Ordered by the time alone, the one order the (actor_id|subject_id, timestamp) index gives:
    # with an id tie-breaker PostgreSQL may walk the plain timestamp index backwards instead,
    # filtering every newer event of everyone (a scan of the table for a user quiet since long).
    # Ties (events of one microsecond) are then put in id order here.
    as_actor = AuditEvent.objects.filter(actor_id=identifier).order_by("-timestamp").values(*EVENT_COLUMNS)[:limit]
    as_subject = (
        AuditEvent.objects.filter(subject_id=identifier)
        .exclude(actor_id=identifier)
        .order_by("-timestamp")
        .values(*EVENT_COLUMNS)[:limit]
    )

    def newest_first(rows) -> list[dict]:
        return sorted(rows, key=lambda row: (row["timestamp"], row["id"]), reverse=True)

    return {"as_actor": newest_first(as_actor), "as_subject": newest_first(as_subject)}


def failure_counter_list(*, username: str) -> list[FailureCounter]:
    """Every lockout and throttle counter of one (normalised) username: account-wide and per IP.

    Filtering on every ``kind`` lets the ``(kind, username, address)`` unique index serve the
    read (username alone is not a leading column of any index).
    """
    return list(
        FailureCounter.objects.filter(kind__in=FailureCounter.Kind.values, username=username).order_by(
            "kind", "address"
        )
    )


def backup_code_set(*, user) -> dict | None:
    """The user's backup-code set: when it was made and how many codes are left (``None``: no set)."""
    from accounts.models import BackupCodeDevice

    device = (
        BackupCodeDevice.objects.filter(user=user)
        .annotate(remaining=Count("codes", filter=Q(codes__used_at__isnull=True)))
        .values("created_at", "remaining")
        .first()
    )
    return device


def user_ids_by_username(usernames) -> dict[str, int]:
    """The ids of the accounts with these (normalised) usernames, in one query.

    For pages that name users by username (alerts, lockout counters) and link to each one's
    security page (``admin:accounts_user_security``, argument: the id).
    """
    names = {str(name) for name in usernames if name}
    if not names:
        return {}
    rows = get_user_model()._default_manager.filter(username__in=names).values_list("username", "pk")
    return dict(rows)


def _locked_now(now: datetime.datetime):
    return Exists(
        FailureCounter.objects.filter(
            kind__in=FailureCounter.Kind.values, username=OuterRef("username"), locked_until__gt=now
        )
    )


def _mfa_on():
    return Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True))


def user_list_filter(queryset: QuerySet, *, mfa: str | None = None, locked: str | None = None, now=None) -> QuerySet:
    """The console's user list filters: ``mfa`` ``on`` / ``off`` / ``staff_off`` (staff without
    MFA), ``locked`` ``yes`` / ``no`` (a lockout or throttle counter locked now)."""
    if mfa == "on":
        queryset = queryset.filter(_mfa_on())
    elif mfa == "off":
        queryset = queryset.filter(~_mfa_on())
    elif mfa == "staff_off":
        queryset = queryset.filter(~_mfa_on(), is_staff=True)
    if locked in ("yes", "no"):
        condition = _locked_now(now or timezone.now())
        queryset = queryset.filter(condition if locked == "yes" else ~condition)
    return queryset


def user_security_summaries(*, user_ids, now=None) -> dict[int, dict]:
    """Per user id: MFA on or off, locked now or not, the IP of the session seen last. One query.

    For the console's user list (one page of users at a time).
    """
    ids = list(user_ids)
    if not ids:
        return {}
    newest_ip = (
        TrackedSession.objects.filter(user=OuterRef("pk"), ip_address__isnull=False)
        .order_by("-last_seen_at", "-pk")
        .values("ip_address")
    )
    rows = (
        get_user_model()
        ._default_manager.filter(pk__in=ids)
        .annotate(mfa_on=_mfa_on(), locked=_locked_now(now or timezone.now()), last_ip=Subquery(newest_ip[:1]))
        .values("pk", "mfa_on", "locked", "last_ip")
    )
    return {row.pop("pk"): row for row in rows}
