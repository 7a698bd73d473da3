"""The sections of a user's security page from rooms that ``accounts`` may not import.

``accounts`` is below ``api`` (docs/architecture.md), so the top floor hands the page
(``accounts.admin_views``) its API keys section: the keys of the user read through
``api.selectors`` and revoked through ``api.services.api_key_revoke`` (which checks permission
itself and records ``api.key_revoked``). ``config/urls.py`` sets ``SECTIONS`` on the user admin.
"""

from __future__ import annotations

import datetime

from accounts.admin_views import SectionItemNotFound, UserSecuritySection
from api.selectors import api_key_get, api_key_list
from api.services import api_key_revoke

API_KEYS_SHOWN = 50  # keys listed, newest first; the note gives the total (keys)
REVOKE_REASON = "revoked from the user's security page in the console"


def _utc(value: datetime.datetime | None, empty: str = "never") -> str:
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S") if value else empty


def api_keys_read(*, user, now: datetime.datetime) -> dict:
    """The user's keys (prefix, name, scopes, status, expiry, last use and IP), never a secret or hash."""
    keys = api_key_list(owner=user)
    total = keys.count()
    rows = []
    for key in keys[:API_KEYS_SHOWN]:
        status = key.status(now)
        rows.append(
            {
                "item": key.prefix,
                "cells": [
                    f"{key.name} ({key.display_prefix})",
                    ", ".join(key.scopes) or "none",
                    status,
                    _utc(key.expires_at),
                    _utc(key.last_used_at),
                    key.last_used_ip or "-",
                ],
                "actionable": status in ("active", "expiring"),
                "label": f"{key.name} ({key.display_prefix})",
            }
        )
    shown = min(total, API_KEYS_SHOWN)
    return {
        "columns": ["Key", "Scopes", "Status", "Expires (UTC)", "Last used (UTC)", "Last IP"],
        "rows": rows,
        "note": f"{total} key(s){f', the newest {shown} shown' if total > shown else ''}.",
        "empty": "No API keys.",
    }


def api_key_revoke_from_page(*, actor, user, item: str) -> str:
    """Revoke the key of ``user`` with the public prefix ``item`` (another user's key is not found)."""
    key = api_key_get(owner=user, prefix=item)
    if key is None:
        raise SectionItemNotFound(item)
    if key.revoked_at is not None:
        return f"The key {key.display_prefix} was already revoked."
    api_key_revoke(actor=actor, api_key=key, reason=REVOKE_REASON)
    return f"Revoked the API key {key.name} ({key.display_prefix}) of {user.username}."


SECTIONS = {
    "api-keys": UserSecuritySection(
        title="API keys",
        view_permission="api.view_apikey",
        read=api_keys_read,
        action_label="Revoke",
        # api.change_apikey manages anyone's keys (api.services.api_key_can_manage), revoking included.
        action_permissions=("api.revoke_apikey", "api.change_apikey"),
        act=api_key_revoke_from_page,
    ),
}
