"""Failure counters for lockout and MFA throttling (see ``accounts.services.lockout``)."""

from __future__ import annotations

from django.db import models

# The ``address`` of the row that counts an account's failures from every IP.
ACCOUNT_SCOPE = ""


class FailureCounter(models.Model):
    """Consecutive failures of one kind against one account, from one client IP or from all.

    ``username`` is the *normalised* attempted username, whether or not an account has it, so
    the lockout behaves the same for unknown names (nothing reveals whether an account exists)
    and ``Alice`` / `` alice`` / ``ＡＬＩＣＥ`` share one counter. ``address`` is the client IP
    for a per-(account, IP) counter and ``""`` for the per-account one.
    """

    class Kind(models.TextChoices):
        PASSWORD = "password", "Password"
        MFA = "mfa", "MFA code"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    username = models.CharField(max_length=150)
    address = models.CharField(max_length=45, blank=True, default=ACCOUNT_SCOPE)
    # Failures since the last success or lock (attempts in flight count: they are reserved first).
    failure_count = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    # Locks so far; picks the next, longer cool-off. Cleared by a success or a quiet period.
    lock_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "username", "address"], name="accounts_failure_counter_unique")
        ]
        indexes = [models.Index(fields=["locked_until"], name="accounts_failure_locked")]

    def __str__(self) -> str:
        scope = self.address or "all addresses"
        return f"{self.kind} failures of {self.username} ({scope})"
