"""The accounts part of the security console: users, sessions, lockout counters, MFA devices.

Every change goes through a service (and so is audited); the user admin requires a fresh
step-up re-authentication before any change (staff/superuser flags, groups, permissions,
passwords), and its bulk actions call services too. Each action needs its own permission
(accounts/roles.py, docs/PERMISSIONS.md): a forged POST of an action the user may not run is
refused with 403 before the step-up check.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.decorators import step_up_redirect
from accounts.models import FailureCounter, TOTPDevice, TrackedSession, User
from accounts.roles import REMOVE_AUTHENTICATOR_PERMISSION, REVOKE_SESSION_PERMISSION, UNLOCK_PERMISSION
from accounts.selectors import step_up_is_fresh
from accounts.services.lifecycle import account_unlock
from accounts.services.mfa import totp_device_remove
from accounts.services.sessions import session_revoke, session_revoke_all
from core.admin import PermittedActionsMixin, ReadOnlyAdminMixin


def _step_up_redirect(request):
    messages.warning(
        request, "Confirm your identity first, then repeat the change (changes of accounts need a recent sign-in)."
    )
    return step_up_redirect(request)


class SecurityActionPermissions:
    """``has_<name>_permission`` for the ``permissions=[...]`` of the accounts admins' actions."""

    def has_unlock_permission(self, request) -> bool:
        return request.user.has_perm(UNLOCK_PERMISSION)

    def has_revoke_sessions_permission(self, request) -> bool:
        return request.user.has_perm(REVOKE_SESSION_PERMISSION)

    def has_remove_authenticator_permission(self, request) -> bool:
        return request.user.has_perm(REMOVE_AUTHENTICATOR_PERMISSION)


class ReadOnlyStepUpActionsAdmin(SecurityActionPermissions, ReadOnlyAdminMixin, admin.ModelAdmin):
    """A read-only admin whose bulk actions (which call services) need a fresh step-up.

    Rows change only through the actions; no add, change or delete views (OWASP ASVS 4.0.3
    V3.7.1: re-authenticate before sensitive changes).
    """

    def changelist_view(self, request, extra_context=None):
        self.refuse_unpermitted_action(request)
        if request.method == "POST" and "action" in request.POST and not step_up_is_fresh(request):
            return _step_up_redirect(request)
        return super().changelist_view(request, extra_context)


