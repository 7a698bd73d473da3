"""Detectors over authentication events: brute force, spraying, lockouts, unusual hours, new devices.

Conventions of the accounts app these rely on (``audit/actions.py`` and ``audit.record``):
a failed login names the attempted account in ``subject`` (the normalised username when no
account matched); a successful login names the user in ``subject`` or, failing that, ``actor``;
the client IP and user agent come from the request context.
"""

from __future__ import annotations

import datetime
import hashlib
from collections import defaultdict

from django.db.models import Count, F, Q, Value
from django.db.models.functions import Coalesce, ExtractHour, NullIf

from audit.actions import LOGIN_FAILURE_ACTIONS, Action
from audit.models import AuditEvent
from monitoring import conf
from monitoring.detectors.base import Detector, Finding, WindowCountDetector
from monitoring.models import Severity, SubjectType

LOGIN_SUCCEEDED = Action.LOGIN_SUCCEEDED.value


class BruteForceDetector(WindowCountDetector):
    """Many failed logins (password or MFA) against one account (OWASP ASVS V2.2.1)."""

    name = "brute_force"
    title = "Brute force on one account"
    severity = Severity.HIGH
    actions = LOGIN_FAILURE_ACTIONS
    principals = ("subject_username",)
    threshold_setting = "MONITORING_BRUTE_FORCE_THRESHOLD"
    window_setting = "MONITORING_BRUTE_FORCE_WINDOW_SECONDS"
    summary_template = "{count} failed logins against account {subject} within {window} s (threshold {threshold})"

    def extra_measures(self) -> dict:
        # From how many addresses: one address is a guesser, many a botnet (the alert's sentence says it).
        return {"addresses": Count("client_ip", distinct=True)}


class PasswordSprayingDetector(WindowCountDetector):
    """Failed logins from one IP across many accounts: password spraying or credential stuffing."""

    name = "password_spraying"
    title = "Password spraying / credential stuffing from one IP"
    severity = Severity.HIGH
    actions = LOGIN_FAILURE_ACTIONS
    principals = ("client_ip",)
    distinct = "subject_username"
    threshold_setting = "MONITORING_SPRAYING_ACCOUNT_THRESHOLD"
    window_setting = "MONITORING_SPRAYING_WINDOW_SECONDS"
    summary_template = "failed logins for {count} different accounts from {subject} within {window} s"


class LockoutDetector(WindowCountDetector):
    """Accounts locked by the lockout policy."""

    name = "lockout"
    title = "Account locked out"
    severity = Severity.MEDIUM
    actions = frozenset({Action.ACCOUNT_LOCKED.value})
    principals = ("subject_username",)
    threshold_setting = "MONITORING_LOCKOUT_THRESHOLD"
    window_setting = "MONITORING_LOCKOUT_WINDOW_SECONDS"
    summary_template = "account {subject} locked {count} time(s) within {window} s"


# --- successful logins: who is the user --------------------------------------------------------
def login_user_id(event: AuditEvent) -> str:
    """The id of the user who logged in: the subject, else the actor."""
    return event.subject_id or event.actor_id


def login_username(event: AuditEvent) -> str:
    return event.subject_username or event.actor_username


def logins_of(user_ids) -> Q:
    """Successful logins of these users (subject, or actor when no subject was recorded)."""
    user_ids = list(user_ids)
    return Q(action=LOGIN_SUCCEEDED) & (Q(subject_id__in=user_ids) | (Q(subject_id="") & Q(actor_id__in=user_ids)))


LOGIN_USER = Coalesce(NullIf(F("subject_id"), Value("")), F("actor_id"))


def _window_logins(since: datetime.datetime, until: datetime.datetime) -> list[dict]:
    """Successful logins in the window, oldest first, with their user and hour (one query)."""
    return list(
        AuditEvent.objects.filter(action=LOGIN_SUCCEEDED, timestamp__gte=since, timestamp__lte=until)
        .annotate(login_user=LOGIN_USER, hour=ExtractHour("timestamp"))
        .exclude(login_user="")
        .values(
            "id", "timestamp", "login_user", "hour", "client_ip", "user_agent", "subject_username", "actor_username"
        )
        .order_by("timestamp", "id")
    )


