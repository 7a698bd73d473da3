"""The monitoring console: alert triage (with the severity chart), outbox, job runs, reports.

Alerts change only through the triage services (bulk actions below), so every step is audited;
everything else here is read-only.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html, format_html_join

from core.admin import ReadOnlyAdminMixin
from monitoring import conf
from monitoring.charts import severity_chart
from monitoring.models import Alert, AlertStatus, JobRun, Notification, Report
from monitoring.services.alerts import TRIAGE_PERMISSION, alerts_transition_many


def _audit_event_link(event_id: int) -> str:
    try:
        url = reverse("admin:audit_auditevent_change", args=[event_id])
    except NoReverseMatch:
        return format_html("{}", event_id)
    return format_html('<a href="{}">{}</a>', url, event_id)


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    change_list_template = "monitoring/admin/alert_change_list.html"
    list_display = (
        "severity_label", "detector", "subject", "status", "count", "created_at", "detection", "last_seen",
    )
    list_display_links = ("detector",)
    list_filter = ("status", "severity", "detector", "subject_type")
    search_fields = ("subject", "summary", "dedupe_key")
    date_hierarchy = "created_at"
    ordering = ("-severity", "-created_at", "-id")
    list_per_page = 50
    actions = ("acknowledge_selected", "resolve_selected", "mark_false_positive_selected")
    fields = (
        "severity", "detector", "status", "summary", "subject_type", "subject", "count",
        "first_seen", "last_seen", "triggered_at", "created_at", "detection_seconds",
        "evidence_events", "evidence_counts", "acknowledged_by", "acknowledged_at", "closed_by", "closed_at",
        "note", "dedupe_key", "uuid",
    )
    readonly_fields = fields

    @admin.display(description="severity", ordering="severity")
    def severity_label(self, alert: Alert) -> str:
        return alert.get_severity_display().upper()

    @admin.display(description="detection (s)", ordering="detection_seconds")
    def detection(self, alert: Alert) -> str:
        return f"{alert.detection_seconds:.2f}"

    @admin.display(description="evidence: audit events")
    def evidence_events(self, alert: Alert) -> str:
        ids = alert.evidence.get("event_ids", []) if isinstance(alert.evidence, dict) else []
        if not ids:
            return "-"
        return format_html_join(", ", "{}", ((_audit_event_link(event_id),) for event_id in ids))

    @admin.display(description="evidence: counts")
    def evidence_counts(self, alert: Alert) -> str:
        counts = alert.evidence.get("counts", {}) if isinstance(alert.evidence, dict) else {}
        if not counts:
            return "-"
        return format_html_join("", "<div>{}: {}</div>", sorted(counts.items()))

    # -- triage through the services ------------------------------------------------------------
    def has_triage_permission(self, request) -> bool:
        return request.user.has_perm(TRIAGE_PERMISSION)

    def _triage(self, request, queryset, to: AlertStatus, verb: str) -> None:
        changed, skipped = alerts_transition_many(
            actor=request.user, alert_ids=list(queryset.values_list("pk", flat=True)), to=to
        )
        if changed:
            self.message_user(request, f"{changed} alert(s) {verb}.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} alert(s) left as they were: their status does not allow this step.",
                messages.WARNING,
            )

    @admin.action(description="Acknowledge selected alerts", permissions=["triage"])
    def acknowledge_selected(self, request, queryset):
        self._triage(request, queryset, AlertStatus.ACKNOWLEDGED, "acknowledged")

    @admin.action(description="Resolve selected alerts", permissions=["triage"])
    def resolve_selected(self, request, queryset):
        self._triage(request, queryset, AlertStatus.RESOLVED, "resolved")

    @admin.action(description="Mark selected alerts as false positives", permissions=["triage"])
    def mark_false_positive_selected(self, request, queryset):
        self._triage(request, queryset, AlertStatus.FALSE_POSITIVE, "marked as false positives")

    def changelist_view(self, request, extra_context=None):
        chart = severity_chart(days=conf.get("MONITORING_CHART_DAYS"))
        extra_context = {**(extra_context or {}), "severity_chart": chart}
        return super().changelist_view(request, extra_context=extra_context)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "channel", "event_type", "destination", "status", "attempts", "next_attempt_at",
                    "sent_at", "last_error")
    list_filter = ("status", "channel", "event_type")
    search_fields = ("destination",)
    date_hierarchy = "created_at"
    list_select_related = ("alert",)


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("task_name", "started_at", "finished_at", "duration", "outcome", "error", "counts")
    list_filter = ("outcome", "task_name")
    date_hierarchy = "started_at"

    @admin.display(description="duration (s)")
    def duration(self, run: JobRun) -> str:
        seconds = run.duration_seconds
        return "-" if seconds is None else f"{seconds:.2f}"


@admin.register(Report)
class ReportAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "period", "period_start", "period_end", "generated_at", "downloads")
    list_filter = ("period",)
    date_hierarchy = "period_start"
    fields = ("period", "period_start", "period_end", "generated_at", "downloads", "text_version")
    readonly_fields = fields

    @admin.display(description="open")
    def downloads(self, report: Report) -> str:
        links = [
            (reverse(f"admin:monitoring_report_{kind}", args=[report.pk]), label)
            for kind, label in (("html", "HTML"), ("text", "text"), ("csv", "CSV"))
        ]
        return format_html_join(" · ", '<a href="{}">{}</a>', links)

    @admin.display(description="report")
    def text_version(self, report: Report) -> str:
        return format_html("<pre>{}</pre>", report.text)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:report_id>/html/", view(self.report_html), name="monitoring_report_html"),
            path("<int:report_id>/text/", view(self.report_text), name="monitoring_report_text"),
            path("<int:report_id>/csv/", view(self.report_csv), name="monitoring_report_csv"),
            *super().get_urls(),
        ]

    def _report(self, request, report_id: int) -> Report:
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        return get_object_or_404(Report, pk=report_id)

    def report_html(self, request, report_id: int):
        report = self._report(request, report_id)
        response = HttpResponse(report.html, content_type="text/html; charset=utf-8")
        # Our own markup with escaped values, shown sandboxed: no script, no outside resource.
        response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
        return response

    def report_text(self, request, report_id: int):
        report = self._report(request, report_id)
        return HttpResponse(report.text, content_type="text/plain; charset=utf-8")

    def report_csv(self, request, report_id: int):
        report = self._report(request, report_id)
        response = HttpResponse(report.csv, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="security-report-{report.period}-{report.period_start:%Y-%m-%d}.csv"'
        )
        return response
