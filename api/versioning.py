"""API versions and the registry of deprecated endpoints.

Versions live in the URL path (``/api/v1/``, ``/api/v2/``). A deprecated endpoint answers as
before plus ``Deprecation`` (RFC 9745; ``@1795824000`` is 2026-11-28), ``Sunset`` (RFC 8594) and
``Link`` (RFC 8288) headers, and every call is counted per caller (API key, else user, else IP)
per day; after the sunset it answers ``410 Gone``. ``DEFAULT_REGISTRY`` is the default;
``API_DEPRECATIONS`` (a list of dicts with the same keys) replaces it. The policy, the headers
in full and why: docs/API_CHANGES.md.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from email.utils import format_datetime

from django.core.signals import setting_changed
from django.dispatch import receiver

from api import conf

VERSIONS = ("v1", "v2")
CURRENT_VERSION = "v2"


@dataclass(frozen=True)
class Deprecation:
    """One deprecated endpoint family: every path that starts with ``path_prefix``."""

    path_prefix: str
    deprecated_at: datetime.datetime
    sunset_at: datetime.datetime | None
    successor: str
    notes_anchor: str
    methods: frozenset[str] | None = None  # None: every method

    def matches(self, path: str, method: str) -> bool:
        return path.startswith(self.path_prefix) and (self.methods is None or method in self.methods)

    def is_deprecated(self, now: datetime.datetime) -> bool:
        return self.deprecated_at <= now

    def is_sunset(self, now: datetime.datetime) -> bool:
        return self.sunset_at is not None and self.sunset_at <= now

    def notes_url(self) -> str:
        return f"{conf.get('API_CHANGES_URL')}#{self.notes_anchor}"

    def headers(self) -> dict[str, str]:
        """The Deprecation, Sunset and Link headers of a response from this endpoint."""
        notes = self.notes_url()
        links = [f'<{notes}>; rel="deprecation"; type="text/markdown"']
        headers = {"Deprecation": f"@{int(self.deprecated_at.timestamp())}"}
        if self.sunset_at is not None:
            headers["Sunset"] = format_datetime(self.sunset_at.astimezone(datetime.UTC), usegmt=True)
            links.append(f'<{notes}>; rel="sunset"; type="text/markdown"')
        links.append(f'<{self.successor}>; rel="successor-version"')
        headers["Link"] = ", ".join(links)
        return headers


def _utc(year: int, month: int, day: int) -> datetime.datetime:
    return datetime.datetime(year, month, day, tzinfo=datetime.UTC)


# v2 changed the memory resource (docs/API_CHANGES.md, "v2"): v1's memory endpoints are
# deprecated from the day v2 shipped and answer 410 from the sunset on.
DEFAULT_REGISTRY: tuple[Deprecation, ...] = (
    Deprecation(
        path_prefix="/api/v1/memories/",
        deprecated_at=_utc(2026, 11, 28),
        sunset_at=_utc(2027, 6, 1),
        successor="/api/v2/memories/",
        notes_anchor="v1-memories",
    ),
)

_registry_cache: tuple[Deprecation, ...] | None = None


def _parse_datetime(value) -> datetime.datetime | None:
    if value is None or isinstance(value, datetime.datetime):
        return value
    parsed = datetime.datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def registry() -> tuple[Deprecation, ...]:
    """The deprecations in force: ``API_DEPRECATIONS`` if set, else ``DEFAULT_REGISTRY``."""
    global _registry_cache
    if _registry_cache is None:
        configured = conf.get("API_DEPRECATIONS")
        if configured is None:
            _registry_cache = DEFAULT_REGISTRY
        else:
            _registry_cache = tuple(
                Deprecation(
                    path_prefix=entry["path_prefix"],
                    deprecated_at=_parse_datetime(entry["deprecated_at"]),
                    sunset_at=_parse_datetime(entry.get("sunset_at")),
                    successor=entry["successor"],
                    notes_anchor=entry.get("notes_anchor", ""),
                    methods=frozenset(entry["methods"]) if entry.get("methods") else None,
                )
                for entry in configured
            )
    return _registry_cache


@receiver(setting_changed)
def _forget_registry(*, setting: str, **kwargs) -> None:
    global _registry_cache
    if setting in {"API_DEPRECATIONS", "API_CHANGES_URL"}:
        _registry_cache = None


def deprecation_for(path: str, method: str) -> Deprecation | None:
    """The deprecation that covers ``method path``, if any (announced or in force)."""
    for entry in registry():
        if entry.matches(path, method):
            return entry
    return None
