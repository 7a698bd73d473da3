"""The accounts part of the security console: users, sessions, lockout counters, MFA devices.

Every change goes through a service (and so is audited); the user admin requires a fresh
step-up re-authentication before any change (staff/superuser flags, groups, permissions,
passwords), and its bulk actions call services too. Each action needs its own permission
(accounts/roles.py, docs/PERMISSIONS.md): a forged POST of an action the user may not run is
refused with 403 before the step-up check.

Each user has one security page in the console (``accounts.admin_views``; URL name
``admin:accounts_user_security``, argument: the user's id), linked from the user list, the user's
change page, the tracked sessions and the lockout counters.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import OuterRef, Subquery
from django.urls import path
from django.utils.html import format_html

from accounts import admin_views
from accounts.decorators import step_up_redirect
from accounts.models import FailureCounter, SecurityEmail, TOTPDevice, TrackedSession, User
from accounts.roles import REMOVE_AUTHENTICATOR_PERMISSION, REVOKE_SESSION_PERMISSION, UNLOCK_PERMISSION
from accounts.selectors import step_up_is_fresh, user_list_filter, user_security_summaries
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


def _security_page_link(user_id, label: str = "security page") -> str:
    """A link to the user's security page (empty when there is no such user)."""
    if user_id is None:
        return "-"
    return format_html('<a href="{}">{}</a>', admin_views.user_security_url(user_id), label)


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


class MfaFilter(admin.SimpleListFilter):
    title = "MFA"
    parameter_name = "mfa"

    def lookups(self, request, model_admin):
        return [("on", "MFA on"), ("off", "MFA off"), ("staff_off", "staff without MFA")]

    def queryset(self, request, queryset):
        return user_list_filter(queryset, mfa=self.value())


class LockedFilter(admin.SimpleListFilter):
    title = "locked"
    parameter_name = "locked"

    def lookups(self, request, model_admin):
        return [("yes", "locked now"), ("no", "not locked")]

    def queryset(self, request, queryset):
        return user_list_filter(queryset, locked=self.value())


@admin.register(User)
class UserAdmin(SecurityActionPermissions, PermittedActionsMixin, DjangoUserAdmin):
    list_display = (
        "username",
        "email",
        "is_active",
        "is_staff",
        "is_superuser",
        "mfa_status",
        "locked_status",
        "email_verified",
        "last_login",
        "last_ip",
        "security_page",
    )
    list_filter = ("is_active", "is_staff", "is_superuser", MfaFilter, LockedFilter, "email_verified", "groups")
    search_fields = ("username", "email", "first_name", "last_name")
    ordering = ("username",)
    inlines = [TrackedSessionInline]
    actions = ["unlock_accounts", "end_all_sessions", "revoke_staff_status"]
    # Sections of the security page from rooms that accounts may not import (the API keys,
    # config/user_security.py), set by the top floor (config/urls.py); name -> UserSecuritySection.
    security_sections: Mapping[str, admin_views.UserSecuritySection] = {}

    def get_urls(self):
        """The user's security page and its actions, before the admin's catch-all ``<path:object_id>/``."""
        view = self.admin_site.admin_view

        def page(function):
            def wrapped(request, *args, **kwargs):
                return function(request, *args, model_admin=self, **kwargs)

            return view(wrapped)

        prefix = "<str:object_id>/security/"
        return [
            path(prefix, page(admin_views.user_security_view), name="accounts_user_security"),
            path(f"{prefix}unlock/", page(admin_views.user_security_unlock_view), name="accounts_user_security_unlock"),
            path(
                f"{prefix}deactivate/",
                page(admin_views.user_security_deactivate_view),
                name="accounts_user_security_deactivate",
            ),
            path(
                f"{prefix}reactivate/",
                page(admin_views.user_security_reactivate_view),
                name="accounts_user_security_reactivate",
            ),
            path(f"{prefix}delete/", page(admin_views.user_security_delete_view), name="accounts_user_security_delete"),
            path(
                f"{prefix}sessions/revoke/",
                page(admin_views.user_security_session_revoke_view),
                name="accounts_user_security_session_revoke",
            ),
            path(
                f"{prefix}sessions/revoke-all/",
                page(admin_views.user_security_sessions_revoke_all_view),
                name="accounts_user_security_sessions_revoke_all",
            ),
            path(
                f"{prefix}<slug:section>/",
                page(admin_views.user_security_section_action_view),
                name="accounts_user_security_section",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="security")
    def security_page(self, obj) -> str:
        return _security_page_link(obj.pk)

    def get_changelist(self, request, **kwargs):
        """The list's MFA, locked and last-IP columns: read for the shown page of users in one query.

        Read after pagination rather than annotated on the query set, so the bulk actions'
        query sets (``QuerySet.update()`` of privileges, audited) stay plain.
        """
        base = super().get_changelist(request, **kwargs)

        class UserChangeList(base):
            def get_results(self, request):
                super().get_results(request)
                summaries = user_security_summaries(user_ids=[user.pk for user in self.result_list])
                for user in self.result_list:
                    user.security_summary = summaries.get(user.pk, {})

        return UserChangeList

    @admin.display(description="MFA")
    def mfa_status(self, obj) -> str:
        return "✔ on" if getattr(obj, "security_summary", {}).get("mfa_on") else "✘ off"

    @admin.display(description="locked")
    def locked_status(self, obj) -> str:
        return "✘ locked" if getattr(obj, "security_summary", {}).get("locked") else "-"

    @admin.display(description="last IP")
    def last_ip(self, obj) -> str:
        return getattr(obj, "security_summary", {}).get("last_ip") or "-"

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
        "user_security_page",
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

    @admin.display(description="user's security page")
    def user_security_page(self, obj) -> str:
        return _security_page_link(obj.user_id)

    @admin.action(description="Revoke the selected sessions", permissions=["revoke_sessions"])
    def revoke_sessions(self, request, queryset):
        ended = sum(session_revoke(actor=request.user, tracked=tracked) for tracked in queryset.select_related("user"))
        self.message_user(request, f"Revoked {ended} session(s).")


@admin.register(FailureCounter)
class FailureCounterAdmin(ReadOnlyStepUpActionsAdmin):
    """Lockout and MFA-throttle counters (read-only; unlock with the action or ``unlock_account``)."""

    list_display = (
        "username",
        "user_security_page",
        "kind",
        "address",
        "failure_count",
        "lock_count",
        "locked_until",
        "last_failure_at",
    )
    list_filter = ("kind", ("locked_until", admin.EmptyFieldListFilter))
    search_fields = ("username",)
    readonly_fields = [field.name for field in FailureCounter._meta.fields]
    actions = ["unlock"]

    def get_queryset(self, request):
        # The account of each counter's (normalised) username, in the same query; counters of
        # names no account has (attempts on unknown usernames) get none.
        accounts = User._default_manager.filter(username=OuterRef("username")).values("pk")[:1]
        return super().get_queryset(request).annotate(account_id=Subquery(accounts))

    @admin.display(description="user's security page")
    def user_security_page(self, obj) -> str:
        if obj.account_id is None:
            return "no such account"
        return _security_page_link(obj.account_id)

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


@admin.register(SecurityEmail)
class SecurityEmailAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The security-email outbox: what waits (and why), what was sent. Rows change only by delivery."""

    list_display = ("kind", "user", "status", "attempts", "last_error", "next_attempt_at", "created_at", "sent_at")
    list_filter = ("status", "kind")
    search_fields = ("user__username", "kind")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    exclude = ("context", "base_url")  # plain facts, but nothing an operator needs to read here
