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
}
_settings = AppSettings(DEFAULTS)
get = _settings.get
