from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class AccountsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self) -> None:
        from accounts import checks, receivers  # noqa: F401  (checks register themselves)

        receivers.connect()


class AccountsAdminConfig(AdminConfig):
    """``django.contrib.admin`` with our site as the default ``admin.site`` (Django's documented override)."""

    default_site = "accounts.admin_site.MfaAdminSite"
