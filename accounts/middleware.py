"""Session security for every request: tracked sessions, timeouts, revocation, key rotation, MFA policy.

Install after ``AuthenticationMiddleware``, ``OTPMiddleware`` and ``MessageMiddleware``. A
session-authenticated request reads its one tracked-session row and is refused if revoked, idle
past ``ACCOUNTS_SESSION_IDLE_TIMEOUT`` or older than ``ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT`` (OWASP
ASVS 4.0.3 V3.3.1/V3.3.2); a privilege change rotates the session key (V3.2.1). Staff, and
everyone past the "MFA for all" grace period, must have passed MFA. Anonymous requests cost
nothing. Why: docs/decisions/tracked-sessions-opaque-ids.md.
"""

from __future__ import annotations

import datetime
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import AnonymousUser
from django.http import HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.utils import timezone

from accounts import conf
from accounts.decorators import step_up_redirect
from accounts.models import TrackedSession
from accounts.services.sessions import PRIVILEGE_VERSION_KEY, TRACKED_SESSION_KEY, session_expire, session_refused
from core import context as request_context

# Paths an unverified staff user may still reach (to enroll, re-authenticate or leave).
MFA_EXEMPT_URL_NAMES = (
    "accounts:mfa_setup",
    "accounts:reauthenticate",
    "accounts:logout",
    "accounts:login",
    "accounts:login_verify",
)


class SessionSecurityMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self._exempt_paths: tuple[str, ...] | None = None

    def __call__(self, request):
        refusal = self._check(request)
        if refusal is not None:
            return refusal
        return self.get_response(request)

    def _check(self, request):
        session = getattr(request, "session", None)
        if session is None or SESSION_KEY not in session:
            return None
        tracked = (
            TrackedSession.objects.filter(pk=session.get(TRACKED_SESSION_KEY))
            .values("pk", "user_id", "created_at", "last_seen_at", "ended_at")
            .first()
            if session.get(TRACKED_SESSION_KEY)
            else None
        )
        now = timezone.now()
        if tracked is None or tracked["ended_at"] is not None or str(tracked["user_id"]) != str(session[SESSION_KEY]):
            session_refused(tracked_id=session.get(TRACKED_SESSION_KEY), user_id=session.get(SESSION_KEY))
            return self._refuse(request, "Your session has ended. Please sign in again.")
        reason = None
        if now - tracked["created_at"] > conf.seconds("ACCOUNTS_SESSION_ABSOLUTE_TIMEOUT"):
            reason = TrackedSession.EndReason.ABSOLUTE_TIMEOUT
        elif now - tracked["last_seen_at"] > conf.seconds("ACCOUNTS_SESSION_IDLE_TIMEOUT"):
            reason = TrackedSession.EndReason.IDLE_TIMEOUT
        if reason is not None:
            session_expire(tracked_id=tracked["pk"], reason=reason)
            return self._refuse(request, "Your session timed out. Please sign in again.")
        if now - tracked["last_seen_at"] >= datetime.timedelta(seconds=conf.get("ACCOUNTS_SESSION_LAST_SEEN_INTERVAL")):
            TrackedSession.objects.filter(pk=tracked["pk"], ended_at__isnull=True).update(last_seen_at=now)
        user = request.user
        if not user.is_authenticated:
            return None
        if session.get(PRIVILEGE_VERSION_KEY) != user.privilege_version:
            session.cycle_key()
            session[PRIVILEGE_VERSION_KEY] = user.privilege_version
        return self._mfa_policy(request, user)

    def _refuse(self, request, message: str):
        request.session.flush()
        request.user = AnonymousUser()
        if not request.path.startswith("/api/"):
            messages.warning(request, message)
        return None  # the view handles an anonymous request as it always does

    def _exempt(self) -> tuple[str, ...]:
        if self._exempt_paths is None:
            self._exempt_paths = tuple(reverse(name) for name in MFA_EXEMPT_URL_NAMES)
        return self._exempt_paths

    def _mfa_policy(self, request, user):
        from accounts.selectors import mfa_enabled, mfa_enforced_now

        if user.is_verified() or not mfa_enforced_now(user):
            return None
        if request.path in self._exempt() or request.path.startswith(_static_prefix()):
            return None
        if request.path.startswith("/api/"):
            current = request_context.current()
            return JsonResponse(
                {
                    "error": {
                        "code": "mfa_required",
                        "message": "Multi-factor authentication is required for this account.",
                        "request_id": current.request_id if current else None,
                    }
                },
                status=403,
            )
        if mfa_enabled(user):
            return step_up_redirect(request)
        return HttpResponseRedirect(f"{reverse('accounts:mfa_setup')}?{urlencode({'next': request.get_full_path()})}")


def _static_prefix() -> str:
    from django.conf import settings

    return "/" + settings.STATIC_URL.lstrip("/")
