"""The security console's admin site: MFA required, login through /accounts/login/."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.admin import AdminSite
from django.http import HttpResponseRedirect
from django.urls import reverse


class MfaAdminSite(AdminSite):
    """Refuses every session that has not passed MFA (django-otp's ``is_verified``).

    The admin's own login form (one step, no code) is never served: ``/admin/login/`` redirects
    to the two-step login at ``/accounts/login/``, which comes back to ``next``.
    """

    def has_permission(self, request):
        user = request.user
        return super().has_permission(request) and callable(getattr(user, "is_verified", None)) and user.is_verified()

    def login(self, request, extra_context=None):
        next_url = request.GET.get("next") or reverse("admin:index", current_app=self.name)
        return HttpResponseRedirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")
