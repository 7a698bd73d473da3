"""Recording refused API requests in the audit trail (OWASP ASVS 4.0.3 V7.1.3, V7.2.2).

Every decision of the API security layer that refuses a request records one event here: which
rule refused it (``reason``), the status answered, the method and the path — never the query
string, a header value, the body or a secret. Call it outside any transaction that is rolled
back (the refusals of this layer happen before the view opens one).
"""

from __future__ import annotations

from typing import Any

import audit
from api import keys
from core.requests import request_api_key, request_user

PATH_MAX_LENGTH = 200


def safe_path(path: str) -> str:
    """The request path for an event: bounded, and with anything key-like cut to its prefix."""
    path = path[:PATH_MAX_LENGTH]
    return keys.KEY_PATTERN.sub(lambda match: f"nvk_{match.group(1)}_[REDACTED]", path)


def record_refusal(
    *,
    request,
    action: audit.Action | str,
    reason: str,
    status: int,
    api_key=None,
    actor: Any = None,
    context: dict | None = None,
    outcome: audit.Outcome | str = audit.Outcome.DENIED,
) -> None:
    """Record one refused request; ``api_key`` and ``actor`` default to what authenticated it."""
    api_key = api_key if api_key is not None else request_api_key(request)
    if actor is None:
        actor = request_user(request)
        if actor is None and api_key is not None and api_key.user_id is not None:
            actor = api_key.user
    audit.record(
        action=action,
        outcome=outcome,
        actor=actor,
        target=(("api.apikey", str(api_key.pk), api_key.audit_repr()) if api_key is not None else None),
        api_key_id=api_key.prefix if api_key is not None else None,
        context={
            "reason": reason,
            "status": status,
            "method": (request.method or "")[:10],
            "path": safe_path(request.path),
            **(context or {}),
        },
    )
