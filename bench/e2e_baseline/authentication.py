"""Header-key authentication: ``Authorization: Bearer KEY``, one indexed query by the key's SHA-256."""

import hashlib

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from bench.e2e_baseline.models import Key


class HeaderKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer KEY``: one indexed query by the key's SHA-256."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Bearer "):
            return None
        digest = hashlib.sha256(header[7:].encode()).hexdigest()
        key = Key.objects.select_related("owner").filter(digest=digest).first()
        if key is None:
            raise AuthenticationFailed("Invalid key.")
        return (key.owner, key)

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
