"""Volume detectors measured against the principal's own baseline (API key rate, bulk memory reads).

The current volume in the window must reach a floor *and* ``factor`` times the principal's mean
volume per window over the baseline days (the baseline excludes the current window). The floor
keeps quiet principals with tiny baselines from alerting on a handful of events. Both limits
are inclusive: a volume equal to them fires.

The real-time path does not re-aggregate the window for every event. The window is the sum of
per-minute **buckets** (the principal's volume, first and last time, newest id in one minute),
each read once from the audit table and kept in the cache once the minute is settled
(``MONITORING_VOLUME_BUCKET_SETTLE_SECONDS`` past its end), plus the rows of the window's
unsettled edges: the part of the first minute inside the window and the recent, unsettled
minutes. A batch of a principal's events (``on_principal``) is judged in one pass: the volume at
the first event, then slid forward event by event (adding those that enter, subtracting those
that leave the window). The buckets are derived from the audit table, so a cache that was
flushed or down costs a re-read, never a wrong count; an event committed after its minute settled
is missed by the buckets and counted by the sweep, which always aggregates the audit table.

The baseline is read only when the floor is reached; its mean is cached per principal for the
hour, since a mean over days barely moves within one.
"""

from __future__ import annotations

import bisect
import datetime
import hashlib
import logging

from django.core.cache import cache
from django.db.models import Case, Count, IntegerField, Max, Min, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Trunc
from django.utils import timezone

from audit.actions import Action
from audit.models import AuditEvent
from monitoring import conf
from monitoring.detectors.base import PRINCIPAL_SUBJECT_TYPES, Detector, Finding
from monitoring.models import Severity

logger = logging.getLogger("monitoring.detection")

BASELINE_CACHE_SECONDS = 3600
MINUTE = datetime.timedelta(minutes=1)
_EMPTY = {"volume": 0, "first": None, "last": None, "last_id": None, "username": None}


def _cached(operation: str, *args, default=None):
    """A cache call that a cache outage turns into ``default``: the cache only spares re-reads here."""
    try:
        return getattr(cache, operation)(*args)
    except Exception:
        logger.warning("monitoring cache %s failed; reading the audit table instead", operation)
        return default


def _floor_minute(moment: datetime.datetime) -> datetime.datetime:
    return moment.replace(second=0, microsecond=0)


def _ceil_minute(moment: datetime.datetime) -> datetime.datetime:
    floor = _floor_minute(moment)
    return floor if floor == moment else floor + MINUTE


def _merge(figures: list[dict]) -> dict:
    """Figures of several disjoint parts of a window, as if aggregated at once."""

    def pick(name, choose):
        values = [part[name] for part in figures if part.get(name) is not None]
        return choose(values) if values else None

    return {
        "current": sum(part.get("volume") or 0 for part in figures),
        "first": pick("first", min),
        "last": pick("last", max),
        "last_id": pick("last_id", max),
        "username": pick("username", max),
    }


def _encode(figures: dict) -> tuple:
    first, last = figures.get("first"), figures.get("last")
    return (
        figures.get("volume") or 0,
        first.timestamp() if first else None,
        last.timestamp() if last else None,
        figures.get("last_id"),
        figures.get("username"),
    )


def _as_time(value: float | None) -> datetime.datetime | None:
    return datetime.datetime.fromtimestamp(value, tz=datetime.UTC) if value is not None else None


def _decode(stored: tuple) -> dict:
    volume, first, last, last_id, username = stored
    return {
        "volume": volume, "first": _as_time(first), "last": _as_time(last), "last_id": last_id, "username": username,
    }


