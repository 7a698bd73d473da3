"""The acting user of the work in progress, for writes that have no ``actor=`` argument.

``QuerySet.update()``, ``Model.save()`` and m2m changes cannot take an actor, yet their
privilege changes must name who made them. ``SessionSecurityMiddleware`` binds the request's
user here (lazily: resolving it costs nothing until an event needs it); outside a request the
actor is ``None`` (the system: a command, a task, a shell).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable
from typing import Any

_actor_source: contextvars.ContextVar[Callable[[], Any] | None] = contextvars.ContextVar(
    "accounts_actor_source", default=None
)


def bind_actor(source: Callable[[], Any]) -> contextvars.Token:
    """Make ``source()`` the acting user until ``reset``."""
    return _actor_source.set(source)


def reset(token: contextvars.Token) -> None:
    _actor_source.reset(token)


def current_actor() -> Any:
    """The acting user, or ``None`` for the system or an anonymous request."""
    source = _actor_source.get()
    if source is None:
        return None
    user = source()
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


@contextlib.contextmanager
def acting_as(user: Any):
    """Bind ``user`` as the actor for a block (commands, tests)."""
    token = bind_actor(lambda: user)
    try:
        yield
    finally:
        reset(token)
