"""The memories app in the security console.

The console manages *structure and access*: organizations, teams, memberships, contexts and
shares are editable here (the break-glass path, e.g. when every owner of an organization has
left), with the database constraints checked by the forms. Memories themselves are view-only
and their content and metadata are never shown: what people wrote is the protected resource, not
something the console reads or edits. Searches and filters use indexed, unencrypted columns only
(never content or metadata, which are encrypted at rest).
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count

from core.admin import ReadOnlyAdminMixin
from memories.models import (
    Context,
    ContextShare,
    ContextTransferOffer,
    Membership,
    Memory,
    MemoryTag,
    Organization,
    Team,
)


class OrganizationMembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "organization"
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)
    raw_id_fields = ("user",)
    extra = 0
    verbose_name = "organization member"


class TeamMembershipInline(admin.TabularInline):
    model = Membership
    fk_name = "team"
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)
    raw_id_fields = ("user",)
    extra = 0
    verbose_name = "team member"


class TeamInline(admin.TabularInline):
    model = Team
    fields = ("name", "slug", "created_at")
    readonly_fields = ("created_at",)
    show_change_link = True
    extra = 0


class ContextShareInline(admin.TabularInline):
    model = ContextShare
    fk_name = "context"
    fields = ("user", "team", "permission", "granted_by", "created_at")
    readonly_fields = ("created_at",)
    raw_id_fields = ("user", "granted_by")
    autocomplete_fields = ("team",)
    extra = 0


class ContextTransferOfferInline(admin.TabularInline):
    """The context's transfer offers, newest first: decided by the recipient, never in the console."""

    model = ContextTransferOffer
    fk_name = "context"
    fields = ("recipient", "sender", "status", "created_at", "expires_at", "decided_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name = "transfer offer"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class MemoryTagInline(admin.TabularInline):
    model = MemoryTag
    fields = ("name",)
    readonly_fields = ("name",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "team_count", "member_count", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at",)
    date_hierarchy = "created_at"
    inlines = [TeamInline, OrganizationMembershipInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(team_total=Count("teams", distinct=True), member_total=Count("memberships", distinct=True))
        )

    @admin.display(description="teams", ordering="team_total")
    def team_count(self, organization: Organization) -> int:
        return organization.team_total

    @admin.display(description="members", ordering="member_total")
    def member_count(self, organization: Organization) -> int:
        return organization.member_total


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "organization", "created_at")
    list_filter = ("organization",)
    list_select_related = ("organization",)
    search_fields = ("name", "slug", "organization__name", "organization__slug")
    autocomplete_fields = ("organization",)
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at",)
    inlines = [TeamMembershipInline]

    def get_queryset(self, request):
        # A team's name includes its organization's slug (autocomplete, change page, lists).
        return super().get_queryset(request).select_related("organization")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "role", "team", "organization", "created_at", "updated_at")
    list_filter = ("role", "organization", "team__organization")
    list_select_related = ("user", "team__organization", "organization")
    search_fields = ("user__username", "team__name", "team__slug", "organization__name", "organization__slug")
    raw_id_fields = ("user",)
    autocomplete_fields = ("team", "organization")
    readonly_fields = ("created_at", "updated_at")


@admin.register(Context)
class ContextAdmin(admin.ModelAdmin):
    list_display = ("name", "scope", "owner_display", "memory_count", "created_by", "created_at")
    list_filter = ("scope", "owner_organization", "created_at")
    list_select_related = ("owner_user", "owner_team__organization", "owner_organization", "created_by")
    search_fields = ("name", "owner_user__username", "owner_team__name", "owner_organization__name")
    raw_id_fields = ("owner_user", "created_by")
    autocomplete_fields = ("owner_team", "owner_organization")
    readonly_fields = ("created_at", "updated_at")
    date_hierarchy = "created_at"
    inlines = [ContextShareInline, ContextTransferOfferInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(memory_total=Count("memories"))

    @admin.display(description="owner")
    def owner_display(self, context: Context) -> str:
        return f"{context.get_scope_display()}: {context.owner}"

    @admin.display(description="memories", ordering="memory_total")
    def memory_count(self, context: Context) -> int:
        return context.memory_total


@admin.register(Memory)
class MemoryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # content and metadata are deliberately absent: never displayed, searched or filtered.
    fields = ("context", "author", "kind", "source", "created_at", "updated_at")
    readonly_fields = fields
    list_display = ("id", "context", "kind", "source", "author", "tag_list", "created_at", "updated_at")
    list_filter = ("kind", "context__scope", "created_at")
    list_select_related = ("context", "author")
    search_fields = ("source", "context__name", "author__username", "=tags__name")
    date_hierarchy = "created_at"
    inlines = [MemoryTagInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tags")

    @admin.display(description="tags")
    def tag_list(self, memory: Memory) -> str:
        return ", ".join(tag.name for tag in memory.tags.all())


@admin.register(MemoryTag)
class MemoryTagAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("name", "memory")
    # Exact match, so the search uses the index on name.
    search_fields = ("=name",)
    raw_id_fields = ("memory",)


@admin.register(ContextShare)
class ContextShareAdmin(admin.ModelAdmin):
    list_display = ("context", "user", "team", "permission", "granted_by", "created_at")
    list_filter = ("permission", "created_at")
    list_select_related = ("context", "user", "team__organization", "granted_by")
    search_fields = ("context__name", "user__username", "team__name")
    raw_id_fields = ("user", "granted_by")
    autocomplete_fields = ("context", "team")
    readonly_fields = ("created_at",)


@admin.register(ContextTransferOffer)
class ContextTransferOfferAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Transfer offers, view-only: only the recipient accepts or declines, only the sender withdraws.

    An administrator who must move a context without the recipient's consent edits the context's
    owner (the break-glass path above), which the audit trail records as a console change.
    """

    list_display = ("context", "sender", "recipient", "status", "created_at", "expires_at", "decided_at")
    list_filter = ("status", "created_at")
    list_select_related = ("context", "sender", "recipient")
    search_fields = ("context__name", "sender__username", "recipient__username")
    fields = list_display
    readonly_fields = fields
    date_hierarchy = "created_at"
