"""The shape every detector shares, and the two generic kinds most detectors are.

A detector looks at the audit record two ways and must agree with itself:

* ``on_event(event)`` — real time: the window that *ends at this event* (``timestamp <=
  event.timestamp``), so a worker that processes events late or out of order reaches the same
  verdict as one that kept up, and only the event that crossed the threshold fires.
* ``sweep(now=...)`` — scheduled: the same conditions over the window ending now, as grouped
  aggregate queries (``GROUP BY ... HAVING``) on the indexed columns, never a Python loop over
  events. It catches what a lost real-time hand-off missed; findings it repeats are recognised
  by the alert service (``last_event_id``) and change nothing.

A detector returns ``Finding`` objects; ``monitoring.services.alerts.alert_record_finding``
turns them into alerts. Detectors never write.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable

from django.db.models import Count, Max, Min, Q, QuerySet

from audit.models import AuditEvent
from monitoring import conf
from monitoring.models import Severity, SubjectType

# Which column names a principal, and what kind of subject that makes.
PRINCIPAL_SUBJECT_TYPES = {
    "subject_username": SubjectType.USER,
    "actor_id": SubjectType.USER,
    "api_key_id": SubjectType.API_KEY,
    "client_ip": SubjectType.IP,
}


@dataclasses.dataclass
class Finding:
    """One condition a detector found, ready to become (or update) an alert."""

    detector: str
    severity: int
    subject_type: str
    subject: str
    summary: str
    dedupe_key: str
    counts: dict
    first_seen: datetime.datetime
    last_seen: datetime.datetime
    # The time of the event that made the detector fire (detection time is measured from it).
    triggered_at: datetime.datetime
    event_ids: list[int] = dataclasses.field(default_factory=list)  # newest first
    last_event_id: int | None = None
    # The evidence as a query, read only when an alert is created or updated (a sweep that finds
    # what is already alerted on costs no evidence query).
    evidence_queryset: QuerySet | None = None
    # Triggers this close to the alert's last evidence update it (default MONITORING_ALERT_DEDUPE_WINDOW_SECONDS).
    dedupe_window: datetime.timedelta | None = None

    def resolved_event_ids(self) -> list[int]:
        """The evidence event ids, newest first (read from ``evidence_queryset`` when given)."""
        if not self.event_ids and self.evidence_queryset is not None:
            self.event_ids = evidence_ids(self.evidence_queryset)
        return self.event_ids


class Detector:
    """Base class: a name, a severity, the actions it watches in real time."""

    name: str = ""
    title: str = ""
    severity: int = Severity.MEDIUM
    #: Actions whose events are handed to ``on_event`` in real time (empty: sweep only).
    actions: frozenset[str] = frozenset()

    def on_event(self, event: AuditEvent) -> list[Finding]:
        return []

    def sweep(self, *, now: datetime.datetime) -> list[Finding]:
        return []


def evidence_limit() -> int:
    return conf.get("MONITORING_ALERT_EVIDENCE_LIMIT")


def evidence_ids(queryset: QuerySet) -> list[int]:
    """The newest audit event ids of ``queryset``, as many as an alert keeps.

    Ordered by time (the ``action, timestamp`` index walks backwards from the window's end), not by
    id alone: "newest ids first, LIMIT n" would let PostgreSQL walk the primary key from the end
    of the whole table until n rows match.
    """
    return list(queryset.order_by("-timestamp", "-id").values_list("id", flat=True)[: evidence_limit()])


def blank(field: str) -> Q:
    """Rows where ``field`` holds no value (NULL, or empty text for text columns)."""
    if field == "client_ip":
        return Q(client_ip__isnull=True)
    return Q(**{f"{field}__isnull": True}) | Q(**{field: ""})


def principal_of(event: AuditEvent, fields: Iterable[str]) -> tuple[int, str, str] | None:
    """The first of ``fields`` that has a value on ``event``: (position, field, value)."""
    for position, field in enumerate(fields):
        value = getattr(event, field)
        if value not in (None, ""):
            return position, field, str(value)
    return None


def principal_condition(fields: tuple[str, ...], position: int) -> Q:
    """Rows whose principal is ``fields[position]``: earlier fields blank, this one set."""
    condition = ~blank(fields[position])
    for earlier in fields[:position]:
        condition &= blank(earlier)
    return condition


def subject_label(field: str, value: str, username: str | None) -> str:
    """How the subject is shown: a username for users, else the key id or the IP."""
    if field == "actor_id" and username:
        return username
    return value


class WindowCountDetector(Detector):
    """Fires when one principal has at least ``threshold`` matching events in ``window`` seconds.

    ``principals`` names the columns that identify who, in order of preference (the first that
    is set on an event is its principal). ``distinct`` counts distinct values of a column instead
    of events (password spraying counts accounts, not attempts).
    """

    principals: tuple[str, ...] = ("actor_id",)
    threshold_setting: str = ""
    window_setting: str = ""
    distinct: str | None = None
    summary_template = "{count} events from {subject} in {window} s"

    # -- configuration ---------------------------------------------------------------------
    @property
    def threshold(self) -> int:
        return conf.get(self.threshold_setting)

    @property
    def window(self) -> datetime.timedelta:
        return conf.seconds(self.window_setting)

    def extra_condition(self) -> Q:
        """A further filter on the watched events, as a query condition (sweep and window)."""
        return Q()

    def matches(self, event: AuditEvent) -> bool:
        """The same further filter, judged on one event in memory (the real-time path)."""
        return True

    def base_queryset(self, since: datetime.datetime, until: datetime.datetime) -> QuerySet:
        return AuditEvent.objects.filter(
            self.extra_condition(), action__in=self.actions, timestamp__gte=since, timestamp__lte=until
        )

    def measure(self):
        return Count(self.distinct, distinct=True) if self.distinct else Count("id")

    def severity_for(self, count: int) -> int:
        return self.severity

    def extra_measures(self) -> dict:
        """Further figures of the window (name -> aggregate), stored in the alert's counts."""
        return {}

    # -- the two paths ---------------------------------------------------------------------
    def on_event(self, event: AuditEvent) -> list[Finding]:
        if event.action not in self.actions or not self.matches(event):
            return []
        principal = principal_of(event, self.principals)
        if principal is None:
            return []
        position, field, value = principal
        queryset = self.base_queryset(event.timestamp - self.window, event.timestamp).filter(
            principal_condition(self.principals, position), **{field: value}
        )
        figures = queryset.aggregate(
            count=self.measure(),
            first=Min("timestamp"),
            last=Max("timestamp"),
            last_id=Max("id"),
            username=Max("actor_username"),
            **self.extra_measures(),
        )
        if figures["count"] < self.threshold:
            return []
        return [
            self._finding(
                field=field,
                value=value,
                figures=figures,
                queryset=queryset,
                triggered_at=event.timestamp,
            )
        ]

    def sweep(self, *, now: datetime.datetime) -> list[Finding]:
        findings = []
        for position, field in enumerate(self.principals):
            window_events = self.base_queryset(now - self.window, now).filter(
                principal_condition(self.principals, position)
            )
            rows = (
                window_events.values(field)
                .annotate(
                    count=self.measure(),
                    first=Min("timestamp"),
                    last=Max("timestamp"),
                    last_id=Max("id"),
                    username=Max("actor_username"),
                    **self.extra_measures(),
                )
                .filter(count__gte=self.threshold)
                .order_by()
            )
            for row in rows:
                value = str(row[field])
                findings.append(
                    self._finding(
                        field=field,
                        value=value,
                        figures=row,
                        queryset=window_events.filter(**{field: row[field]}),
                        triggered_at=row["last"],
                    )
                )
        return findings

    def _finding(self, *, field, value, figures, queryset, triggered_at) -> Finding:
        subject = subject_label(field, value, figures.get("username"))
        count = figures["count"]
        counts = {"count": count, "threshold": self.threshold, "window_seconds": int(self.window.total_seconds())}
        if self.distinct:
            counts["events"] = queryset.count()
        for name in self.extra_measures():
            counts[name] = figures.get(name)
        return Finding(
            detector=self.name,
            severity=self.severity_for(count),
            subject_type=PRINCIPAL_SUBJECT_TYPES[field],
            subject=subject,
            summary=self.summary_template.format(
                count=count, subject=subject, window=int(self.window.total_seconds()), threshold=self.threshold
            ),
            dedupe_key=f"{self.name}:{field}:{value}",
            counts=counts,
            first_seen=figures["first"],
            last_seen=figures["last"],
            triggered_at=triggered_at,
            evidence_queryset=queryset,
            last_event_id=figures["last_id"],
            dedupe_window=max(self.window, conf.seconds("MONITORING_ALERT_DEDUPE_WINDOW_SECONDS")),
        )


class EventDetector(Detector):
    """Fires on single events that matter by themselves (a privilege grant, a failed job).

    ``judge(event)`` returns ``(severity, subject_type, subject, summary, dedupe_key)`` or
    ``None``. The sweep re-reads the watched actions of the last ``MONITORING_SWEEP_LOOKBACK_SECONDS``
    (these events are rare) and judges each.
    """

    def judge(self, event: AuditEvent) -> tuple[int, str, str, str, str] | None:
        raise NotImplementedError

    def candidates(self, *, since: datetime.datetime, until: datetime.datetime) -> QuerySet:
        return AuditEvent.objects.filter(action__in=self.actions, timestamp__gte=since, timestamp__lte=until)

    def on_event(self, event: AuditEvent) -> list[Finding]:
        if event.action not in self.actions:
            return []
        verdict = self.judge(event)
        if verdict is None:
            return []
        severity, subject_type, subject, summary, dedupe_key = verdict
        return [
            Finding(
                detector=self.name,
                severity=severity,
                subject_type=subject_type,
                subject=subject,
                summary=summary,
                dedupe_key=dedupe_key,
                counts={"count": 1, "action": event.action, "outcome": event.outcome},
                first_seen=event.timestamp,
                last_seen=event.timestamp,
                triggered_at=event.timestamp,
                event_ids=[event.pk],
                last_event_id=event.pk,
            )
        ]

    def sweep(self, *, now: datetime.datetime) -> list[Finding]:
        since = now - conf.seconds("MONITORING_SWEEP_LOOKBACK_SECONDS")
        findings = []
        for event in self.candidates(since=since, until=now).order_by("id").iterator():
            findings.extend(self.on_event(event))
        return findings
