"""DRF authentication with API keys sent as ``Authorization: Bearer nvk_<prefix>_<secret>``.

Timing (OWASP ASVS 4.0.3 V2.2.1; the Authentication Cheat Sheet's "response time" advice): every
attempt does the same work whatever is wrong with it — one indexed query by prefix (a malformed
key queries an impossible prefix), one HMAC of the presented key, one constant-time comparison
with the stored hash (a dummy hash when no row matched), the same validity checks, and for any
failure one audit insert. So an unknown key, a wrong secret, an expired or revoked key take the
same time: ``tests/api/test_authentication_work.py`` checks that the work is the same,
``bench/api_timing_bench.py`` measures the times with a planted leak as its yardstick.
"""

from __future__ import annotations

import hmac
import ipaddress

from rest_framework import authentication

import audit
from api import keys, selectors, services
from api.exceptions import KeyRefused
from api.models import ApiKey
from api.refusals import record_refusal

# Compared against when no key row matched, so the comparison always happens.
_DUMMY_HASH = "0" * 64
# A prefix no key can have (keys use lower-case base32 only), queried for malformed keys.
_IMPOSSIBLE_PREFIX = "!"


def _network_allows(networks: list[str], client_ip: str | None) -> bool:
    if not networks:
        return True
    if not client_ip:
        return False
    address = ipaddress.ip_address(client_ip)
    for network in networks:
        try:
            if address in ipaddress.ip_network(network, strict=False):
                return True
        except ValueError:
            continue
    return False


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticate a request by its API key; ``request.auth`` is the ``ApiKey``."""

    keyword = keys.AUTHORIZATION_SCHEME

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION")
        if not header:
            return None
        credential = keys.key_from_authorization(header)
        if credential is None:
            return None
        return self.authenticate_credential(request, credential)

    def authenticate_credential(self, request, credential: str):
        prefix = keys.parse_key(credential)
        key = selectors.api_key_for_authentication(prefix=prefix or _IMPOSSIBLE_PREFIX)
        presented = keys.hash_key(credential)
        matches = hmac.compare_digest(presented, key.secret_hash if key is not None else _DUMMY_HASH)
        client_ip = getattr(request, "client_ip", None) or getattr(request._request, "client_ip", None)
        reason = self._refusal_reason(key, matches, client_ip)
        if reason is not None:
            self._refuse(request, reason=reason, key=key if matches else None, attempted_prefix=prefix)
        services.api_key_mark_used(api_key=key, client_ip=client_ip)
        # Visible to the middleware and the audit trail (the DRF request wraps this one).
        request._request.api_key = key
        return key.user, key

    @staticmethod
    def _refusal_reason(key: ApiKey | None, matches: bool, client_ip: str | None) -> str | None:
        # Every check is evaluated on every path, so the failure paths cost the same.
        exists = key is not None
        usable = exists and key.is_usable
        active_user = exists and key.user.is_active
        network_ok = exists and _network_allows(key.allowed_networks, client_ip)
        if not exists:
            return "unknown_key"
        if not matches:
            return "wrong_secret"
        if key.revoked_at is not None:
            return "revoked"
        if not usable:
            return "expired"
        if not active_user:
            return "inactive_user"
        if not network_ok:
            return "network_not_allowed"
        return None

    @staticmethod
    def _refuse(request, *, reason: str, key: ApiKey | None, attempted_prefix: str | None):
        # The key is named only when the secret matched (the caller holds it); for an unknown
        # key or a wrong secret only the attempted public prefix is kept, never the secret.
        record_refusal(
            request=request,
            action=audit.Action.API_KEY_REFUSED,
            outcome=audit.Outcome.FAILURE if reason in {"unknown_key", "wrong_secret"} else audit.Outcome.DENIED,
            reason=reason,
            status=401,
            api_key=key,
            actor=key.user if key is not None else None,
            context={"attempted_prefix": attempted_prefix or ""} if key is None else None,
        )
        error = KeyRefused()
        error.audited = True
        raise error

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'
