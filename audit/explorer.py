"""The audit explorer's filters, and the record of who searched the trail.

Every filter maps onto an indexed column of ``AuditEvent`` (audit/models.py), so the console
stays fast at millions of events (bench/audit_bench.py):

=================  ==============================================  ===============================
parameter          matches                                          index
=================  ==============================================  ===============================
``last``           a preset window ending now: 1h, 24h or 7d        ``timestamp``
``since/until``    a UTC window; ``until`` includes the whole       ``timestamp``
                   second, minute or day it names
``actor_id``       the acting user's id, exactly                    ``actor_id, timestamp``
``actor``          the start of the acting user's username          ``actor_username`` (prefix)
``subject_id``     the subject's id, exactly                        ``subject_id, timestamp``
``subject``        the start of the subject's username              ``subject_username`` (prefix)
``action``         one action, or an area: ``auth.*``               ``action, timestamp``
``outcome``        success, failure, denied or error                (with another filter)
``client_ip``      an address, or a CIDR range such as 10.0.0.0/24  ``client_ip, timestamp``
``request_id``     one request or command run                       ``request_id``
``api_key_id``     the public prefix of an API key                  ``api_key_id, timestamp``
=================  ==============================================  ===============================

A value that is not of its filter's form is refused with a message naming the filter, and then
nothing is shown (never the unfiltered trail in its place). Usernames are stored normalised
(NFKC, case-folded), so a prefix is folded the same way before it is compared.

Viewing a filtered list records ``audit.searched`` (OWASP ASVS 4.0.3 V8.3.5: access to the
record is itself recorded), at most once per distinct set of filters per session every
``AUDIT_EXPLORER_SEARCH_RECORD_INTERVAL`` seconds: paging through one search, or reloading it,
is not a new search.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import re
import time
from dataclasses import dataclass, field

from django import forms
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

import audit
from audit import conf
from audit.actions import Action, Outcome, action_area
from core.context import REQUEST_ID_PATTERN

# The parameters the explorer reads, in the order they are shown and described.
FILTER_PARAMETERS = (
    "last", "since", "until", "actor_id", "actor", "subject_id", "subject",
    "action", "outcome", "client_ip", "request_id", "api_key_id",
)  # fmt: skip
SEARCH_PARAMETER = "q"
# The admin's own parameters (page, show all, popups, the error flag); anything else is refused.
ADMIN_PARAMETERS = frozenset({"p", "all", "e", "_popup", "_to_field", "_facets", "o"})

PRESETS: dict[str, tuple[str, datetime.timedelta]] = {
    "1h": ("last hour", datetime.timedelta(hours=1)),
    "24h": ("last 24 hours", datetime.timedelta(hours=24)),
    "7d": ("last 7 days", datetime.timedelta(days=7)),
}
LABELS = {
    "last": "time", "since": "from", "until": "to", "actor_id": "actor id", "actor": "actor",
    "subject_id": "subject id", "subject": "subject", "action": "action", "outcome": "outcome",
    "client_ip": "client IP", "request_id": "request id", "api_key_id": "API key", "q": "search",
}  # fmt: skip
# What an audit.searched or audit.exported event keeps of each value (characters).
RECORDED_VALUE_MAX_LENGTH = 200
AREA_SUFFIX = ".*"
API_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IDENTIFIER_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]{1,64}$")
USERNAME_MAX_LENGTH = 150
# Session entry: digest of a filter set -> when its audit.searched was recorded (epoch seconds).
SEARCHES_SESSION_KEY = "audit_explorer_searches"
SEARCHES_REMEMBERED = 50
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}$")
_SECOND = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}$")
TIME_HELP = "YYYY-MM-DD HH:MM:SS in UTC (seconds, minutes or the time may be left out)"


def action_choices() -> list[tuple[str, object]]:
    """The action select: any action, then each area as a group, its whole area first."""
    areas: dict[str, list[tuple[str, str]]] = {}
    for member in Action:
        areas.setdefault(action_area(member.value), []).append((member.value, f"{member.value} — {member.label}"))
    choices: list[tuple[str, object]] = [("", "any action")]
    for area, members in areas.items():
        choices.append((area, [(f"{area}{AREA_SUFFIX}", f"every {area}.* action"), *members]))
    return choices


def area_actions(area: str) -> list[str]:
    return [member.value for member in Action if action_area(member.value) == area]


def parse_time(text: str, *, end: bool) -> datetime.datetime:
    """A UTC instant from ISO 8601 text; an end without seconds (or time) extends to the whole unit.

    ``until=2026-12-02 07:15`` must include an event at 07:15:42, which the list shows as such.
    A value with an offset (``Z``, ``+02:00``) is converted to UTC; one without is UTC.
    """
    value = text.strip()
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise forms.ValidationError(f"Enter a date and time as {TIME_HELP}.") from None
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=datetime.UTC)
    parsed = parsed.astimezone(datetime.UTC)
    if end:
        unit = (
            datetime.timedelta(days=1) if _DATE.match(value)
            else datetime.timedelta(minutes=1) if _MINUTE.match(value)
            else datetime.timedelta(seconds=1) if _SECOND.match(value)
            else datetime.timedelta(0)
        )  # fmt: skip
        try:
            parsed += unit
        except OverflowError:
            raise forms.ValidationError("That time is past the last one there can be.") from None
    return parsed


def parse_address_or_range(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    value = text.strip()
    try:
        if "/" in value:
            return ipaddress.ip_network(value, strict=False)
        address = ipaddress.ip_address(value)
    except ValueError:
        raise forms.ValidationError(
            "Enter an IP address (198.51.100.7, 2001:db8::1) or a range in CIDR form (198.51.100.0/24)."
        ) from None
    return ipaddress.ip_network(address)


class EventFilterForm(forms.Form):
    """The explorer's filters as given in the query string (every field optional)."""

    last = forms.ChoiceField(
        required=False, choices=[("", "any time"), *((key, label) for key, (label, _) in PRESETS.items())]
    )
    since = forms.CharField(required=False, max_length=40, help_text=TIME_HELP)
    until = forms.CharField(required=False, max_length=40, help_text=TIME_HELP)
    actor_id = forms.CharField(required=False, max_length=64)
    actor = forms.CharField(required=False, max_length=USERNAME_MAX_LENGTH, help_text="username starts with")
    subject_id = forms.CharField(required=False, max_length=64)
    subject = forms.CharField(required=False, max_length=USERNAME_MAX_LENGTH, help_text="username starts with")
    action = forms.ChoiceField(required=False, choices=action_choices)
    outcome = forms.ChoiceField(required=False, choices=[("", "any outcome"), *Outcome.choices])
    client_ip = forms.CharField(required=False, max_length=64, help_text="an address or a CIDR range")
    request_id = forms.CharField(required=False, max_length=64)
    api_key_id = forms.CharField(required=False, max_length=68, help_text="the key's public prefix")

    def clean_since(self):
        text = self.cleaned_data["since"]
        return parse_time(text, end=False) if text else None

    def clean_until(self):
        text = self.cleaned_data["until"]
        return parse_time(text, end=True) if text else None

    def _identifier(self, name: str) -> str:
        value = self.cleaned_data[name]
        if value and not IDENTIFIER_PATTERN.fullmatch(value):
            raise forms.ValidationError("An id is 1 to 64 printable characters.")
        return value

    def clean_actor_id(self):
        return self._identifier("actor_id")

    def clean_subject_id(self):
        return self._identifier("subject_id")

    def clean_actor(self):
        return self.cleaned_data["actor"].casefold()

    def clean_subject(self):
        return self.cleaned_data["subject"].casefold()

    def clean_client_ip(self):
        text = self.cleaned_data["client_ip"]
        if not text:
            return None
        network = parse_address_or_range(text)
        limit = conf.get("AUDIT_EXPLORER_SQLITE_RANGE_LIMIT")
        if connection.vendor != "postgresql" and network.num_addresses > limit:
            raise forms.ValidationError(
                f"This database matches a range address by address: give a range of at most {limit} addresses "
                f"(a /{network.max_prefixlen - (limit.bit_length() - 1)} or narrower)."
            )
        return network

    def clean_request_id(self):
        value = self.cleaned_data["request_id"]
        if value and not REQUEST_ID_PATTERN.fullmatch(value):
            raise forms.ValidationError("A request id is 8 to 64 letters, digits, dots, dashes or underscores.")
        return value

    def clean_api_key_id(self):
        value = self.cleaned_data["api_key_id"].removeprefix("nvk_").removesuffix("…")
        if value and not API_KEY_PATTERN.fullmatch(value):
            raise forms.ValidationError("An API key is named by its public prefix: letters, digits, - and _.")
        return value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("last") and (self.data.get("since") or self.data.get("until")):
            raise forms.ValidationError("Choose a preset (last hour, 24 hours, 7 days) or a from–to range, not both.")
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until <= since:
            self.add_error("until", "The end of the time range is before its start.")
        return cleaned


