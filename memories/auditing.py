"""Recording refusals of the memories domain in the audit trail.

A service that refuses (``NotFound``/``PermissionDenied``) raises inside its own transaction, and
an event recorded there would roll back with it. So refusals are recorded by this decorator,
outside the service's transaction, once: the exception is marked, and the API's exception
handling records only refusals that no service recorded (look-ups of the object in the URL).
OWASP ASVS 4.0.3 V7.2.2: every failed access decision is logged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import audit
from memories.exceptions import NotFound, PermissionDenied

# The same mark the API exception handler honours (api.errors), so a refusal is recorded once.
_RECORDED = "audited"


def record_refusal(*, actor, attempted: str, error: Exception, target: Any = None) -> None:
    """Record one refused access (404 or 403 to the caller) unless it was recorded already."""
    if getattr(error, _RECORDED, False):
        return
    audit.record(
        action=audit.Action.PERMISSION_DENIED,
        outcome=audit.Outcome.DENIED,
        actor=actor,
        target=target,
        context={"attempted": attempted, "answer": 404 if isinstance(error, NotFound) else 403},
    )
    setattr(error, _RECORDED, True)


def audit_refusals(attempted: str, *, target_argument: str | None = None) -> Callable:
    """Decorate a service so a refusal it raises is recorded as ``PERMISSION_DENIED``.

    ``target_argument`` names the keyword argument holding the object acted on, so the event
    says which object was refused (a hidden object's id is not secret to the audit trail).
    """

    def decorate(service: Callable) -> Callable:
        @functools.wraps(service)
        def wrapper(*args, **kwargs):
            try:
                return service(*args, **kwargs)
            except (NotFound, PermissionDenied) as error:
                target = kwargs.get(target_argument) if target_argument else None
                record_refusal(actor=kwargs.get("actor"), attempted=attempted, error=error, target=target)
                raise

        return wrapper

    return decorate
