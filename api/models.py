"""Models of the API security layer: service accounts, API keys, the nonce store, deprecated calls.

The key's secret is never stored: ``secret_hash`` is a keyed hash (``api/keys.py`` explains why
HMAC-SHA256 and not Argon2). The signing secret of signed requests must be usable by the server,
so it is stored encrypted with the key ring (the crypto core's ``EncryptedTextField``, AES-256-GCM,
bound to this column).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from encryption.fields import EncryptedTextField


class ServiceAccount(models.Model):
    """A non-human principal: a user row that cannot sign in, used only through its API keys.

    It is a ``User`` underneath so that memberships, shares and every permission rule apply to
    it unchanged; this row marks it as a service account and says who is responsible for it.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="service_account")
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def audit_repr(self) -> str:
        return f"service account {self.name}"


class ApiKeyQuerySet(models.QuerySet):
    def usable(self, *, now=None):
        """Keys that authenticate now: not revoked, not expired."""
        now = now or timezone.now()
        return self.filter(revoked_at__isnull=True, expires_at__gt=now)


class ApiKey(models.Model):
    """A credential for service-to-service calls, acting as ``user`` within ``scopes``.

    A key never grants more than its user may do; scopes only narrow it. ``user`` is a person or
    the user of a ``ServiceAccount``.
    """

    prefix = models.CharField(max_length=12, unique=True, help_text="Public identifier, shown in lists and logs.")
    name = models.CharField(max_length=100)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    secret_hash = models.CharField(max_length=64, editable=False)
    signing_secret = EncryptedTextField(editable=False)
    scopes = models.JSONField(default=list)
    # CIDR networks the key may be used from; empty: anywhere.
    allowed_networks = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revocation_reason = models.CharField(max_length=200, blank=True, default="")
    rotated_from = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="successor"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["user", "revoked_at", "expires_at"], name="api_apikey_user_usable")]
        verbose_name = "API key"
        permissions = [("revoke_apikey", "Can revoke API keys")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    def audit_repr(self) -> str:
        return f"API key {self.prefix}"

    @property
    def display_prefix(self) -> str:
        """How the key is named to people: ``nvk_<prefix>…``."""
        return f"nvk_{self.prefix}…"

    def status(self, now=None) -> str:
        """``active``, ``expiring`` (rotated, inside its overlap window), ``expired`` or ``revoked``."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        if self.successor_id_or_none() is not None:
            return "expiring"
        return "active"

    def successor_id_or_none(self):
        try:
            return self.successor.pk
        except ApiKey.DoesNotExist:
            return None

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class RequestNonce(models.Model):
    """A nonce of a signed request, kept for the signature window so a replay is refused.

    The unique constraint makes the check atomic across processes and machines: two requests
    with one nonce race to insert, and exactly one wins.
    """

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    nonce = models.CharField(max_length=64)
    seen_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "nonce"], name="api_requestnonce_unique")]

    def __str__(self) -> str:
        return f"nonce of key {self.api_key_id} at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class DeprecatedCall(models.Model):
    """Calls to one deprecated endpoint by one caller on one day, so owners can be told."""

    # "key:<id>", "user:<id>" or "ip:<address>": one column so the unique constraint holds.
    caller = models.CharField(max_length=80)
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="deprecated_calls"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    endpoint = models.CharField(max_length=200, help_text="Method and route, e.g. GET /api/v1/memories/.")
    day = models.DateField()
    count = models.PositiveBigIntegerField(default=0)
    first_at = models.DateTimeField(default=timezone.now)
    last_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["caller", "endpoint", "day"], name="api_deprecatedcall_unique")]
        ordering = ["-day", "endpoint"]

    def __str__(self) -> str:
        return f"{self.caller} {self.endpoint} {self.day}: {self.count}"
