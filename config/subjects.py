"""Descriptions of alert subjects that live in rooms ``monitoring`` may not import.

An alert on an API key names it by its public prefix (what the audit record holds). The alert
console and the reports show the key's name and owner instead; the api app is above
``monitoring`` (docs/architecture.md), so the top floor describes the keys and
``MONITORING_SUBJECT_DESCRIBERS`` (config/settings/base.py) names this function.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.urls import NoReverseMatch, reverse

from api.models import ApiKey


def api_key_descriptions(prefixes: Iterable[str]) -> dict[str, dict[str, str]]:
    """``{prefix: {"name", "owner", "link"}}`` for the keys among ``prefixes`` (one query; never a secret)."""
    wanted = {str(prefix) for prefix in prefixes if prefix}
    if not wanted:
        return {}
    found = {}
    for key in ApiKey.objects.filter(prefix__in=wanted).select_related("user"):
        try:
            link = reverse("admin:api_apikey_change", args=[key.pk])
        except NoReverseMatch:
            link = ""
        found[key.prefix] = {"name": key.name, "owner": key.user.get_username(), "link": link}
    return found
