"""The admin app with our MFA-only site as the default ``admin.site`` (Django's documented override)."""

from django.contrib.admin.apps import AdminConfig


class AccountsAdminConfig(AdminConfig):
    default_site = "accounts.admin_site.MfaAdminSite"
