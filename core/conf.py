"""The settings of the ground floor and their defaults, read when used (so tests can override them)."""

from __future__ import annotations

from core.settings import AppSettings

DEFAULTS = {
    # Reverse proxies whose X-Forwarded-For hop is trusted; 0: REMOTE_ADDR only (proxies). The name
    # keeps its AUDIT_ prefix: operators set it, and it decides the client IP every event records.
    "AUDIT_TRUSTED_PROXY_COUNT": 0,
    # scheme://host[:port] of every link in every email (core/emails.py); empty: the host of the
    # request that caused the email, else http://127.0.0.1:8000 (URL). The name keeps its ACCOUNTS_
    # prefix: operators set it, and accounts' emails were its first use.
    "ACCOUNTS_SITE_URL": "",
    # Permissions-Policy header of every response: every powerful feature off (header value).
    "PERMISSIONS_POLICY": (
        "accelerometer=(), autoplay=(), camera=(), display-capture=(), encrypted-media=(), "
        "fullscreen=(self), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
        "midi=(), payment=(), picture-in-picture=(), publickey-credentials-get=(self), "
        "screen-wake-lock=(), sync-xhr=(), usb=(), xr-spatial-tracking=()"
    ),
    # After a failed hand-off to Celery, publishing is skipped this long in that process; the
    # scheduled runs catch up (seconds; core/handoff.py).
    "CORE_HANDOFF_PAUSE_SECONDS": 30,
    # What these settings relax of production's policy, by name from RELAXATIONS below; only
    # config.settings.staging sets it, never the environment (names).
    "SECURITY_RELAXATIONS": (),
}
_settings = AppSettings(DEFAULTS)
get = _settings.get

# Everything a settings module may relax of production's policy (config/settings/staging.py says
# why each is relaxed there; core/checks.py refuses any other name).
RELAXATIONS = {
    # core/checks.py: an HSTS max-age (SECURE_HSTS_SECONDS) shorter than one year.
    "short-hsts",
    # core/secret_stores.py: plain http to a key provider (ENCRYPTION_AWS_ENDPOINT_URL,
    # ENCRYPTION_VAULT_URL) at an IP address of a private network, not only at a loopback address.
    "plain-http-to-private-network",
}


def relaxed(name: str) -> bool:
    """Whether the settings relax the policy item ``name`` (one of ``RELAXATIONS``)."""
    if name not in RELAXATIONS:
        raise ValueError(f"Unknown relaxation {name!r}; expected one of {', '.join(sorted(RELAXATIONS))}.")
    relaxations = get("SECURITY_RELAXATIONS")
    return isinstance(relaxations, list | tuple | set | frozenset) and name in relaxations
