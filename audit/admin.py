"""The audit console: events shown read-only, searchable and fast with millions of rows.

What keeps it fast at 1,000,000 events (measured by bench/audit_bench.py):

* no ``COUNT(*)`` over the table: ``show_full_result_count = False`` and a paginator that counts
  at most ``AUDIT_ADMIN_COUNT_LIMIT`` matching rows (``SELECT COUNT(*) FROM (... LIMIT n)``);
* list filters on ``action`` and ``outcome`` come from the enum (no query for their choices)
  and facet counts are off;
* the date hierarchy offers years, months and days from ``MIN``/``MAX`` of the indexed
  timestamp instead of Django's ``SELECT DISTINCT`` over every matching row;
* search is exact or prefix on indexed columns only: an IP address, a request id, or the start
  of a (normalised) username — never ``icontains`` over the table.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import Q
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from audit import conf
from audit.models import AuditEvent
from core.admin import ReadOnlyAdminMixin
from core.context import REQUEST_ID_PATTERN


class CappedCountPaginator(Paginator):
    """Counts at most ``AUDIT_ADMIN_COUNT_LIMIT`` rows; ``capped`` says when there are more."""

    @cached_property
    def _bounded_count(self) -> int:
        return self.object_list[: conf.get("AUDIT_ADMIN_COUNT_LIMIT") + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self._bounded_count, conf.get("AUDIT_ADMIN_COUNT_LIMIT"))

    @property
    def capped(self) -> bool:
        return self._bounded_count > conf.get("AUDIT_ADMIN_COUNT_LIMIT")


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "position",
        "timestamp",
        "action",
        "outcome",
        "actor_username",
        "subject_username",
        "target",
        "client_ip",
        "request_id",
    )
    list_display_links = ("position", "timestamp")
    list_filter = ("action", "outcome")
    date_hierarchy = "timestamp"
    search_fields = ("request_id",)  # shows the search box; get_search_results decides what is searched
    search_help_text = "An exact IP address or request id, or the beginning of a username."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    list_per_page = 100
    ordering = ("-id",)
    actions = None
    fieldsets = (
        (None, {"fields": ("position", "timestamp", "action", "outcome")}),
        ("Who", {"fields": ("actor_id", "actor_username", "actor_is_staff", "subject_id", "subject_username",
                            "subject_is_staff", "api_key_id")}),
        ("What", {"fields": ("target_type", "target_id", "target_repr", "context_display")}),
        ("Where from", {"fields": ("request_id", "client_ip", "user_agent")}),
        ("Investigate", {"fields": ("related_links",)}),
        ("Chain", {"classes": ("collapse",), "fields": (
            "uuid", "content_mac", "content_key_id", "previous_hash", "hash", "chain_key_id",
        )}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [*(field.name for field in AuditEvent._meta.fields), "position", "context_display", "related_links"]


    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q()
        with contextlib.suppress(ValueError):
            condition |= Q(client_ip=ipaddress.ip_address(term).compressed)
        if REQUEST_ID_PATTERN.fullmatch(term):
            condition |= Q(request_id=term)
        # Usernames are stored normalised (NFKC, case-folded), so a prefix of the folded term
        # uses the username indexes (varchar_pattern_ops on PostgreSQL).
        username = term.casefold()[:150]
        condition |= Q(actor_username__startswith=username) | Q(subject_username__startswith=username)
        return queryset.filter(condition), False

    @admin.display(description="sequence", ordering="id")
    def position(self, event: AuditEvent) -> str:
        return str(event.sequence) if event.sequence is not None else f"unsealed ({event.id})"

    @admin.display(description="target")
    def target(self, event: AuditEvent) -> str:
        if not event.target_type:
            return ""
        return f"{event.target_type}:{event.target_id} {event.target_repr}".strip()

    @admin.display(description="context")
    def context_display(self, event: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.context, indent=2, sort_keys=True))

    @admin.display(description="related events")
    def related_links(self, event: AuditEvent) -> str:
        changelist = reverse("admin:audit_auditevent_changelist")
        links = []
        if event.request_id:
            links.append(("everything this request caused", {"request_id": event.request_id}))
        if event.actor_id:
            links.append((f"everything {event.actor_username or 'this actor'} did", {"actor_id": event.actor_id}))
        if event.subject_id:
            links.append(
                (f"everything done to {event.subject_username or 'this subject'}", {"subject_id": event.subject_id})
            )
        if event.client_ip:
            links.append((f"everything from {event.client_ip}", {"client_ip": event.client_ip}))
        return format_html_join(
            " · ", '<a href="{}?{}">{}</a>', ((changelist, urlencode(query), label) for label, query in links)
        )