class UnusualHourDetector(Detector):
    """A login at an hour the user has (almost) never logged in at, against their own baseline.

    Baseline: the user's successful logins over ``MONITORING_UNUSUAL_HOUR_BASELINE_DAYS``, as a
    histogram by hour of day (UTC). Silent while the baseline holds fewer than
    ``MONITORING_UNUSUAL_HOUR_MIN_LOGINS`` logins. Unusual when the baseline logins within
    ``MONITORING_UNUSUAL_HOUR_TOLERANCE_HOURS`` of this login's hour are a share below
    ``MONITORING_UNUSUAL_HOUR_MIN_SHARE`` (a share equal to it is usual).
    """

    name = "unusual_login_hour"
    title = "Login at an unusual hour"
    severity = Severity.LOW
    actions = frozenset({LOGIN_SUCCEEDED})

    @staticmethod
    def verdict(histogram: dict[int, int], hour: int) -> dict | None:
        total = sum(histogram.values())
        if total < conf.get("MONITORING_UNUSUAL_HOUR_MIN_LOGINS"):
            return None
        tolerance = conf.get("MONITORING_UNUSUAL_HOUR_TOLERANCE_HOURS")
        near = sum(histogram.get((hour + offset) % 24, 0) for offset in range(-tolerance, tolerance + 1))
        share = near / total
        if share >= conf.get("MONITORING_UNUSUAL_HOUR_MIN_SHARE"):
            return None
        return {"hour_utc": hour, "baseline_logins": total, "logins_near_hour": near, "share": round(share, 4)}

    def _finding(self, *, user_id, username, event_id, timestamp, figures) -> Finding:
        return Finding(
            detector=self.name,
            severity=self.severity,
            subject_type=SubjectType.USER,
            subject=username or user_id,
            summary=(
                f"{username or user_id} logged in at {figures['hour_utc']:02d}:00 UTC; "
                f"{figures['logins_near_hour']} of {figures['baseline_logins']} baseline logins are near that hour"
            ),
            dedupe_key=f"{self.name}:{user_id}",
            counts=figures,
            first_seen=timestamp,
            last_seen=timestamp,
            triggered_at=timestamp,
            event_ids=[event_id],
            last_event_id=event_id,
        )

    def on_event(self, event: AuditEvent) -> list[Finding]:
        user_id = login_user_id(event)
        if event.action != LOGIN_SUCCEEDED or not user_id:
            return []
        since = event.timestamp - datetime.timedelta(days=conf.get("MONITORING_UNUSUAL_HOUR_BASELINE_DAYS"))
        rows = (
            AuditEvent.objects.filter(logins_of([user_id]), timestamp__gte=since, timestamp__lt=event.timestamp)
            .annotate(hour=ExtractHour("timestamp"))
            .values("hour")
            .annotate(logins=Count("id"))
            .order_by()
        )
        figures = self.verdict({row["hour"]: row["logins"] for row in rows}, event.timestamp.hour)
        if figures is None:
            return []
        return [
            self._finding(
                user_id=user_id,
                username=login_username(event),
                event_id=event.pk,
                timestamp=event.timestamp,
                figures=figures,
            )
        ]

    def sweep(self, *, now: datetime.datetime) -> list[Finding]:
        since = now - conf.seconds("MONITORING_SWEEP_LOOKBACK_SECONDS")
        logins = _window_logins(since, now)
        if not logins:
            return []
        users = {login["login_user"] for login in logins}
        baseline_since = since - datetime.timedelta(days=conf.get("MONITORING_UNUSUAL_HOUR_BASELINE_DAYS"))
        histograms: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        rows = (
            AuditEvent.objects.filter(logins_of(users), timestamp__gte=baseline_since, timestamp__lt=since)
            .annotate(login_user=LOGIN_USER, hour=ExtractHour("timestamp"))
            .values("login_user", "hour")
            .annotate(logins=Count("id"))
            .order_by()
        )
        for row in rows:
            histograms[row["login_user"]][row["hour"]] += row["logins"]
        findings = []
        for login in logins:  # the window's logins only; baselines came aggregated
            histogram = histograms[login["login_user"]]
            figures = self.verdict(histogram, login["hour"])
            histogram[login["hour"]] += 1  # later logins of the window see this one in their baseline
            if figures is not None:
                findings.append(
                    self._finding(
                        user_id=login["login_user"],
                        username=login["subject_username"] or login["actor_username"],
                        event_id=login["id"],
                        timestamp=login["timestamp"],
                        figures=figures,
                    )
                )
        return findings


def _device_fingerprint(user_agent: str) -> str:
    return hashlib.sha256(user_agent.encode()).hexdigest()[:12] if user_agent else "-"