class BaselineRateDetector(Detector):
    principal: str = "actor_id"
    window_setting = ""
    floor_setting = ""
    factor_setting = ""
    baseline_days_setting = ""
    noun = "events"
    #: Judges a principal's events in batches (``on_principal``): its actions may be handed off per principal.
    batchable = True

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

    def weight(self, action: str) -> int:
        """What one event of ``action`` adds to the volume (the same as ``volume()``, in memory)."""
        return 1

    def volume_version(self) -> str:
        """What the volume of a bucket depends on besides the events (part of the bucket's cache key)."""
        return ""

    def events(self, since, until, *, until_inclusive=True):
        bound = {"timestamp__lte": until} if until_inclusive else {"timestamp__lt": until}
        return AuditEvent.objects.filter(action__in=self.actions, timestamp__gte=since, **bound).exclude(
            **{self.principal: ""}
        ).exclude(**{f"{self.principal}__isnull": True})

    def principal_events(self, value: str) -> QuerySet:
        return AuditEvent.objects.filter(action__in=self.actions, **{self.principal: value})

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
        cached = _cached("get", key)
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
        _cached("set", key, mean, BASELINE_CACHE_SECONDS)
        return mean

    # -- the window as minute buckets ------------------------------------------------------
    def _figures(self, queryset) -> dict:
        return queryset.aggregate(
            volume=self.volume(), first=Min("timestamp"), last=Max("timestamp"), last_id=Max("id"),
            username=Max("actor_username"),
        )

    def _bucket_key(self, value: str, minute: datetime.datetime) -> str:
        digest = hashlib.sha256(f"{self.principal}:{value}".encode()).hexdigest()[:24]
        return f"monitoring:{self.name}:bucket:{self.volume_version()}:{digest}:{int(minute.timestamp())}"

    def _buckets(self, value: str, start: datetime.datetime, end: datetime.datetime) -> list[dict]:
        """The settled minutes ``[start, end)`` of ``value``: from the cache, the missing ones read in one query."""
        minutes = []
        minute = start
        while minute < end:
            minutes.append(minute)
            minute += MINUTE
        keys = {minute: self._bucket_key(value, minute) for minute in minutes}
        stored = _cached("get_many", list(keys.values()), default={})
        buckets = {minute: _decode(stored[key]) for minute, key in keys.items() if key in stored}
        missing = [minute for minute in minutes if minute not in buckets]
        if missing:
            rows = (
                self.principal_events(value)
                .filter(timestamp__gte=missing[0], timestamp__lt=missing[-1] + MINUTE)
                .annotate(minute=Trunc("timestamp", "minute", tzinfo=datetime.UTC))
                .values("minute")
                .annotate(
                    volume=self.volume(), first=Min("timestamp"), last=Max("timestamp"), last_id=Max("id"),
                    username=Max("actor_username"),
                )
                .order_by()
            )
            found = {row["minute"]: row for row in rows}
            fresh = {}
            for minute in missing:
                buckets[minute] = found.get(minute, _EMPTY)
                fresh[keys[minute]] = _encode(buckets[minute])
            timeout = int(self.window.total_seconds()) + 600
            _cached("set_many", fresh, timeout)
        return [buckets[minute] for minute in minutes]

    def window_figures(self, value: str, until: datetime.datetime, *, buckets: bool = True) -> dict:
        """Volume, first and last time, newest id and username of ``value``'s window ending at ``until``.

        With ``buckets``, the settled whole minutes come from their buckets and only the edges are
        read from the audit table; without, the whole window is aggregated (the sweep's way).
        """
        since = until - self.window
        events = self.principal_events(value)
        settled_until = _floor_minute(timezone.now() - conf.seconds("MONITORING_VOLUME_BUCKET_SETTLE_SECONDS"))
        first_whole, last_whole_end = _ceil_minute(since), min(_floor_minute(until), settled_until)
        if not buckets or first_whole >= last_whole_end:
            raw = self._figures(events.filter(timestamp__gte=since, timestamp__lte=until))
            return _merge([raw])
        edges = events.filter(
            Q(timestamp__gte=since, timestamp__lt=first_whole) | Q(timestamp__gte=last_whole_end, timestamp__lte=until)
        )
        return _merge([self._figures(edges), *self._buckets(value, first_whole, last_whole_end)])

    # -- the two paths ---------------------------------------------------------------------
    def on_event(self, event: AuditEvent) -> list[Finding]:
        value = getattr(event, self.principal)
        if event.action not in self.actions or not value:
            return []
        value = str(value)
        figures = self.window_figures(value, event.timestamp, buckets=conf.get("MONITORING_DETECTION_BATCHING"))
        current = figures["current"] or 0
        if current < self.floor:
            return []
        baseline_mean = self._baseline_mean(value, event.timestamp)
        if current < self.limit(baseline_mean):
            return []
        return [self._window_finding(value, figures, baseline_mean, event.timestamp, event.timestamp)]

    def _window_finding(self, value, figures, baseline_mean, until, triggered_at) -> Finding:
        queryset = self.events(until - self.window, until).filter(**{self.principal: value})
        return self._finding(
            value=value, username=figures["username"], current=figures["current"], baseline_mean=baseline_mean,
            figures=figures, queryset=queryset, triggered_at=triggered_at,
        )

    def on_principal(
        self, value: str, *, since: datetime.datetime
    ) -> tuple[list[Finding], int, datetime.datetime | None]:
        """Judge every event of ``value`` from ``since`` on, in one pass.

        Return (findings, events judged, the newest event's time).

        Each event is judged on the window ending at it, as ``on_event`` would; the batch makes at
        most one finding: the newest event at or over the limit, triggered by the first such event
        of the batch (the one that crossed, when the batch holds the crossing).
        """
        batch = list(
            self.principal_events(value).filter(timestamp__gte=since).order_by("timestamp", "id")
            .values_list("timestamp", "action")
        )  # fmt: skip
        if not batch:
            return [], 0, None
        first, newest = batch[0][0], batch[-1][0]
        figures = self.window_figures(value, first)
        volume = figures["current"] or 0
        # Events that leave the window while it slides from ``first`` to ``newest``.
        leaving = []
        if newest > first:
            leaving = list(
                self.principal_events(value)
                .filter(timestamp__gte=first - self.window, timestamp__lt=newest - self.window)
                .order_by("timestamp", "id").values_list("timestamp", "action")
            )  # fmt: skip
        moments = [(first, volume)]  # (time, volume of the window ending then)
        position = bisect.bisect_right([moment for moment, _action in batch], first)  # those at ``first`` are in
        left = 0
        while position < len(batch):
            moment = batch[position][0]
            while position < len(batch) and batch[position][0] == moment:
                volume += self.weight(batch[position][1])
                position += 1
            while left < len(leaving) and leaving[left][0] < moment - self.window:
                volume -= self.weight(leaving[left][1])
                left += 1
            moments.append((moment, volume))
        triggered_at = fired_at = None
        means: dict[str, float] = {}  # the baseline mean is cached per hour: read it once per hour here
        for moment, current in moments:
            if current < self.floor:
                continue
            hour = f"{moment:%Y%m%d%H}"
            if hour not in means:
                means[hour] = self._baseline_mean(value, moment)
            if current < self.limit(means[hour]):
                continue
            triggered_at = triggered_at or moment
            fired_at = moment
        if fired_at is None:
            return [], len(batch), newest
        figures = figures if fired_at == first else self.window_figures(value, fired_at)
        baseline_mean = self._baseline_mean(value, fired_at)
        finding = self._window_finding(value, figures, baseline_mean, fired_at, triggered_at)
        return [finding], len(batch), newest

    def sweep(self, *, now: datetime.datetime) -> list[Finding]:
        window_events = self.events(now - self.window, now)
        rows = list(
            window_events.values(self.principal)
            .annotate(
                current=self.volume(), first=Min("timestamp"), last=Max("timestamp"), last_id=Max("id"),
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
                        value=str(value), username=row["username"], current=row["current"],
                        baseline_mean=baseline_mean, figures=row,
                        queryset=window_events.filter(**{self.principal: value}), triggered_at=row["last"],
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

    def weight(self, action: str) -> int:
        return conf.get("MONITORING_BULK_READ_EXPORT_WEIGHT") if action in EXPORT_ACTIONS else 1

    def volume_version(self) -> str:
        return f"w{conf.get('MONITORING_BULK_READ_EXPORT_WEIGHT')}"

    def volume(self):
        return Sum(
            Case(
                When(action__in=EXPORT_ACTIONS, then=Value(conf.get("MONITORING_BULK_READ_EXPORT_WEIGHT"))),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
