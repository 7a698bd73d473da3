"""The request context: request id, client IP and user agent of the work in progress.

Bound by ``audit.middleware.RequestContextMiddleware`` for a web request and by the Celery task
hooks for a task, read by ``audit.record()`` and the JSON log, so callers never pass the request
around.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import re
import uuid
from dataclasses import dataclass

from audit import conf

# A request id we accept from a client: 8 to 64 characters of letters, digits, '-', '_' and '.'.
# Anything else (control characters, spaces, 10 kB of text) is replaced, not trusted.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
USER_AGENT_MAX_LENGTH = 256


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    client_ip: str | None = None
    user_agent: str = ""


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("request_context", default=None)


def new_request_id() -> str:
    """Return a fresh request id (a UUID4 in hex)."""
    return uuid.uuid4().hex


def accept_request_id(candidate: str | None) -> str:
    """Return ``candidate`` if it is a well-formed request id, else a fresh one."""
    if candidate and REQUEST_ID_PATTERN.fullmatch(candidate):
        return candidate
    return new_request_id()


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip_from_meta(meta: dict) -> str | None:
    """Return the client IP of a request: the one function the whole project uses.

    With ``AUDIT_TRUSTED_PROXY_COUNT = n`` (default 0) we trust the last ``n`` hops of
    ``X-Forwarded-For`` (each appended by one of our proxies) and take the address the outermost
    trusted proxy saw. Entries further left were written by the client and are never believed:
    that is how django-axes and friends let a forged header pick any IP. With 0 trusted proxies
    the header is ignored and ``REMOTE_ADDR`` is the client.
    """
    remote_addr = _valid_ip(meta.get("REMOTE_ADDR", "") or "")
    trusted = conf.get("AUDIT_TRUSTED_PROXY_COUNT")
    if trusted <= 0:
        return remote_addr
    forwarded = [part.strip() for part in (meta.get("HTTP_X_FORWARDED_FOR", "") or "").split(",") if part.strip()]
    # REMOTE_ADDR is the nearest proxy; the header holds the hops before it, nearest last.
    hops = forwarded + ([remote_addr] if remote_addr else [])
    if len(hops) <= trusted:
        # Fewer hops than proxies we run: the request bypassed a proxy; take the furthest we have.
        return _valid_ip(hops[0]) if hops else None
    return _valid_ip(hops[-(trusted + 1)])


def bind(context: RequestContext) -> contextvars.Token:
    """Make ``context`` the current request context; return a token for ``reset``."""
    return _current.set(context)


def reset(token: contextvars.Token) -> None:
    """Restore the request context that was current before ``bind``."""
    _current.reset(token)


def current() -> RequestContext | None:
    """Return the current request context, or ``None`` outside a request or task."""
    return _current.get()


@contextlib.contextmanager
def bound(*, request_id: str | None = None, client_ip: str | None = None, user_agent: str = ""):
    """Bind a request context for the duration of a ``with`` block (tasks, commands, tests).

    ``request_id`` goes through ``accept_request_id`` (a malformed one is replaced) and
    ``client_ip`` must parse as an address or is dropped.
    """
    token = bind(
        RequestContext(
            request_id=accept_request_id(request_id),
            client_ip=_valid_ip(client_ip) if client_ip else None,
            user_agent=(user_agent or "")[:USER_AGENT_MAX_LENGTH],
        )
    )
    try:
        yield current()
    finally:
        reset(token)


# Commands that serve requests or tasks bind their own context per request or task.
_LONG_RUNNING_COMMANDS = frozenset({"runserver", "testserver"})


@contextlib.contextmanager
def command_bound(argv: list[str]):
    """Bind a run id for one ``manage.py`` command, so its events and log lines share one id.

    ``manage.py`` wraps every command in this: the events of one ``audit_archive`` or
    ``rotate_encryption_keys`` run are then "everything one request id caused", like a request's.
    The id is ``cmd-`` and 32 hex digits. Servers are left alone (each request binds its own).
    """
    command = argv[1] if len(argv) > 1 else ""
    if command in _LONG_RUNNING_COMMANDS:
        yield None
        return
    with bound(request_id=f"cmd-{new_request_id()}") as context:
        yield context


# The user of the work in progress, for log lines. Bound to the request itself, and read lazily:
# Django's AuthenticationMiddleware (or DRF, after API-key authentication) attaches the user
# later, and reading it must never cost a query — an unevaluated lazy user is simply absent.
# A Celery task binds the publishing request's user id as a plain value.
_user_source: contextvars.ContextVar[object | None] = contextvars.ContextVar("request_user", default=None)


def bind_user(source: object | None) -> contextvars.Token:
    """Bind the source of the current user id: a request, or a user id; return a reset token."""
    return _user_source.set(source)


def reset_user(token: contextvars.Token) -> None:
    """Restore the user source that was current before ``bind_user``."""
    _user_source.reset(token)


def current_user_id() -> str | None:
    """Return the id of the authenticated user of the work in progress, if already known."""
    from django.utils.functional import SimpleLazyObject, empty

    source = _user_source.get()
    if source is None:
        return None
    if isinstance(source, int | str):
        return str(source)
    user = getattr(source, "__dict__", {}).get("user")
    if user is None or (isinstance(user, SimpleLazyObject) and user._wrapped is empty):
        return None
    if not getattr(user, "is_authenticated", False):
        return None
    return str(user.pk)


def current_request_id() -> str | None:
    """The request id of the work in progress (django-auditlog's correlation id getter)."""
    bound = _current.get()
    return bound.request_id if bound else None
