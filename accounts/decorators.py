"""View decorators: step-up re-authentication and audited CSRF protection."""

from __future__ import annotations

import functools
from urllib.parse import urlencode

from django.http import HttpResponseRedirect
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

import audit
from accounts.selectors import step_up_is_fresh


def step_up_redirect(request, *, next_url: str | None = None) -> HttpResponseRedirect:
    """Send the user to re-authenticate, then back to ``next_url`` (default: this page, as a GET).

    Coming back with a GET means a POST is never replayed after the detour.
    """
    query = urlencode({"next": next_url or request.get_full_path()})
    return HttpResponseRedirect(f"{reverse('accounts:reauthenticate')}?{query}")


def step_up_required(view):
    """Require a re-authentication within ``ACCOUNTS_STEP_UP_MAX_AGE`` (OWASP ASVS 4.0.3 V3.7.1).

    A stale session is sent to ``/accounts/reauthenticate/`` and comes back to the same page.
    """

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.user.is_authenticated and not step_up_is_fresh(request):
            return step_up_redirect(request)
        return view(request, *args, **kwargs)

    return wrapped


def step_up_required_to_change(view):
    """Like ``step_up_required``, for the POSTs of a page that anyone with the permission may read.

    Reading stays free; a change (any method but GET and HEAD) on a stale session is sent to
    re-authenticate and comes back to the page as a GET, so the POST is never replayed.
    """

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD") and request.user.is_authenticated and not step_up_is_fresh(request):
            return step_up_redirect(request, next_url=request.path)
        return view(request, *args, **kwargs)

    return wrapped


class _CsrfCheck(CsrfViewMiddleware):
    """Django's CSRF check, returning the reason instead of the failure view."""

    def _reject(self, request, reason):
        return reason

    def _accept(self, request):
        return None


def csrf_protect_audited(view):
    """CSRF protection whose refusals are recorded and explained (a login POST without a token).

    Django's middleware would answer with its generic 403 page and record nothing; here the
    same check runs, and a refusal records ``LOGIN_FAILED`` (login pages) or ``PERMISSION_DENIED``
    and shows a page that says what to do.
    """

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
            reason = _CsrfCheck(lambda r: None).process_view(request, view, args, kwargs)
            if reason is not None:
                login_page = request.resolver_match is not None and request.resolver_match.url_name in {
                    "login",
                    "login_verify",
                }
                audit.record(
                    action=audit.Action.LOGIN_FAILED if login_page else audit.Action.PERMISSION_DENIED,
                    outcome=audit.Outcome.DENIED,
                    actor=request.user if request.user.is_authenticated else None,
                    context={"reason": "csrf_failed", "detail": str(reason), "path": request.path},
                )
                return render(request, "accounts/csrf_failure.html", status=403)
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapped)
