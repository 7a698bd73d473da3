"""The audit explorer: the event list rebuilt for investigation, read-only and fast with millions of rows.

What an investigator gets (docs/audit.md, "The explorer"):

* filters on time (from–to in UTC, or the last hour, 24 hours or 7 days), actor and subject (id,
  or the start of the username), action (one, or a whole area such as ``auth.*``), outcome,
  client IP (an address or a CIDR range), request id and API key, shown as a form and as
  removable chips, kept across pages (``audit/explorer.py`` parses them; a bad value is named in
  a message and nothing is listed);
* from every row and every event's page, "everything this request caused / this actor did /
  was done to this subject / came from this IP", and a link to the user's security page;
* export of the filtered set as CSV or JSON Lines, streamed (``audit/exports.py``), for those
  holding ``audit.export_auditevent`` only; anyone else gets 403, recorded as
  ``authz.permission_denied`` by the console's 403 handler;
* reading is recorded: ``audit.searched`` once per filter set per session per interval,
  ``audit.exported`` for every export.

What keeps it fast at 1,000,000 events (measured by bench/audit_bench.py):

* every filter maps onto an indexed column (the table in ``audit/explorer.py``), and the list is
  always newest first (no sorting by other columns, which would sort the whole table);
* no ``COUNT(*)`` over the table: ``show_full_result_count = False`` and a paginator that counts
  at most ``AUDIT_ADMIN_COUNT_LIMIT`` matching rows (``SELECT COUNT(*) FROM (... LIMIT n)``);
* no facet counts, no list-filter choices read from the table, no date hierarchy (its
  ``SELECT DISTINCT`` is what the time range replaces);
* search is exact or prefix on indexed columns only: an IP address, a request id, or the start
  of a (normalised) username — never ``icontains`` over the table.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from audit import conf
from audit.explorer import (
    FILTER_PARAMETERS,
    LABELS,
    PRESETS,
    SEARCH_PARAMETER,
    explorer_search_record,
    filters_from_query,
)
from audit.exports import FORMATS, events_export_begin, export_stream
from audit.models import AuditEvent
from core.admin import ReadOnlyAdminMixin
from core.context import REQUEST_ID_PATTERN

EXPORT_PERMISSION = "audit.export_auditevent"
# The per-user security page (the accounts app's): reversed by name, as audit may not import accounts.
USER_SECURITY_URL_NAME = "admin:accounts_user_security"
# Longer values are cut in the list (the full value is the cell's title), so that it fits 1366 px.
SHOWN_REQUEST_ID_LENGTH = 10
SHOWN_TARGET_LENGTH = 28
SHOWN_USERNAME_LENGTH = 18
SHOWN_ADDRESS_LENGTH = 20


def _shortened(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


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


class ExplorerChangeList(ChangeList):
    """Django's change list with the explorer's filters instead of its query-string lookups."""

    def get_filters_params(self, params=None):
        # Django would turn every other query parameter into a lookup; the explorer's form owns them.
        return {}

    def get_ordering(self, request, queryset):
        # Always newest first: the indexes (x, timestamp) serve it; sorting by another column would not.
        return ["-timestamp", "-id"]

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        return filters_from_query(request.GET).apply(queryset)


def user_security_url(user_id: str) -> str | None:
    """The user's security page, when the accounts app provides it and the id is a user's."""
    if not user_id or not user_id.isdigit():
        return None
    try:
        return reverse(USER_SECURITY_URL_NAME, args=[int(user_id)])
    except NoReverseMatch:
        return None


def utc_seconds(value: datetime.datetime | None) -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("when", "action", "outcome", "actor", "subject", "target", "address", "request")
    list_display_links = ("when",)
    list_filter = ()
    sortable_by = ()
    search_fields = ("request_id",)  # the form's search box; get_search_results decides what is searched
    search_help_text = "An exact IP address or request id, or the beginning of a username."
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    list_per_page = 100
    ordering = ("-timestamp", "-id")
    actions = None
    fieldsets = (
        (None, {"fields": ("position", "when", "action", "outcome")}),
        ("Who", {"fields": ("actor_id", "actor_username", "actor_is_staff", "subject_id", "subject_username",
                            "subject_is_staff", "api_key_id", "user_pages")}),
        ("What", {"fields": ("target_type", "target_id", "target_repr", "context_display")}),
        ("Where from", {"fields": ("request_id", "client_ip", "user_agent")}),
        ("Investigate", {"fields": ("related_links",)}),
        ("Chain", {"classes": ("collapse",), "fields": (
            "uuid", "content_mac", "content_key_id", "previous_hash", "hash", "chain_key_id",
        )}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [
            *(field.name for field in AuditEvent._meta.fields),
            "position", "when", "context_display", "related_links", "user_pages",
        ]

    def get_changelist(self, request, **kwargs):
        return ExplorerChangeList

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

    # --- the list ----------------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        filters = filters_from_query(request.GET)
        extra = {**(extra_context or {}), "explorer": self._explorer_context(request, filters)}
        response = super().changelist_view(request, extra_context=extra)
        if not isinstance(response, TemplateResponse) or "cl" not in (response.context_data or {}):
            return response
        if not filters.valid:
            response.status_code = 400
            return response
        changelist = response.context_data["cl"]
        explorer_search_record(
            actor=request.user,
            session=request.session,
            filters=filters,
            results=changelist.result_count,
            capped=changelist.paginator.capped,
        )
        return response

    def _explorer_context(self, request, filters) -> dict:
        query = request.GET.copy()
        query.pop("p", None)

        def without(*names: str) -> str:
            remaining = query.copy()
            for name in names:
                remaining.pop(name, None)
            return remaining.urlencode()

        chips = [
            {"label": LABELS[name], "value": filters.raw[name] if name != "last" else PRESETS[filters.raw[name]][0],
             "remove": without(name)}
            for name in FILTER_PARAMETERS
            if name in filters.raw and filters.valid
        ]
        if filters.search and filters.valid:
            chips.append({"label": LABELS[SEARCH_PARAMETER], "value": filters.search, "remove": without("q")})
        base = without("last", "since", "until")
        presets = [
            {
                "label": label,
                "query": f"{base}&last={key}" if base else f"last={key}",
                "active": filters.raw.get("last") == key,
            }
            for key, (label, _) in PRESETS.items()
        ]
        can_export = filters.valid and request.user.has_perm(EXPORT_PERMISSION)
        exports = []
        if can_export:
            exports = [
                {"label": label, "url": f"{reverse('admin:audit_auditevent_export', args=[name])}?{query.urlencode()}"}
                for name, label in (("csv", "Export CSV"), ("jsonl", "Export JSON lines"))
            ]
        return {
            "form": filters.form,
            "search": filters.search,
            "errors": filters.errors,
            "chips": chips,
            "presets": presets,
            "exports": exports,
            "now": utc_seconds(timezone.now()),
        }

    @admin.display(description="time (UTC)")
    def when(self, event: AuditEvent) -> str:
        return utc_seconds(event.timestamp)

    @admin.display(description="actor")
    def actor(self, event: AuditEvent) -> str:
        return self._person(event.actor_id, event.actor_username, "actor_id", "did")

    @admin.display(description="subject")
    def subject(self, event: AuditEvent) -> str:
        return self._person(event.subject_id, event.subject_username, "subject_id", "had done to them")

    def _person(self, user_id: str, username: str, parameter: str, verb: str) -> str:
        name = username or (f"#{user_id}" if user_id else "")
        if not name:
            return ""
        if not user_id:
            return name
        changelist = reverse("admin:audit_auditevent_changelist")
        link = format_html(
            '<a href="{}?{}" title="everything {} {}">{}</a>',
            changelist, urlencode({parameter: user_id}), name, verb, _shortened(name, SHOWN_USERNAME_LENGTH),
        )
        page = user_security_url(user_id)
        if page:
            link = format_html(
                '{} <a class="audit-user-page" href="{}" title="security page of {}" aria-label="security page of {}">'
                "page</a>",
                link, page, name, name,
            )
        return link

    @admin.display(description="target")
    def target(self, event: AuditEvent) -> str:
        if not event.target_type:
            return ""
        text = f"{event.target_type}:{event.target_id} {event.target_repr}".strip()
        if len(text) <= SHOWN_TARGET_LENGTH:
            return text
        return format_html('<span title="{}">{}</span>', text, _shortened(text, SHOWN_TARGET_LENGTH))

    @admin.display(description="client IP")
    def address(self, event: AuditEvent) -> str:
        if not event.client_ip:
            return ""
        return format_html(
            '<a href="{}?{}" title="everything from {}">{}</a>',
            reverse("admin:audit_auditevent_changelist"), urlencode({"client_ip": event.client_ip}),
            event.client_ip, _shortened(event.client_ip, SHOWN_ADDRESS_LENGTH),
        )

    @admin.display(description="request")
    def request(self, event: AuditEvent) -> str:
        if not event.request_id:
            return ""
        return format_html(
            '<a href="{}?{}" title="everything request {} caused">{}</a>',
            reverse("admin:audit_auditevent_changelist"), urlencode({"request_id": event.request_id}),
            event.request_id, _shortened(event.request_id, SHOWN_REQUEST_ID_LENGTH),
        )

    # --- one event ---------------------------------------------------------------------------

    @admin.display(description="sequence")
    def position(self, event: AuditEvent) -> str:
        return str(event.sequence) if event.sequence is not None else f"unsealed ({event.id})"

    @admin.display(description="context")
    def context_display(self, event: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.context, indent=2, sort_keys=True))

    @admin.display(description="security pages")
    def user_pages(self, event: AuditEvent) -> str:
        links = []
        for role, user_id, username in (
            ("actor", event.actor_id, event.actor_username),
            ("subject", event.subject_id, event.subject_username),
        ):
            page = user_security_url(user_id)
            if page:
                links.append((page, f"{role}: {username or '#' + user_id}"))
        return format_html_join(" · ", '<a href="{}">{}</a>', links) or "—"

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

    # --- export ------------------------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "export/<str:format>/",
                self.admin_site.admin_view(self.export_view),
                name="audit_auditevent_export",
            ),
            *super().get_urls(),
        ]

    def export_view(self, request, format: str):
        """Stream the filtered events as CSV or JSON Lines (``audit.export_auditevent`` only)."""
        if not self.has_view_permission(request) or not request.user.has_perm(EXPORT_PERMISSION):
            raise PermissionDenied
        if request.method != "GET":
            return HttpResponseBadRequest("An export is a GET of the explorer's filters.\n", content_type="text/plain")
        if format not in FORMATS:
            return HttpResponseBadRequest("An export is csv or jsonl.\n", content_type="text/plain")
        filters = filters_from_query(request.GET)
        if not filters.valid:
            return HttpResponseBadRequest(
                "Export refused: " + " ".join(filters.errors) + "\n", content_type="text/plain; charset=utf-8"
            )
        queryset, _ = self.get_search_results(request, filters.apply(self.get_queryset(request)), filters.search)
        plan = events_export_begin(actor=request.user, filters=filters, queryset=queryset, format=format)
        response = StreamingHttpResponse(export_stream(plan), content_type=FORMATS[format])
        stamp = timezone.now().astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="audit-events-{stamp}.{format}"'
        response["X-Export-Rows"] = str(plan.rows)
        return response