class TrackedSessionInline(admin.TabularInline):
    model = TrackedSession
    fields = (
        "public_id",
        "device_label",
        "ip_address",
        "method",
        "created_at",
        "last_seen_at",
        "ended_at",
        "end_reason",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("-created_at",)
    max_num = 0

    def get_queryset(self, request):
        return super().get_queryset(request).filter(ended_at__isnull=True)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(SecurityActionPermissions, PermittedActionsMixin, DjangoUserAdmin):
    list_display = (
        "username",
        "email",
        "is_active",
        "is_staff",
        "is_superuser",
        "email_verified",
        "last_login",
        "date_joined",
    )
    list_filter = ("is_active", "is_staff", "is_superuser", "email_verified", "groups")
    search_fields = ("username", "email", "first_name", "last_name")
    ordering = ("username",)
    inlines = [TrackedSessionInline]
    actions = ["unlock_accounts", "end_all_sessions", "revoke_staff_status"]

    # Step-up for every change made through this admin (ASVS V3.7.1): the change form (flags,
    # groups, permissions), the add form, the password form, deletion and bulk actions.
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if request.method == "POST" and not step_up_is_fresh(request):
            return _step_up_redirect(request)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def user_change_password(self, request, id, form_url=""):
        if request.method == "POST" and not step_up_is_fresh(request):
            return _step_up_redirect(request)
        return super().user_change_password(request, id, form_url)

    def delete_view(self, request, object_id, extra_context=None):
        if request.method == "POST" and not step_up_is_fresh(request):
            return _step_up_redirect(request)
        return super().delete_view(request, object_id, extra_context)

    def changelist_view(self, request, extra_context=None):
        self.refuse_unpermitted_action(request)
        if request.method == "POST" and "action" in request.POST and not step_up_is_fresh(request):
            return _step_up_redirect(request)
        return super().changelist_view(request, extra_context)

    @admin.action(description="Unlock the selected accounts (clear lockout counters)", permissions=["unlock"])
    def unlock_accounts(self, request, queryset):
        cleared = sum(account_unlock(actor=request.user, username=user.username) for user in queryset)
        self.message_user(request, f"Unlocked {queryset.count()} account(s); {cleared} active lock(s) cleared.")

    @admin.action(description="End every session of the selected users", permissions=["revoke_sessions"])
    def end_all_sessions(self, request, queryset):
        ended = sum(session_revoke_all(actor=request.user, user=user) for user in queryset)
        self.message_user(request, f"Ended {ended} session(s).")

    @admin.action(description="Revoke staff status of the selected users", permissions=["change"])
    def revoke_staff_status(self, request, queryset):
        # QuerySet.update() on the custom User query set records one event per changed user.
        changed = queryset.exclude(pk=request.user.pk).update(is_staff=False)
        self.message_user(request, f"Staff status revoked for {changed} user(s) (your own account is left alone).")


@admin.register(TrackedSession)
class TrackedSessionAdmin(ReadOnlyStepUpActionsAdmin):
    """Every user's sessions; revoke with the action (refused on the session's next request)."""

    list_display = (
        "public_id",
        "user",
        "device_label",
        "ip_address",
        "method",
        "created_at",
        "last_seen_at",
        "ended_at",
        "end_reason",
    )
    list_filter = ("method", "end_reason", ("ended_at", admin.EmptyFieldListFilter))
    search_fields = ("user__username", "public_id")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    readonly_fields = [field.name for field in TrackedSession._meta.fields]
    actions = ["revoke_sessions"]

    @admin.action(description="Revoke the selected sessions", permissions=["revoke_sessions"])
    def revoke_sessions(self, request, queryset):
        ended = sum(session_revoke(actor=request.user, tracked=tracked) for tracked in queryset.select_related("user"))
        self.message_user(request, f"Revoked {ended} session(s).")


@admin.register(FailureCounter)
class FailureCounterAdmin(ReadOnlyStepUpActionsAdmin):
    """Lockout and MFA-throttle counters (read-only; unlock with the action or ``unlock_account``)."""

    list_display = ("username", "kind", "address", "failure_count", "lock_count", "locked_until", "last_failure_at")
    list_filter = ("kind", ("locked_until", admin.EmptyFieldListFilter))
    search_fields = ("username",)
    readonly_fields = [field.name for field in FailureCounter._meta.fields]
    actions = ["unlock"]

    @admin.action(description="Unlock these accounts", permissions=["unlock"])
    def unlock(self, request, queryset):
        usernames = set(queryset.values_list("username", flat=True))
        for username in usernames:
            account_unlock(actor=request.user, username=username)
        self.message_user(request, f"Unlocked {len(usernames)} account(s).")


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(ReadOnlyStepUpActionsAdmin):
    """Authenticators (never their keys). Administrators can remove one (e.g. a lost phone)."""

    list_display = ("name", "user", "confirmed", "created_at", "last_used_at")
    list_filter = ("confirmed",)
    search_fields = ("user__username", "name")
    fields = ("name", "user", "confirmed", "created_at", "last_used_at", "expires_at")
    readonly_fields = fields
    actions = ["remove_devices"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Remove the selected authenticators", permissions=["remove_authenticator"])
    def remove_devices(self, request, queryset):
        removed = 0
        for device in queryset.select_related("user"):
            try:
                totp_device_remove(actor=request.user, device=device, enforce_policy=False)
                removed += 1
            except Exception as error:
                self.message_user(request, f"{device.user}: {error}", level=messages.WARNING)
        self.message_user(request, f"Removed {removed} authenticator(s).")
