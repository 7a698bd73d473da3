"""Console pages of the accounts app mounted by ``config/urls.py`` behind the admin's MFA check.

``account_unlock_view``: the security dashboard's "Unlock" button. A POST only, after a fresh
re-authentication (OWASP ASVS 4.0.3 V3.7.1), by staff holding the permission that the lockout
counters' own admin action requires; it calls ``account_unlock``, which records
``auth.account_unlocked`` with the acting administrator.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.decorators import step_up_redirect
from accounts.normalisation import normalise_username
from accounts.roles import UNLOCK_PERMISSION
from accounts.selectors import step_up_is_fresh
from accounts.services.lifecycle import account_unlock

MAX_USERNAME_LENGTH = 150


@require_POST
def account_unlock_view(request):
    """Unlock the account named in the form's ``username``, then go back to the dashboard."""
    if not request.user.has_perm(UNLOCK_PERMISSION):
        raise PermissionDenied
    dashboard = reverse("admin:index")
    if not step_up_is_fresh(request):
        # Back to the dashboard as a GET after re-authenticating: the POST is never replayed.
        return step_up_redirect(request, next_url=dashboard)
    username = request.POST.get("username", "")
    if not isinstance(username, str) or not username.strip() or len(username) > MAX_USERNAME_LENGTH:
        messages.error(request, "Name the account to unlock (at most 150 characters).")
        return redirect(dashboard)
    username = normalise_username(username)
    cleared = account_unlock(actor=request.user, username=username)
    messages.success(request, f"Unlocked {username}: {cleared} active lock(s) cleared.")
    return redirect(dashboard)
