"""The settings of the API security layer and their defaults, read when used (so tests can override them).

A settings module (or, for the ones ``config/settings/base.py`` reads, the environment variable
of the same name, see ``.env.example``) overrides a default; ``api/checks.py`` refuses unsafe
values. ``API_CACHE_URL`` and ``API_CSP_REPORT_URI`` are environment variables only: base.py
turns them into Django's ``CACHES["api"]`` and django-csp's ``report-uri``.
"""

from __future__ import annotations

from core.settings import AppSettings

DEFAULTS = {
    # --- API keys ---
    # HMAC key of the stored key hashes, 32+ characters; empty: derived from SECRET_KEY (secret).
    "API_KEY_HASH_KEY": "",
    # Lifetime of a new key when none is chosen (days).
    "API_KEY_DEFAULT_LIFETIME_DAYS": 90,
    # The longest lifetime allowed (days).
    "API_KEY_MAX_LIFETIME_DAYS": 365,
    # After a rotation the old key stays valid this long (seconds).
    "API_KEY_ROTATION_OVERLAP_SECONDS": 24 * 60 * 60,
    # The longest overlap allowed (seconds).
    "API_KEY_ROTATION_MAX_OVERLAP_SECONDS": 30 * 24 * 60 * 60,
    # A key's last-used time and IP are written at most this often (seconds).
    "API_KEY_LAST_USED_INTERVAL": 60,
    # Active keys one user or service account may hold (keys).
    "API_KEY_MAX_PER_USER": 25,
    # --- Signed requests ---
    # Accepted difference from the server clock, either way (seconds).
    "API_SIGNATURE_MAX_SKEW_SECONDS": 300,
    # Used nonces are kept at least this long, and never less than twice the skew: a server clock
    # stepped back by up to this much (less one window) still meets the nonces of requests it
    # already accepted, so a replay is refused (seconds).
    "API_SIGNATURE_NONCE_RETENTION_SECONDS": 2 * 60 * 60,
    # Where used nonces are kept: "auto" (Redis when the API cache is Redis, else the database),
    # "database", or "cache" (only when the API cache is Redis).
    "API_SIGNATURE_NONCE_STORE": "auto",
    # A key's decrypted signing secret is kept in process memory this long; 0: loaded every time (seconds).
    "API_SIGNATURE_SECRET_CACHE_SECONDS": 60,
    # --- Request limits ---
    # Largest request body on any endpoint not listed in API_BODY_LIMITS (bytes).
    "API_MAX_BODY_BYTES": 64 * 1024,
    # Per-endpoint body limits; memory endpoints declare 524288 themselves ("namespace:url-name" -> bytes).
    "API_BODY_LIMITS": {},
    # Nesting depth of a JSON body (levels).
    "API_JSON_MAX_DEPTH": 32,
    # Items in any one JSON array (items).
    "API_JSON_MAX_ARRAY_LENGTH": 1000,
    # Keys in any one JSON object (keys).
    "API_JSON_MAX_OBJECT_KEYS": 1000,
    # Rate limits per API key, per user and per client IP (DRF rates: requests per s/min/hour/day).
    "API_THROTTLE_RATES": {"api_key": "1200/min", "user": "600/min", "ip": "1800/min"},
    # The cache of throttle counters, and of nonces with the cache store (alias in CACHES).
    "API_CACHE_ALIAS": "api",
    # --- Lists ---
    # A list page counts at most this many matching items (or as many as the page needs) (items).
    "API_LIST_COUNT_CAP": 10_000,
    # --- Versioning ---
    # The deprecation registry; None: the one in api/versioning.py, a list replaces it (entries).
    "API_DEPRECATIONS": None,
    # Where the Link headers of deprecated endpoints point: the served docs/API_CHANGES.md (URL).
    "API_CHANGES_URL": "/api/changes/",
}
_settings = AppSettings(DEFAULTS)
get = _settings.get
