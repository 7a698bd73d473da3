"""Helpers over a request: the one client-IP function, the user agent, the user and API key."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.core.exceptions import DisallowedHost

from core import conf

USER_AGENT_MAX_LENGTH = 256


def valid_ip(value: str | None) -> str | None:
    """``value`` as a normalised IP address, or ``None`` if it is not one."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip_from_meta(meta: dict) -> str | None:
    """Return the client IP of a request: the one function the whole project uses.

    With ``AUDIT_TRUSTED_PROXY_COUNT = n`` (default 0) we trust the last ``n`` hops of
    ``X-Forwarded-For`` (each appended by one of our proxies) and take the address the outermost
    trusted proxy saw; entries further left were written by the client and are never believed.
    With 0 trusted proxies the header is ignored and ``REMOTE_ADDR`` is the client.
    See docs/decisions/client-ip-and-trusted-proxies.md.
    """
    remote_addr = valid_ip(meta.get("REMOTE_ADDR", "") or "")
    trusted = conf.get("AUDIT_TRUSTED_PROXY_COUNT")
    if trusted <= 0:
        return remote_addr
    forwarded = [part.strip() for part in (meta.get("HTTP_X_FORWARDED_FOR", "") or "").split(",") if part.strip()]
    # REMOTE_ADDR is the nearest proxy; the header holds the hops before it, nearest last.
    hops = forwarded + ([remote_addr] if remote_addr else [])
    if len(hops) <= trusted:
        # Fewer hops than proxies we run: the request bypassed a proxy; take the furthest we have.
        return valid_ip(hops[0]) if hops else None
    return valid_ip(hops[-(trusted + 1)])


def client_ip(request) -> str | None:
    """The client IP resolved once by the request context middleware; the same function when it did not run."""
    if hasattr(request, "client_ip"):
        return request.client_ip
    return client_ip_from_meta(request.META)


def user_agent(request) -> str:
    """The request's user agent, bounded."""
    return (request.META.get("HTTP_USER_AGENT", "") or "")[:USER_AGENT_MAX_LENGTH]


def base_url(request) -> str:
    """``scheme://host`` of the request (the host is validated against ALLOWED_HOSTS).

    Empty when the request names no usable host: a login made in code (``Client.force_login``
    builds a bare ``HttpRequest``) or a host outside ``ALLOWED_HOSTS``; links then use the site
    URL (``core.emails.site_url``), never an unchecked host.
    """
    try:
        return f"{request.scheme}://{request.get_host()}"
    except (KeyError, DisallowedHost):
        return ""


def request_user(request) -> Any:
    """The authenticated user of a Django or DRF request, without triggering authentication."""
    user = getattr(request, "_user", None)  # DRF: set once authentication has run
    if user is None:
        django_request = getattr(request, "_request", request)
        user = django_request.__dict__.get("user")
    try:
        return user if user is not None and user.is_authenticated else None
    except Exception:
        return None


def request_api_key(request) -> Any:
    """The API key that authenticated the request, if any."""
    django_request = getattr(request, "_request", request)
    return django_request.__dict__.get("api_key")
