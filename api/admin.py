"""The admin console for API keys and service accounts: the same services as the key page.

Keys are never edited field by field: they are issued, rotated and revoked through
``api.services`` (audited), behind a fresh step-up re-authentication (OWASP ASVS 4.0.3 V3.7.1).
Secrets are shown once, on the page that issued them; the admin never shows the hash or the
signing secret.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from accounts.decorators import step_up_redirect
from accounts.selectors import step_up_is_fresh
from api import services
from api.forms import AdminApiKeyIssueForm, ServiceAccountForm
from api.models import ApiKey, DeprecatedCall, ServiceAccount
from core.admin import NoEditAdminMixin, ReadOnlyAdminMixin

# The security administrator's right to revoke (docs/PERMISSIONS.md); issuing and rotating
# need ``api.add_apikey``, which no security role holds.
REVOKE_PERMISSION = "api.revoke_apikey"


def _step_up_redirect(request):
    """A redirect to re-authenticate when the session's step-up is stale, else ``None``."""
    return None if step_up_is_fresh(request) else step_up_redirect(request)


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("usable", "active"), ("expired", "expired"), ("revoked", "revoked")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "usable":
            return queryset.usable(now=now)
        if self.value() == "expired":
            return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(ApiKey)
class ApiKeyAdmin(NoEditAdminMixin, admin.ModelAdmin):
    """Viewing only: keys change through the actions (services), never a field edit."""

    list_display = (
        "name",
        "display_prefix",
        "user",
        "scope_list",
        "key_status",
        "expires_at",
        "last_used_at",
        "last_used_ip",
    )
    list_filter = (StatusFilter,)
    search_fields = ("=prefix", "name", "user__username")
    list_select_related = ("user", "successor")
    ordering = ("-created_at",)
    actions = ["revoke_selected", "rotate_selected"]
    fields = (
        "name",
        "prefix",
        "user",
        "scopes",
        "allowed_networks",
        "created_by",
        "created_at",
        "expires_at",
        "revoked_at",
        "revoked_by",
        "revocation_reason",
        "rotated_from",
        "last_used_at",
        "last_used_ip",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("signing_secret")

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    @admin.display(description="status")
    def key_status(self, obj: ApiKey) -> str:
        return obj.status()

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        redirect = _step_up_redirect(request)
        if redirect is not None:
            return redirect
        form = AdminApiKeyIssueForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                issued = services.api_key_issue(
                    actor=request.user,
                    owner=form.cleaned_data["owner"],
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=form.expires_at(),
                    allowed_networks=form.cleaned_data["allowed_networks"],
                )
            except ValidationError as error:
                for field, errors in error.message_dict.items():
                    for message in errors:
                        form.add_error(field if field in form.fields else None, message)
            else:
                return render(
                    request,
                    "api/admin/api_key_issued.html",
                    {**self.admin_site.each_context(request), "issued": issued, "opts": self.model._meta},
                )
        return render(
            request,
            "api/admin/api_key_form.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "opts": self.model._meta,
                "title": "Issue an API key",
            },
        )

    @admin.action(description="Revoke the selected keys", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        redirect = _step_up_redirect(request)
        if redirect is not None:
            return redirect
        count = 0
        for key in queryset:
            if key.revoked_at is None:
                services.api_key_revoke(actor=request.user, api_key=key, reason="revoked in the admin console")
                count += 1
        self.message_user(request, f"{count} key(s) revoked.", messages.SUCCESS)
        return None

    @admin.action(description="Rotate the selected key (one)", permissions=["rotate"])
    def rotate_selected(self, request, queryset):
        redirect = _step_up_redirect(request)
        if redirect is not None:
            return redirect
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one key to rotate.", messages.ERROR)
            return None
        key = queryset.get()
        try:
            issued = services.api_key_rotate(actor=request.user, api_key=key)
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return None
        return render(
            request,
            "api/admin/api_key_issued.html",
            {**self.admin_site.each_context(request), "issued": issued, "old_key": key, "opts": self.model._meta},
        )

    def has_revoke_permission(self, request) -> bool:
        # api.change_apikey manages anyone's keys (api_key_can_manage), revoking included.
        return request.user.has_perm(REVOKE_PERMISSION) or request.user.has_perm("api.change_apikey")

    def has_rotate_permission(self, request) -> bool:
        # Rotation issues a new secret, shown to whoever rotates: that is issuing a key.
        return request.user.has_perm("api.add_apikey")


@admin.register(ServiceAccount)
class ServiceAccountAdmin(NoEditAdminMixin, admin.ModelAdmin):
    list_display = ("name", "user", "created_by", "created_at")
    search_fields = ("name", "user__username")
    list_select_related = ("user", "created_by")
    fields = ("name", "description", "user", "created_by", "created_at")
    readonly_fields = fields

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        redirect = _step_up_redirect(request)
        if redirect is not None:
            return redirect
        form = ServiceAccountForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                account = services.service_account_create(
                    actor=request.user, name=form.cleaned_data["name"], description=form.cleaned_data["description"]
                )
            except ValidationError as error:
                for field, errors in error.message_dict.items():
                    for message in errors:
                        form.add_error(field if field in form.fields else None, message)
            else:
                self.message_user(
                    request,
                    f"Service account {account.name} created (user {account.user.username}). "
                    "Give it roles, then issue it a key.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:api_serviceaccount_changelist"))
        return render(
            request,
            "api/admin/api_key_form.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "opts": self.model._meta,
                "title": "Create a service account",
            },
        )


@admin.register(DeprecatedCall)
class DeprecatedCallAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("day", "endpoint", "caller", "api_key", "user", "count", "last_at")
    list_filter = ("endpoint",)
    date_hierarchy = "day"
    search_fields = ("caller", "api_key__prefix", "user__username")
    list_select_related = ("api_key", "user")
