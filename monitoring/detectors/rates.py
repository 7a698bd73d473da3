"""Volume detectors measured against the principal's own baseline (API key rate, bulk memory reads).

The current volume in the window must reach a floor *and* ``factor`` times the principal's mean
volume per window over the baseline days (the baseline excludes the current window). The floor
keeps quiet principals with tiny baselines from alerting on a handful of events. Both limits
are inclusive: a volume equal to them fires.

The real-time path counts the current window first (cheap, indexed) and reads the baseline only
when the floor is reached; the baseline mean is cached per principal for the hour, since a mean
over days barely moves within one.
"""

from __future__ import annotations

import datetime

from django.core.cache import cache
from django.db.models import Case, Count, IntegerField, Max, Min, Sum, Value, When

from audit.actions import Action
from audit.models import AuditEvent
from monitoring import conf
from monitoring.detectors.base import PRINCIPAL_SUBJECT_TYPES, Detector, Finding
from monitoring.models import Severity

BASELINE_CACHE_SECONDS = 3600


class BaselineRateDetector(Detector):
    principal: str = "actor_id"
    window_setting = ""
    floor_setting = ""
    factor_setting = ""
    baseline_days_setting = ""
    noun = "events"

    @property
    def window(self) -> datetime.timedelta:
        return conf.seconds(self.window_setting)

    @property
    def floor(self) -> int:
        return conf.get(self.floor_setting)

    @property
    def factor(self) -> float:
        return conf.get(self.factor_setting)

    @property
    def baseline_days(self) -> int:
        return conf.get(self.baseline_days_setting)

    def volume(self):
        return Count("id")

    def events(self, since, until, *, until_inclusive=True):
        bound = {"timestamp__lte": until} if until_inclusive else {"timestamp__lt": until}
        return (
            AuditEvent.objects.filter(action__in=self.actions, timestamp__gte=since, **bound)
            .exclude(**{self.principal: ""})
            .exclude(**{f"{self.principal}__isnull": True})
        )

    def windows_in_baseline(self) -> float:
        baseline_seconds = self.baseline_days * 86400 - self.window.total_seconds()
        return max(baseline_seconds / self.window.total_seconds(), 1.0)

    def baseline_range(self, anchor: datetime.datetime) -> tuple[datetime.datetime, datetime.datetime]:
        return anchor - datetime.timedelta(days=self.baseline_days), anchor - self.window

    def limit(self, baseline_mean: float) -> float:
        return max(self.floor, self.factor * baseline_mean)

    def _finding(self, *, value, username, current, baseline_mean, figures, queryset, triggered_at) -> Finding:
        subject = username if self.principal == "actor_id" and username else value
        return Finding(
            detector=self.name,
            severity=self.severity,
            subject_type=PRINCIPAL_SUBJECT_TYPES[self.principal],
            subject=subject,
            summary=(
                f"{current} {self.noun} by {subject} within {int(self.window.total_seconds())} s; "
                f"baseline mean {baseline_mean:.1f} per window over {self.baseline_days} days"
            ),
            dedupe_key=f"{self.name}:{value}",
            counts={
                "volume": current,
                "baseline_mean_per_window": round(baseline_mean, 3),
                "floor": self.floor,
                "factor": self.factor,
                "window_seconds": int(self.window.total_seconds()),
            },
            first_seen=figures["first"],
            last_seen=figures["last"],
            triggered_at=triggered_at,
            evidence_queryset=queryset,
            last_event_id=figures["last_id"],
        )

    def _baseline_mean(self, value: str, anchor: datetime.datetime) -> float:
        key = f"monitoring:{self.name}:baseline:{value}:{anchor:%Y%m%d%H}"
        cached = cache.get(key)
        if cached is not None:
            return cached
        since, until = self.baseline_range(anchor)
        total = (
            self.events(since, until, until_inclusive=False)
            .filter(**{self.principal: value})
            .aggregate(volume=self.volume())["volume"]
            or 0
        )
        mean = total / self.windows_in_baseline()
        cache.set(key, mean, BASELINE_CACHE_SECONDS)
        return mean

    def on_event(self, event: AuditEvent) -> list[Finding]:
        value = getattr(event, self.principal)
        if event.action not in self.actions or not value:
            return []
        queryset = self.events(event.timestamp - self.window, event.timestamp).filter(**{self.principal: value})
        figures = queryset.aggregate(
            current=self.volume(),
            first=Min("timestamp"),
            last=Max("timestamp"),
            last_id=Max("id"),
            username=Max("actor_username"),
        )
        current = figures["current"] or 0
        if current < self.floor:
            return []
        baseline_mean = self._baseline_mean(str(value), event.timestamp)
        if current < self.limit(baseline_mean):
            return []
        return [
            self._finding(
                value=str(value),
                username=figures["username"],
                current=current,
                baseline_mean=baseline_mean,
                figures=figures,
                queryset=queryset,
                triggered_at=event.timestamp,
            )
        ]

    def sweep(self, *, now: datetime.datetime) -> list[Finding]:
        window_events = self.events(now - self.window, now)
        rows = list(
            window_events.values(self.principal)
            .annotate(
                current=self.volume(),
                first=Min("timestamp"),
                last=Max("timestamp"),
                last_id=Max("id"),
                username=Max("actor_username"),
            )
            .filter(current__gte=self.floor)
            .order_by()
        )
        if not rows:
            return []
        since, until = self.baseline_range(now)
        principals = [row[self.principal] for row in rows]
        baselines = {
            row[self.principal]: row["volume"] or 0
            for row in self.events(since, until, until_inclusive=False)
            .filter(**{f"{self.principal}__in": principals})
            .values(self.principal)
            .annotate(volume=self.volume())
            .order_by()
        }
        findings = []
        for row in rows:
            value = row[self.principal]
            baseline_mean = baselines.get(value, 0) / self.windows_in_baseline()
            if row["current"] >= self.limit(baseline_mean):
                findings.append(
                    self._finding(
                        value=str(value),
                        username=row["username"],
                        current=row["current"],
                        baseline_mean=baseline_mean,
                        figures=row,
                        queryset=window_events.filter(**{self.principal: value}),
                        triggered_at=row["last"],
                    )
                )
        return findings


