"""The URL map: the security console, the API, documentation and health probes."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from accounts import admin_views as accounts_admin_views
from accounts.decorators import step_up_required_to_change
from accounts.models import User
from accounts.views.account import home_view
from api import views as api_views
from config import dashboard as dashboard_sections
from config import user_security
from encryption import admin_views as encryption_admin_views
from monitoring import dashboard
from monitoring import views as health_views

urlpatterns = [
    # "/": staff to the console, everyone else to their account page (a visitor signs in first).
    path("", home_view, name="home"),
    # A console page of the encryption app (key usage, rotation), behind the admin's MFA check;
    # starting a rotation needs a fresh sign-in like the console's other security operations
    # (encryption may not import accounts, so the top floor adds the step-up).
    path(
        "admin/encryption/keys/",
        admin.site.admin_view(step_up_required_to_change(encryption_admin_views.key_ring_view)),
        name="encryption-keys",
    ),
    # The console's home is the security dashboard (monitoring), with the sections of the apps
    # monitoring may not read; reverse("admin:index") is this same /admin/, so every "Home" leads
    # here. Django's list of apps and models moves to /admin/apps/.
    path(
        "admin/",
        admin.site.admin_view(dashboard.dashboard_view),
        {"sections": dashboard_sections.SECTIONS},
        name="security-dashboard",
    ),
    path("admin/apps/", admin.site.admin_view(admin.site.index), name="admin-apps"),
    path(
        "admin/dashboard/unlock/",
        admin.site.admin_view(accounts_admin_views.account_unlock_view),
        name="admin-account-unlock",
    ),
    path("admin/", admin.site.urls),
    # Before the accounts include: the API key page belongs to the api app (same services as the admin).
    path("accounts/api-keys/", include("api.urls_pages", namespace="api-keys")),
    path("accounts/", include("accounts.urls", namespace="accounts")),
    # URL-path versions (docs/API_CHANGES.md): v2 changed the memory resource; v1's memories are deprecated.
    path("api/v1/", include("memories.api.urls", namespace="api-v1")),
    path("api/v2/", include("memories.api.urls_v2", namespace="api-v2")),
    path("api/changes/", api_views.api_changes, name="api-changes"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", api_views.SwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("healthz", health_views.healthz, name="healthz"),
    path("readyz", health_views.readyz, name="readyz"),
    path("metrics", health_views.metrics, name="metrics"),
]

admin.site.site_header = "Ninaivalaigal security console"
admin.site.site_title = "Ninaivalaigal console"
admin.site.index_title = "Security administration"
# A user's security page (/admin/accounts/user/<id>/security/) shows the API keys too: the api
# room is above accounts, so its section is handed down from here (config/user_security.py).
admin.site.get_model_admin(User).security_sections = user_security.SECTIONS

handler400 = "api.views.bad_request"
handler403 = "api.views.permission_denied"
handler404 = "api.views.page_not_found"
handler500 = "api.views.server_error"
