"""The settings of the memories app and their defaults, read when used (so tests can override them).

A settings module or the environment variable of the same name (``config/settings/base.py``,
``.env.example``) overrides a default.
"""

from __future__ import annotations

from core.settings import AppSettings

DEFAULTS = {
    # Largest memory content accepted (characters).
    "MEMORIES_CONTENT_MAX_LENGTH": 65536,
    # Largest metadata document accepted, as compact UTF-8 JSON (bytes).
    "MEMORIES_METADATA_MAX_BYTES": 16384,
    # How long an offer to transfer a context to another user stays open (seconds; 7 days).
    "MEMORIES_TRANSFER_OFFER_MAX_AGE": 7 * 24 * 3600,
}
_settings = AppSettings(DEFAULTS)
get = _settings.get
