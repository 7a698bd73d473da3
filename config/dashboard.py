"""The security dashboard's sections from rooms that ``monitoring`` may not import.

``monitoring`` reads audit, accounts (selectors) and core only (docs/architecture.md); the top
floor may read every app, so it hands the dashboard two more sections, each a function of
``now`` that calls the owning app's selector: API keys that need attention (``api``) and the key
rings with their primary key's age (``encryption``).
"""

from __future__ import annotations

import datetime

from django.urls import NoReverseMatch, reverse

from api.selectors import api_keys_needing_attention
from encryption.selectors import key_ring_overview

API_KEY_EXPIRING_DAYS = 14  # keys that expire within this many days are listed (days)
API_KEY_UNUSED_DAYS = 90  # keys not used for this many days are listed (days)


def _admin_link(name: str, pk: int) -> str:
    try:
        return reverse(name, args=[pk])
    except NoReverseMatch:
        return ""


def api_keys_section(now: datetime.datetime) -> dict:
    data = api_keys_needing_attention(
        now=now,
        expiring_within=datetime.timedelta(days=API_KEY_EXPIRING_DAYS),
        unused_for=datetime.timedelta(days=API_KEY_UNUSED_DAYS),
    )
    for key in data["keys"]:
        key["link"] = _admin_link("admin:api_apikey_change", key["pk"])
    return {**data, "expiring_days": API_KEY_EXPIRING_DAYS, "unused_days": API_KEY_UNUSED_DAYS}


def key_rings_section(now: datetime.datetime) -> list[dict]:
    return key_ring_overview(today=now.astimezone(datetime.UTC).date())


SECTIONS = {"api_keys": api_keys_section, "key_rings": key_rings_section}