@dataclass
class EventFilters:
    """The filters of one explorer request, parsed: ``errors`` empty when every value was valid."""

    values: dict = field(default_factory=dict)  # name -> cleaned value, only those given
    raw: dict[str, str] = field(default_factory=dict)  # name -> the text given, for chips and events
    search: str = ""
    errors: list[str] = field(default_factory=list)
    form: EventFilterForm | None = None

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def active(self) -> bool:
        """Whether any filter or search narrows the list."""
        return bool(self.values or self.search)

    def apply(self, queryset: QuerySet, *, now: datetime.datetime | None = None) -> QuerySet:
        """``queryset`` narrowed to the matching events; no event at all when a value was invalid."""
        if not self.valid:
            return queryset.none()
        return queryset.filter(self.condition(now=now))

    def condition(self, *, now: datetime.datetime | None = None) -> Q:
        values = self.values
        condition = Q()
        if "last" in values:
            condition &= Q(timestamp__gte=(now or timezone.now()) - PRESETS[values["last"]][1])
        if "since" in values:
            condition &= Q(timestamp__gte=values["since"])
        if "until" in values:
            condition &= Q(timestamp__lt=values["until"])
        for name in ("actor_id", "subject_id", "request_id", "outcome", "api_key_id"):
            if name in values:
                condition &= Q(**{name: values[name]})
        if "actor" in values:
            condition &= Q(actor_username__startswith=values["actor"])
        if "subject" in values:
            condition &= Q(subject_username__startswith=values["subject"])
        if "action" in values:
            action = values["action"]
            if action.endswith(AREA_SUFFIX):
                condition &= Q(action__in=area_actions(action.removesuffix(AREA_SUFFIX)))
            else:
                condition &= Q(action=action)
        if "client_ip" in values:
            condition &= _address_condition(values["client_ip"])
        return condition

    def described(self) -> dict[str, str]:
        """The filters as recorded in audit.searched and audit.exported: texts, bounded, in a fixed order."""
        described = {
            name: str(self.raw[name])[:RECORDED_VALUE_MAX_LENGTH] for name in FILTER_PARAMETERS if name in self.raw
        }
        if self.search:
            described["search"] = self.search[:RECORDED_VALUE_MAX_LENGTH]
        return described

    def digest(self) -> str:
        """Stable digest of the filter set, the key of the once-per-interval record."""
        text = json.dumps(self.described(), sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def _address_condition(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> Q:
    if network.num_addresses == 1:
        return Q(client_ip=network.network_address.compressed)
    if connection.vendor == "postgresql":
        # inet orders by family, then address: a range of host addresses is a range scan on the
        # (client_ip, timestamp) index, however wide.
        return Q(
            client_ip__gte=network.network_address.compressed, client_ip__lte=network.broadcast_address.compressed
        )
    # SQLite stores the text of the address: a range is the list of its (bounded) addresses.
    return Q(client_ip__in=[address.compressed for address in network])


def filters_from_query(query) -> EventFilters:
    """Parse a request's query string (a ``QueryDict``) into ``EventFilters``; never raises."""
    known = {*FILTER_PARAMETERS, SEARCH_PARAMETER, *ADMIN_PARAMETERS}
    unknown = sorted(name for name in query if name not in known)
    data = {name: query.get(name, "") for name in FILTER_PARAMETERS if query.get(name, "").strip()}
    form = EventFilterForm(data=data)
    errors = [f"Unknown filter “{name[:40]}”: the filters are {', '.join(FILTER_PARAMETERS)}." for name in unknown]
    search = query.get(SEARCH_PARAMETER, "").strip()[:USERNAME_MAX_LENGTH]
    if not form.is_valid():
        for name, messages in form.errors.items():
            label = "filters" if name == "__all__" else LABELS.get(name, name)
            errors.extend(f"{label[:1].upper()}{label[1:]}: {message}" for message in messages)
        return EventFilters(raw={k: v.strip() for k, v in data.items()}, search=search, errors=errors, form=form)
    values = {name: value for name, value in form.cleaned_data.items() if value not in ("", None)}
    raw = {name: data[name].strip() for name in values}
    return EventFilters(values=values, raw=raw, search=search, errors=errors, form=form)


# --- the record of reading -----------------------------------------------------------------------


def explorer_search_record(*, actor, session, filters: EventFilters, results: int, capped: bool) -> bool:
    """Record ``audit.searched`` for a filtered view of the trail, once per filter set per interval.

    The caller (the explorer's changelist) has checked the view permission. ``session`` remembers
    which filter sets were recorded when (their digests, never their values), so paging through a
    search or reloading it records nothing new; a different filter set, another session, or the
    same search after the interval does. Returns whether an event was recorded.
    """
    if not filters.active or not filters.valid:
        return False
    now = time.time()
    interval = conf.get("AUDIT_EXPLORER_SEARCH_RECORD_INTERVAL")
    remembered = {
        digest: when
        for digest, when in dict(session.get(SEARCHES_SESSION_KEY) or {}).items()
        if isinstance(when, int | float) and now - when < interval
    }
    digest = filters.digest()
    if digest in remembered:
        return False
    audit.record(
        action=Action.AUDIT_SEARCHED,
        outcome=Outcome.SUCCESS,
        actor=actor,
        context={"filters": filters.described(), "results": results, "capped": capped},
    )
    remembered[digest] = now
    newest = sorted(remembered.items(), key=lambda item: item[1])[-SEARCHES_REMEMBERED:]
    session[SEARCHES_SESSION_KEY] = dict(newest)
    return True
