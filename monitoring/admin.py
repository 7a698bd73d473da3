"""The monitoring console: alert triage (with the severity chart), suppression rules, outbox, job runs, reports.

Alerts change only through the triage services, so every step is audited: the bulk actions of
the list (with an optional note, required for false positives) and, on each alert's own page,
acknowledge / resolve / false positive with a note, assignment to an administrator and a
suppression rule made from the alert. Those page actions are POSTs (CSRF-checked by the admin)
that need ``monitoring.triage_alert`` (a refusal is a 403 the console's handler records as
``authz.permission_denied``) and a fresh step-up re-authentication, as the console's other
security operations do (accounts/admin.py; OWASP ASVS 4.0.3 V3.7.1). Everything else here is
read-only.
"""

from __future__ import annotations

import datetime
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, IntegerField, Value, When
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from accounts.selectors import step_up_is_fresh
from core.admin import ReadOnlyAdminMixin
from monitoring import conf
from monitoring.charts import severity_chart
from monitoring.models import (
    ACTIVE_STATUSES,
    ALERT_NOTE_MAX_LENGTH,
    Alert,
    AlertStatus,
    JobRun,
    Notification,
    Report,
    SubjectType,
    SuppressionRule,
)
from monitoring.permissions import may_triage
from monitoring.services.alerts import (
    TRANSITIONS,
    TRIAGE_PERMISSION,
    AlertTransitionError,
    alert_acknowledge,
    alert_assign,
    alert_mark_false_positive,
    alert_resolve,
    alerts_transition_many,
    triage_assignee_list,
)
from monitoring.services.suppression import suppression_create, suppression_delete, suppression_end
from monitoring.subjects import describe_subjects, subject_text, user_security_link
from monitoring.summaries import alert_sentence

# Open and acknowledged alerts sort before closed ones.
OPEN_FIRST = Case(
    When(status__in=[status.value for status in ACTIVE_STATUSES], then=Value(0)),
    default=Value(1),
    output_field=IntegerField(),
).asc()

STEP_SERVICES = {
    AlertStatus.ACKNOWLEDGED.value: (alert_acknowledge, "acknowledged"),
    AlertStatus.RESOLVED.value: (alert_resolve, "resolved"),
    AlertStatus.FALSE_POSITIVE.value: (alert_mark_false_positive, "marked as a false positive"),
}


def step_up_redirect(request, *, next_url: str | None = None) -> HttpResponseRedirect:
    """To the re-authentication page, then back to ``next_url`` as a GET (a POST is never replayed).

    The same detour as ``accounts.decorators.step_up_redirect``, which monitoring may not import
    (docs/architecture.md: it reads ``accounts.selectors`` only); the page is reversed by name.
    """
    query = urlencode({"next": next_url or request.get_full_path()})
    return HttpResponseRedirect(f"{reverse('accounts:reauthenticate')}?{query}")


def _audit_event_link(event_id: int) -> str:
    try:
        url = reverse("admin:audit_auditevent_change", args=[event_id])
    except NoReverseMatch:
        return format_html("{}", event_id)
    return format_html('<a href="{}">{}</a>', url, event_id)


def _describe(alerts) -> None:
    """Attach each alert's subject description and its user's security page (two queries for a page)."""
    alerts = list(alerts)
    described = describe_subjects((alert.subject_type, alert.subject) for alert in alerts)
    usernames = {alert.subject for alert in alerts if alert.subject_type == SubjectType.USER and alert.subject}
    user_ids = (
        dict(get_user_model().objects.filter(username__in=usernames).values_list("username", "pk")) if usernames else {}
    )
    for alert in alerts:
        alert.subject_description = described.get((alert.subject_type, alert.subject))
        alert.subject_link = ""
        if alert.subject_type == SubjectType.USER:
            alert.subject_link = user_security_link(user_ids.get(alert.subject))
        elif alert.subject_description:
            alert.subject_link = alert.subject_description.get("link", "")


def _subject_html(alert: Alert):
    if not hasattr(alert, "subject_description"):
        _describe([alert])
    text = subject_text(alert.subject_type, alert.subject, alert.subject_description)
    if alert.subject_link:
        return format_html('<a href="{}">{}</a>', alert.subject_link, text)
    return text


