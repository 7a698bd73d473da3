"""System checks that refuse an unsafe configuration of the API security layer."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from api import conf

REQUIRED_ORDER = [
    "core.middleware.ContentSecurityPolicyMiddleware",
    "core.middleware.SecurityHeadersMiddleware",
    "core.middleware.RequestContextMiddleware",
    "api.middleware.ApiRequestMiddleware",
]
COMPRESSING_MIDDLEWARE = {"django.middleware.gzip.GZipMiddleware"}
UNSAFE_SOURCES = {"'unsafe-inline'", "'unsafe-eval'", "*"}


@register("security")
def check_middleware(app_configs=None, **kwargs):
    middleware = list(settings.MIDDLEWARE)
    errors = []
    missing = [name for name in REQUIRED_ORDER if name not in middleware]
    if missing:
        errors.append(
            Error(
                f"MIDDLEWARE lacks {', '.join(missing)}.",
                hint="The API security layer needs all of: " + ", ".join(REQUIRED_ORDER) + ".",
                id="api.E001",
            )
        )
    else:
        positions = [middleware.index(name) for name in REQUIRED_ORDER]
        if positions != sorted(positions):
            errors.append(
                Error(
                    "The API security middleware is out of order.",
                    hint="Order: " + " → ".join(REQUIRED_ORDER) + " (CSP must read the per-response policy; "
                    "the API middleware needs the request id).",
                    id="api.E002",
                )
            )
    compressing = COMPRESSING_MIDDLEWARE.intersection(middleware)
    if compressing:
        errors.append(
            Error(
                f"{', '.join(sorted(compressing))} compresses responses that carry secrets and CSRF tokens (BREACH).",
                hint="Compress static assets only, in the web server or at build time.",
                id="api.E003",
            )
        )
    return errors


@register("security")
def check_content_security_policy(app_configs=None, **kwargs):
    directives = (getattr(settings, "CONTENT_SECURITY_POLICY", None) or {}).get("DIRECTIVES", {})
    errors = []
    for directive in ("default-src", "script-src", "style-src"):
        unsafe = UNSAFE_SOURCES.intersection(directives.get(directive) or [])
        if unsafe:
            errors.append(
                Error(
                    f"CONTENT_SECURITY_POLICY {directive} allows {', '.join(sorted(unsafe))}.",
                    hint="Use nonces ({{ request.csp_nonce }}) or static files instead.",
                    id="api.E004",
                )
            )
    if not directives:
        errors.append(Error("CONTENT_SECURITY_POLICY has no DIRECTIVES.", id="api.E005"))
    return errors


@register("security")
def check_nonce_store(app_configs=None, **kwargs):
    store = conf.get("API_SIGNATURE_NONCE_STORE")
    if store in ("database", "auto"):
        return []
    if store != "cache":
        return [
            Error(f"API_SIGNATURE_NONCE_STORE must be 'auto', 'database' or 'cache', not {store!r}.", id="api.E006")
        ]
    alias = conf.get("API_CACHE_ALIAS")
    backend = settings.CACHES.get(alias, {}).get("BACKEND", "")
    if not backend.endswith("RedisCache"):
        return [
            Error(
                f"API_SIGNATURE_NONCE_STORE='cache' needs the {alias!r} cache to be Redis, not {backend or 'missing'}.",
                hint="A per-process cache would let a replay through on another worker; use 'database' or Redis.",
                id="api.E007",
            )
        ]
    return []
