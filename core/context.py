"""The request context: one object for the work in progress (a request, a task or a command).

It carries the request id, client IP, user agent and where to find the acting user.
``core.middleware.RequestContextMiddleware`` binds it for a web request, the Celery hooks
(``core.celery_context``) for a task, ``command_bound`` for a ``manage.py`` command. Audit
events and log lines read it, so no caller passes the request around.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.utils.functional import SimpleLazyObject, empty

from core.requests import USER_AGENT_MAX_LENGTH, valid_ip

# A request id we accept from a client: 8 to 64 characters of letters, digits, '-', '_' and '.'.
# Anything else (control characters, spaces, 10 kB of text) is replaced, not trusted.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


@dataclass(frozen=True)
class RequestContext:
    """What the work in progress is: its ids, its client, and where its user comes from.

    ``user_source`` is the request itself (its user is attached later by the authentication
    middleware or DRF, and read lazily), a user bound by ``acting_as``, or a plain user id that
    a Celery task carries over from the request that started it.
    """

    request_id: str
    client_ip: str | None = None
    user_agent: str = ""
    user_source: Any = None

    def user_id(self) -> str | None:
        """The id of the authenticated user, if already known; never costs a query."""
        source = self.user_source
        if source is None:
            return None
        if isinstance(source, int | str):
            return str(source)
        user = getattr(source, "__dict__", {}).get("user") if _is_request(source) else source
        if user is None or (isinstance(user, SimpleLazyObject) and user._wrapped is empty):
            return None
        if not getattr(user, "is_authenticated", False):
            return None
        return str(user.pk)

    def actor(self) -> Any:
        """The authenticated acting user object (resolving a lazy request user), or ``None``."""
        source = self.user_source
        if source is None or isinstance(source, int | str):
            return None
        user = getattr(source, "user", None) if _is_request(source) else source
        if user is None or not getattr(user, "is_authenticated", False):
            return None
        return user


def _is_request(source: Any) -> bool:
    return hasattr(source, "META")


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("request_context", default=None)


def new_request_id() -> str:
    """Return a fresh request id (a UUID4 in hex)."""
    return uuid.uuid4().hex


def accept_request_id(candidate: str | None) -> str:
    """Return ``candidate`` if it is a well-formed request id, else a fresh one."""
    if candidate and REQUEST_ID_PATTERN.fullmatch(candidate):
        return candidate
    return new_request_id()


def bind(context: RequestContext) -> contextvars.Token:
    """Make ``context`` the current request context; return a token for ``reset``."""
    return _current.set(context)


def reset(token: contextvars.Token) -> None:
    """Restore the request context that was current before ``bind``."""
    _current.reset(token)


def current() -> RequestContext | None:
    """Return the current request context, or ``None`` outside a request, task or command."""
    return _current.get()


def current_request_id() -> str | None:
    """The request id of the work in progress (django-auditlog's correlation id getter)."""
    bound_context = _current.get()
    return bound_context.request_id if bound_context else None


def current_user_id() -> str | None:
    """The id of the authenticated user of the work in progress, if already known (no query)."""
    bound_context = _current.get()
    return bound_context.user_id() if bound_context else None


def current_actor() -> Any:
    """The acting user, or ``None`` for the system (a command, a task, a shell) or an anonymous request."""
    bound_context = _current.get()
    return bound_context.actor() if bound_context else None


@contextlib.contextmanager
def bound(
    *, request_id: str | None = None, client_ip: str | None = None, user_agent: str = "", user_source: Any = None
):
    """Bind a request context for the duration of a ``with`` block (tasks, commands, tests).

    ``request_id`` goes through ``accept_request_id`` (a malformed one is replaced) and
    ``client_ip`` must parse as an address or is dropped.
    """
    token = bind(
        RequestContext(
            request_id=accept_request_id(request_id),
            client_ip=valid_ip(client_ip),
            user_agent=(user_agent or "")[:USER_AGENT_MAX_LENGTH],
            user_source=user_source,
        )
    )
    try:
        yield current()
    finally:
        reset(token)


@contextlib.contextmanager
def acting_as(user: Any):
    """Make ``user`` the acting user for a block (commands, tests), keeping the bound ids."""
    bound_context = _current.get() or RequestContext(request_id=new_request_id())
    token = bind(dataclasses.replace(bound_context, user_source=user))
    try:
        yield
    finally:
        reset(token)


# Commands that serve requests or tasks bind their own context per request or task.
_LONG_RUNNING_COMMANDS = frozenset({"runserver", "testserver"})


@contextlib.contextmanager
def command_bound(argv: list[str]):
    """Bind a ``cmd-`` run id for one ``manage.py`` command, so its events and log lines share one id.

    Servers are left alone: each request binds its own.
    """
    command = argv[1] if len(argv) > 1 else ""
    if command in _LONG_RUNNING_COMMANDS:
        yield None
        return
    with bound(request_id=f"cmd-{new_request_id()}") as context:
        yield context