def _sentence(alert: Alert) -> str:
    if not hasattr(alert, "subject_description"):
        _describe([alert])
    subject = subject_text(alert.subject_type, alert.subject, alert.subject_description)
    counts = alert.evidence.get("counts") if isinstance(alert.evidence, dict) else None
    return alert_sentence(detector=alert.detector, subject=subject, counts=counts, summary=alert.summary)


class TriageActionForm(ActionForm):
    """The list's action bar, with the note a bulk step writes (required to mark false positives)."""

    note = forms.CharField(
        required=False,
        max_length=ALERT_NOTE_MAX_LENGTH,
        label="Note",
        widget=forms.TextInput(attrs={"placeholder": "note (required for false positives)", "size": 40}),
    )


class AssignedFilter(admin.SimpleListFilter):
    title = "assigned to"
    parameter_name = "assigned"

    def lookups(self, request, model_admin):
        return (("me", "Assigned to me"), ("nobody", "Unassigned"))

    def queryset(self, request, queryset):
        if self.value() == "me":
            return queryset.filter(assigned_to=request.user)
        if self.value() == "nobody":
            return queryset.filter(assigned_to__isnull=True)
        return queryset


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    change_list_template = "monitoring/admin/alert_change_list.html"
    change_form_template = "monitoring/admin/alert_change_form.html"
    action_form = TriageActionForm
    list_display = (
        "severity_label",
        "in_words",
        "subject_shown",
        "status",
        "assigned_to",
        "count",
        "created_at",
        "detection",
        "last_seen",
    )
    list_display_links = ("in_words",)
    list_filter = ("status", AssignedFilter, "severity", "detector", "subject_type")
    list_select_related = ("assigned_to",)
    search_fields = ("subject", "summary", "dedupe_key")
    date_hierarchy = "created_at"
    # Open and acknowledged alerts first (OPEN_FIRST, added by get_ordering: the admin's checks
    # accept field names only here), then by severity and time.
    ordering = ("-severity", "-created_at", "-id")
    list_per_page = 50
    actions = ("acknowledge_selected", "resolve_selected", "mark_false_positive_selected")
    fields = (
        "severity",
        "detector",
        "status",
        "in_words",
        "subject_shown",
        "assigned_to",
        "assigned_at",
        "summary",
        "subject_type",
        "subject",
        "count",
        "first_seen",
        "last_seen",
        "triggered_at",
        "created_at",
        "detection_seconds",
        "evidence_events",
        "evidence_counts",
        "acknowledged_by",
        "acknowledged_at",
        "closed_by",
        "closed_at",
        "dedupe_key",
        "uuid",
    )
    readonly_fields = fields

    def get_ordering(self, request):
        # An expression rather than an annotation: Django also orders the alert choices of other
        # admins' forms (a notification's alert) by this, on a query set without annotations.
        return (OPEN_FIRST, *self.ordering)

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        _describe(changelist.result_list)  # evaluates the page once; the rows keep what is attached
        return changelist

    @admin.display(description="severity", ordering="severity")
    def severity_label(self, alert: Alert) -> str:
        return alert.get_severity_display().upper()

    @admin.display(description="alert")
    def in_words(self, alert: Alert) -> str:
        return _sentence(alert)

    @admin.display(description="subject", ordering="subject")
    def subject_shown(self, alert: Alert):
        return _subject_html(alert)

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

    # -- bulk triage through the services --------------------------------------------------------
    def has_triage_permission(self, request) -> bool:
        return request.user.has_perm(TRIAGE_PERMISSION)

    def changelist_view(self, request, extra_context=None):
        self.refuse_unpermitted_action(request)
        if request.method == "POST" and "action" in request.POST and not step_up_is_fresh(request):
            messages.warning(request, "Confirm your identity first, then repeat the triage step.")
            return step_up_redirect(request)
        chart = severity_chart(days=conf.get("MONITORING_CHART_DAYS"))
        extra_context = {**(extra_context or {}), "severity_chart": chart}
        return super().changelist_view(request, extra_context=extra_context)

    def _triage(self, request, queryset, to: AlertStatus, verb: str) -> None:
        note = request.POST.get("note", "")
        try:
            changed, skipped = alerts_transition_many(
                actor=request.user, alert_ids=list(queryset.values_list("pk", flat=True)), to=to, note=note
            )
        except (AlertTransitionError, ValidationError) as error:
            self.message_user(request, _error_text(error), messages.ERROR)
            return
        if changed:
            self.message_user(request, f"{changed} alert(s) {verb}.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"{skipped} alert(s) left as they were: their status does not allow this step.",
                messages.WARNING,
            )

    @admin.action(description="Acknowledge selected alerts", permissions=["triage"])
    def acknowledge_selected(self, request, queryset):
        self._triage(request, queryset, AlertStatus.ACKNOWLEDGED, "acknowledged")

    @admin.action(description="Resolve selected alerts", permissions=["triage"])
    def resolve_selected(self, request, queryset):
        self._triage(request, queryset, AlertStatus.RESOLVED, "resolved")

    @admin.action(description="Mark selected alerts as false positives (note required)", permissions=["triage"])
    def mark_false_positive_selected(self, request, queryset):
        self._triage(request, queryset, AlertStatus.FALSE_POSITIVE, "marked as false positives")

    # -- the alert's own page --------------------------------------------------------------------
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:alert_id>/triage/", view(self.triage_view), name="monitoring_alert_triage"),
            path("<int:alert_id>/assign/", view(self.assign_view), name="monitoring_alert_assign"),
            path("<int:alert_id>/suppress/", view(self.suppress_view), name="monitoring_alert_suppress"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        alert = self.get_object(request, object_id)
        extra = {}
        if alert is not None:
            _describe([alert])
            today = timezone.now().astimezone(datetime.UTC).date()
            max_days = conf.get("MONITORING_SUPPRESSION_MAX_DAYS")
            extra = {
                "alert_history": alert.notes.all()[:200],
                "may_triage": request.user.has_perm(TRIAGE_PERMISSION),
                "next_steps": [
                    (status.value, status.label)
                    for status in (AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE)
                    if status in TRANSITIONS[AlertStatus(alert.status)]
                ],
                "assignees": triage_assignee_list() if request.user.has_perm(TRIAGE_PERMISSION) else [],
                "alert_object": alert,
                "note_max_length": ALERT_NOTE_MAX_LENGTH,
                "suppress_min": (today + datetime.timedelta(days=1)).isoformat(),
                "suppress_max": (today + datetime.timedelta(days=max_days - 1)).isoformat(),
                "suppress_default": (today + datetime.timedelta(days=min(7, max_days - 1))).isoformat(),
                "suppress_max_days": max_days,
                "suppression_rules": alert.suppression_rules.all()[:20],
            }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def _guard(self, request, alert_id: int):
        """The checks every page action makes: permission (403, recorded), then a fresh step-up."""
        if not request.user.has_perm(TRIAGE_PERMISSION):
            raise PermissionDenied
        get_object_or_404(Alert, pk=alert_id)
        page = reverse("admin:monitoring_alert_change", args=[alert_id])
        if not step_up_is_fresh(request):
            messages.warning(request, "Confirm your identity first, then repeat the triage step.")
            return page, step_up_redirect(request, next_url=page)
        return page, None

    def triage_view(self, request, alert_id: int):
        return require_POST(self._triage_step)(request, alert_id)

    def _triage_step(self, request, alert_id: int):
        page, detour = self._guard(request, alert_id)
        if detour:
            return detour
        step = STEP_SERVICES.get(request.POST.get("to", ""))
        if step is None:
            messages.error(request, "Choose a triage step: acknowledge, resolve or false positive.")
            return HttpResponseRedirect(page)
        service, verb = step
        try:
            service(actor=request.user, alert_id=alert_id, note=request.POST.get("note", ""))
        except (AlertTransitionError, ValidationError) as error:
            messages.error(request, _error_text(error))
        else:
            messages.success(request, f"Alert {verb}.")
        return HttpResponseRedirect(page)

    def assign_view(self, request, alert_id: int):
        return require_POST(self._assign)(request, alert_id)

    def _assign(self, request, alert_id: int):
        page, detour = self._guard(request, alert_id)
        if detour:
            return detour
        raw = request.POST.get("assignee", "")
        if raw == "":
            assignee_id = None
        else:
            try:
                assignee_id = int(raw)
            except ValueError:
                messages.error(request, "Choose an administrator from the list.")
                return HttpResponseRedirect(page)
        try:
            alert = alert_assign(
                actor=request.user, alert_id=alert_id, assignee_id=assignee_id, note=request.POST.get("note", "")
            )
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            who = alert.assigned_to.get_username() if alert.assigned_to else "nobody"
            messages.success(request, f"Alert assigned to {who}.")
        return HttpResponseRedirect(page)

    def suppress_view(self, request, alert_id: int):
        return require_POST(self._suppress)(request, alert_id)

    def _suppress(self, request, alert_id: int):
        page, detour = self._guard(request, alert_id)
        if detour:
            return detour
        alert = Alert.objects.get(pk=alert_id)
        try:
            until = datetime.date.fromisoformat(request.POST.get("until", ""))
        except ValueError:
            messages.error(request, "Give the last day of the rule as a date (YYYY-MM-DD).")
            return HttpResponseRedirect(page)
        # "Until the 20th" includes the 20th: the rule ends at the end of that day (UTC).
        expires_at = datetime.datetime.combine(until + datetime.timedelta(days=1), datetime.time.min, datetime.UTC)
        try:
            rule = suppression_create(
                actor=request.user,
                detector=alert.detector,
                subject_type=alert.subject_type,
                subject=alert.subject,
                reason=request.POST.get("reason", ""),
                expires_at=expires_at,
                source_alert_id=alert.pk,
            )
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            messages.success(
                request, f"No more {rule.detector} alerts for {rule.subject} until {until:%Y-%m-%d} (UTC)."
            )
        return HttpResponseRedirect(page)


def _error_text(error) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return str(error)


@admin.register(SuppressionRule)
class SuppressionRuleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The rules, in force or not, with what they kept from alerting; end or delete through the services."""

    list_display = (
        "detector",
        "subject",
        "subject_type",
        "state",
        "expires_at",
        "suppressed_count",
        "last_suppressed_at",
        "created_by",
        "created_at",
        "alert_link",
    )
    list_filter = ("detector", "subject_type")
    search_fields = ("subject", "detector")
    list_select_related = ("created_by", "source_alert")
    date_hierarchy = "created_at"
    actions = ("end_selected", "delete_rules_selected")
    fields = (
        "detector",
        "subject_type",
        "subject",
        "reason",
        "state",
        "expires_at",
        "ended_at",
        "ended_by",
        "suppressed_count",
        "last_suppressed_at",
        "created_by",
        "created_at",
        "alert_link",
    )
    readonly_fields = fields

    @admin.display(description="state")
    def state(self, rule: SuppressionRule) -> str:
        now = timezone.now()
        if rule.ended_at is not None:
            return "ended"
        return "in force" if rule.expires_at > now else "expired"

    @admin.display(description="from alert")
    def alert_link(self, rule: SuppressionRule):
        if rule.source_alert_id is None:
            return "-"
        return format_html(
            '<a href="{}">#{}</a>',
            reverse("admin:monitoring_alert_change", args=[rule.source_alert_id]),
            rule.source_alert_id,
        )

    # Rules are part of the alerts: whoever may view alerts (both security roles) sees them, with
    # no permission of their own to hand out (accounts/roles.py stays as it is). The roles reach
    # the list from the alert pages; the app list shows it to holders of its own view permission.
    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("monitoring.view_alert") or super().has_view_permission(request, obj)

    def get_model_perms(self, request) -> dict[str, bool]:
        # What the app list goes by: the model's own view permission (superusers), not the alerts'.
        return {**super().get_model_perms(request), "view": super().has_view_permission(request)}

    def has_triage_permission(self, request) -> bool:
        return may_triage(request.user)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def changelist_view(self, request, extra_context=None):
        self.refuse_unpermitted_action(request)
        if request.method == "POST" and "action" in request.POST and not step_up_is_fresh(request):
            messages.warning(request, "Confirm your identity first, then repeat the change.")
            return step_up_redirect(request)
        return super().changelist_view(request, extra_context)

    @admin.action(description="End the selected rules now", permissions=["triage"])
    def end_selected(self, request, queryset):
        ended = 0
        for rule_id in queryset.values_list("pk", flat=True):
            try:
                suppression_end(actor=request.user, rule_id=rule_id)
            except ValidationError:
                continue
            ended += 1
        self.message_user(request, f"{ended} rule(s) ended; rules no longer in force were left as they were.")

    @admin.action(description="Delete the selected rules", permissions=["triage"])
    def delete_rules_selected(self, request, queryset):
        rule_ids = list(queryset.values_list("pk", flat=True))
        for rule_id in rule_ids:
            suppression_delete(actor=request.user, rule_id=rule_id)
        self.message_user(request, f"{len(rule_ids)} rule(s) deleted.")


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "channel",
        "event_type",
        "destination",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "last_error",
    )
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
