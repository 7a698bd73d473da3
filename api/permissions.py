"""DRF permissions of the API security layer: key scopes and signed requests.

Both apply to requests authenticated with an API key only; a browser session acts with its
user's full rights. Views declare ``required_scopes`` (method → scope, e.g. ``{"GET":
"memories:read"}``) and ``signature_required_methods`` (e.g. ``{"DELETE"}``). A view under
/api/ that declares no scope for a method refuses keys for it (fail closed).
Why sessions are not signed: docs/decisions/request-signing.md.
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

import audit
from api import services, signing
from api.exceptions import InsufficientScope, SignatureInvalid, SignatureRequired
from api.models import ApiKey
from api.refusals import record_refusal

_READ_ALIASES = {"HEAD": "GET", "OPTIONS": "GET"}


def required_scope(view, method: str) -> str | None:
    """The scope ``view`` needs for ``method`` (HEAD and OPTIONS need GET's)."""
    scopes = getattr(view, "required_scopes", None) or {}
    return scopes.get(method) or scopes.get(_READ_ALIASES.get(method, ""))


def needs_signature(view, method: str) -> bool:
    return method in (getattr(view, "signature_required_methods", None) or ())


class ApiKeyScopes(BasePermission):
    """A key may do only what its scopes name (403 ``insufficient_scope`` otherwise)."""

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return True
        scope = required_scope(view, request.method)
        if scope is not None and scope in key.scopes:
            return True
        reason = "insufficient_scope" if scope is not None else "no_scope_for_endpoint"
        record_refusal(
            request=request,
            action=audit.Action.PERMISSION_DENIED,
            reason=reason,
            status=403,
            api_key=key,
            actor=key.user,
            context={"required_scope": scope or ""},
        )
        error = InsufficientScope(reason=reason)
        error.audited = True
        raise error


class SignedRequest(BasePermission):
    """Critical operations made with a key must be signed (OWASP ASVS 4.0.3 V13.2.6)."""

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey) or not needs_signature(view, request.method):
            return True
        try:
            nonce = signing.verify(request._request, api_key=key)
        except signing.SignatureError as error:
            self._refuse(request, key, error.reason, missing=error.missing)
        if not services.request_nonce_consume(api_key=key, nonce=nonce):
            self._refuse(request, key, "nonce_replayed", missing=False)
        return True

    @staticmethod
    def _refuse(request, key: ApiKey, reason: str, *, missing: bool):
        record_refusal(
            request=request,
            action=audit.Action.REQUEST_SIGNATURE_FAILED,
            outcome=audit.Outcome.FAILURE,
            reason=reason,
            status=401,
            api_key=key,
            actor=key.user,
        )
        error = SignatureRequired(reason=reason) if missing else SignatureInvalid(reason=reason)
        error.audited = True
        raise error
