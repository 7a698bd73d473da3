"""The security console's admin site: MFA required, login and logout through /accounts/."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.admin import AdminSite
from django.http import HttpResponseRedirect
from django.urls import reverse, reverse_lazy

from accounts.views.auth import logout_view


class MfaAdminSite(AdminSite):
    """Refuses every session that has not passed MFA (django-otp's ``is_verified``).

    The admin's own login form (one step, no code) is never served: ``/admin/login/`` redirects
    to the two-step login at ``/accounts/login/``, which comes back to ``next``. Its *Log out* is
    the account pages' sign-out, so it ends the tracked session and records ``auth.logout``; its
    *Change password* is the account pages' password change.
    """

    # "View site": the account pages (``/`` would send a staff member straight back here).
    site_url = reverse_lazy("accounts:security")

    def has_permission(self, request):
        user = request.user
        return super().has_permission(request) and callable(getattr(user, "is_verified", None)) and user.is_verified()

    def login(self, request, extra_context=None):
        next_url = request.GET.get("next") or reverse("admin:index", current_app=self.name)
        return HttpResponseRedirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")

    def logout(self, request, extra_context=None):
        """POST: sign out as ``/accounts/logout/`` does (``session_logout``); GET: its sign-out form.

        A GET never logs out (a link or a prefetch must not end a session).
        """
        if request.method != "POST":
            return HttpResponseRedirect(reverse("accounts:logout"))
        return logout_view(request)

    # The CSRF check is logout_view's own (csrf_protect_audited), which records a refusal.
    logout.csrf_exempt = True

    def password_change(self, request, extra_context=None):
        """The account pages' password change: step-up, ``auth.password_changed``, other sessions ended, email.

        Django's admin form would change the password with none of these.
        """
        return HttpResponseRedirect(reverse("accounts:password_change"))
