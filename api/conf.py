"""The settings of the API security layer, read when used (so tests can override them), with defaults.

Every setting is documented in ``config/settings/base.py`` (one line each, with default and unit)
and in ``.env.example``; the defaults here are the same and only apply when a settings module
leaves one out.
"""

from __future__ import annotations

from django.conf import settings

DEFAULTS = {
    # --- API keys -------------------------------------------------------------------------
    "API_KEY_HASH_KEY": "",  # HMAC key of the stored key hashes; empty: derived from SECRET_KEY
    "API_KEY_DEFAULT_LIFETIME_DAYS": 90,  # days
    "API_KEY_MAX_LIFETIME_DAYS": 365,  # days
    "API_KEY_ROTATION_OVERLAP_SECONDS": 24 * 60 * 60,  # seconds the old key stays valid after a rotation
    "API_KEY_ROTATION_MAX_OVERLAP_SECONDS": 30 * 24 * 60 * 60,  # seconds
    "API_KEY_LAST_USED_INTERVAL": 60,  # seconds between two last-used writes of one key
    "API_KEY_MAX_PER_USER": 25,  # active keys one user or service account may hold
    # --- Signed requests ------------------------------------------------------------------
    "API_SIGNATURE_MAX_SKEW_SECONDS": 300,  # seconds either side of the server clock
    "API_SIGNATURE_NONCE_STORE": "database",  # "database" or "cache" (the API cache must be Redis)
    # --- Request limits -------------------------------------------------------------------
    "API_MAX_BODY_BYTES": 64 * 1024,  # bytes, every endpoint unless overridden
    "API_BODY_LIMITS": {},  # {"url namespace:name": bytes} per-endpoint overrides
    "API_JSON_MAX_DEPTH": 32,  # nesting levels of a JSON body
    "API_JSON_MAX_ARRAY_LENGTH": 1000,  # items in any one JSON array
    "API_JSON_MAX_OBJECT_KEYS": 1000,  # keys in any one JSON object
    "API_THROTTLE_RATES": {"api_key": "1200/min", "user": "600/min", "ip": "1800/min"},
    "API_CACHE_ALIAS": "api",  # the cache of throttle counters (and nonces when Redis)
    # --- Versioning -----------------------------------------------------------------------
    "API_DEPRECATIONS": None,  # None: the registry in api/versioning.py; a list replaces it
    "API_CHANGES_URL": "/api/changes/",  # where the migration notes are served
}


def get(name: str):
    """Return the setting ``name`` or its default."""
    return getattr(settings, name, DEFAULTS[name])