class ApiKeyRateDetector(BaselineRateDetector):
    """An API key making requests far above its own normal rate (OWASP ASVS V8.1.4)."""

    name = "api_key_rate"
    title = "API key request rate above its baseline"
    severity = Severity.MEDIUM
    actions = frozenset({Action.API_KEY_USED.value})
    principal = "api_key_id"
    window_setting = "MONITORING_API_RATE_WINDOW_SECONDS"
    floor_setting = "MONITORING_API_RATE_MIN_REQUESTS"
    factor_setting = "MONITORING_API_RATE_FACTOR"
    baseline_days_setting = "MONITORING_API_RATE_BASELINE_DAYS"
    noun = "requests"


EXPORT_ACTIONS = (Action.CONTEXT_EXPORTED.value,)


class BulkReadDetector(BaselineRateDetector):
    """A user reading or exporting memories far beyond their normal volume (exfiltration pattern).

    Volume: one per read or list event, ``MONITORING_BULK_READ_EXPORT_WEIGHT`` per export event.
    """

    name = "bulk_read"
    title = "Bulk memory reading or export"
    severity = Severity.HIGH
    actions = frozenset(
        {
            Action.MEMORY_READ.value,
            Action.MEMORY_LIST.value,
            Action.CONTEXT_READ.value,
            Action.CONTEXT_LIST.value,
            Action.CONTEXT_EXPORTED.value,
        }
    )
    principal = "actor_id"
    window_setting = "MONITORING_BULK_READ_WINDOW_SECONDS"
    floor_setting = "MONITORING_BULK_READ_MIN_EVENTS"
    factor_setting = "MONITORING_BULK_READ_FACTOR"
    baseline_days_setting = "MONITORING_BULK_READ_BASELINE_DAYS"
    noun = "memory reads (exports weighted)"

    def volume(self):
        return Sum(
            Case(
                When(action__in=EXPORT_ACTIONS, then=Value(conf.get("MONITORING_BULK_READ_EXPORT_WEIGHT"))),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
