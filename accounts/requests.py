"""Small helpers over the request: the client IP (one function, the audit app's) and the user agent."""

from __future__ import annotations

from audit.context import USER_AGENT_MAX_LENGTH, client_ip_from_meta


def client_ip(request) -> str | None:
    """The client IP resolved once by ``audit.middleware``; the same function when it did not run."""
    if hasattr(request, "client_ip"):
        return request.client_ip
    return client_ip_from_meta(request.META)


def user_agent(request) -> str:
    return (request.META.get("HTTP_USER_AGENT", "") or "")[:USER_AGENT_MAX_LENGTH]


def base_url(request) -> str:
    """``scheme://host`` of the request (the host is validated against ALLOWED_HOSTS)."""
    return f"{request.scheme}://{request.get_host()}"