class NewDeviceDetector(Detector):
    """A login from an IP address or a device (user agent) the user has not logged in from before.

    Compared with the user's successful logins of the last ``MONITORING_NEW_DEVICE_LOOKBACK_DAYS``;
    silent until the user has ``MONITORING_NEW_DEVICE_MIN_PRIOR_LOGINS`` earlier logins (a first
    login is from a new device by definition). Low severity for a new IP or a new device alone,
    medium for both at once.
    """

    name = "new_device"
    title = "Login from a new device or IP"
    severity = Severity.LOW
    actions = frozenset({LOGIN_SUCCEEDED})

    def _finding(self, *, user_id, username, login, new_ip, new_device, prior) -> Finding:
        kinds = [label for label, is_new in (("IP address", new_ip), ("device", new_device)) if is_new]
        return Finding(
            detector=self.name,
            severity=Severity.MEDIUM if new_ip and new_device else Severity.LOW,
            subject_type=SubjectType.USER,
            subject=username or user_id,
            summary=f"{username or user_id} logged in from a new {' and a new '.join(kinds)}"
            + (f" ({login['client_ip']})" if new_ip and login["client_ip"] else ""),
            dedupe_key=(
                f"{self.name}:{user_id}:{login['client_ip'] or '-'}:{_device_fingerprint(login['user_agent'])}"
            ),
            counts={"new_ip": new_ip, "new_device": new_device, "prior_logins": prior},
            first_seen=login["timestamp"],
            last_seen=login["timestamp"],
            triggered_at=login["timestamp"],
            event_ids=[login["id"]],
            last_event_id=login["id"],
        )

    def on_event(self, event: AuditEvent) -> list[Finding]:
        user_id = login_user_id(event)
        if event.action != LOGIN_SUCCEEDED or not user_id:
            return []
        since = event.timestamp - datetime.timedelta(days=conf.get("MONITORING_NEW_DEVICE_LOOKBACK_DAYS"))
        prior_logins = AuditEvent.objects.filter(
            logins_of([user_id]), timestamp__gte=since, timestamp__lt=event.timestamp
        )
        prior = prior_logins.count()
        if prior < conf.get("MONITORING_NEW_DEVICE_MIN_PRIOR_LOGINS"):
            return []
        new_ip = bool(event.client_ip) and not prior_logins.filter(client_ip=event.client_ip).exists()
        new_device = bool(event.user_agent) and not prior_logins.filter(user_agent=event.user_agent).exists()
        if not (new_ip or new_device):
            return []
        login = {
            "id": event.pk,
            "timestamp": event.timestamp,
            "client_ip": event.client_ip,
            "user_agent": event.user_agent,
        }
        return [
            self._finding(
                user_id=user_id,
                username=login_username(event),
                login=login,
                new_ip=new_ip,
                new_device=new_device,
                prior=prior,
            )
        ]

    def sweep(self, *, now: datetime.datetime) -> list[Finding]:
        since = now - conf.seconds("MONITORING_SWEEP_LOOKBACK_SECONDS")
        logins = _window_logins(since, now)
        if not logins:
            return []
        users = {login["login_user"] for login in logins}
        history = AuditEvent.objects.filter(
            logins_of(users),
            timestamp__gte=since - datetime.timedelta(days=conf.get("MONITORING_NEW_DEVICE_LOOKBACK_DAYS")),
            timestamp__lt=since,
        ).annotate(login_user=LOGIN_USER)
        # One grouped scan gives each user's login count, addresses and devices.
        prior_counts: dict[str, int] = defaultdict(int)
        known_ips: dict[str, set] = defaultdict(set)
        known_devices: dict[str, set] = defaultdict(set)
        for row in history.values("login_user", "client_ip", "user_agent").annotate(logins=Count("id")).order_by():
            prior_counts[row["login_user"]] += row["logins"]
            known_ips[row["login_user"]].add(row["client_ip"])
            known_devices[row["login_user"]].add(row["user_agent"])
        findings = []
        for login in logins:
            user = login["login_user"]
            prior = prior_counts[user]
            new_ip = bool(login["client_ip"]) and login["client_ip"] not in known_ips[user]
            new_device = bool(login["user_agent"]) and login["user_agent"] not in known_devices[user]
            if prior >= conf.get("MONITORING_NEW_DEVICE_MIN_PRIOR_LOGINS") and (new_ip or new_device):
                findings.append(
                    self._finding(
                        user_id=user,
                        username=login["subject_username"] or login["actor_username"],
                        login=login,
                        new_ip=new_ip,
                        new_device=new_device,
                        prior=prior,
                    )
                )
            prior_counts[user] += 1
            known_ips[user].add(login["client_ip"])
            known_devices[user].add(login["user_agent"])
        return findings
