"""The protected resource: organizations, teams, memberships, contexts, memories and shares.

Ownership rules are database constraints, not ``save()`` logic: a membership or a share names
exactly one target, a context exactly one owner that matches its scope, and a context's owner
foreign keys are ``PROTECT``. Memory ``content`` and ``metadata`` are encrypted fields, so no
query filters, searches, orders or indexes on them; tags live in their own table.
Why: docs/decisions/ownership-in-database-constraints.md.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from encryption.fields import EncryptedJSONField, EncryptedTextField


class Role(models.TextChoices):
    """A member's role in a team or an organization, from the least to the most powerful.

    Declaration order is the ranking: ``viewer < member < maintainer < admin < owner``.
    """

    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    MAINTAINER = "maintainer", "Maintainer"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"

    @property
    def rank(self) -> int:
        """The role's position in the ranking (viewer is 0, owner is 4)."""
        return list(type(self)).index(self)


class Organization(models.Model):
    """A company or group: owns organization contexts and contains teams."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    """A group of people inside an organization: owns team contexts."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="teams")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__name", "name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="memories_team_slug_unique_per_org"),
        ]

    def __str__(self) -> str:
        return f"{self.organization.slug}/{self.slug}"


class Membership(models.Model):
    """A user's role in exactly one team or one organization."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(team__isnull=False, organization__isnull=True) | Q(team__isnull=True, organization__isnull=False)
                ),
                name="memories_membership_exactly_one_target",
                violation_error_message="A membership is in exactly one team or one organization.",
            ),
            models.CheckConstraint(
                condition=Q(role__in=Role.values), name="memories_membership_role_valid"
            ),
            models.UniqueConstraint(
                fields=["user", "team"], condition=Q(team__isnull=False), name="memories_membership_unique_team"
            ),
            models.UniqueConstraint(
                fields=["user", "organization"],
                condition=Q(organization__isnull=False),
                name="memories_membership_unique_organization",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.role} of {self.team or self.organization}"

    @property
    def target(self) -> Team | Organization:
        """The team or organization this membership is in."""
        return self.team if self.team_id else self.organization


class Context(models.Model):
    """A named collection of memories, owned by one user, one team or one organization."""

    class Scope(models.TextChoices):
        PERSONAL = "personal", "Personal"
        TEAM = "team", "Team"
        ORGANIZATION = "organization", "Organization"

    name = models.CharField(max_length=200)
    scope = models.CharField(max_length=20, choices=Scope.choices)
    owner_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="owned_contexts"
    )
    owner_team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.PROTECT, related_name="contexts")
    owner_organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="contexts"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # Exactly one owner, and it is the kind the scope names. A context whose scope says
            # "team" but whose owner is a user would be read by the wrong permission rule.
            models.CheckConstraint(
                condition=(
                    Q(
                        scope="personal",
                        owner_user__isnull=False,
                        owner_team__isnull=True,
                        owner_organization__isnull=True,
                    )
                    | Q(
                        scope="team",
                        owner_user__isnull=True,
                        owner_team__isnull=False,
                        owner_organization__isnull=True,
                    )
                    | Q(
                        scope="organization",
                        owner_user__isnull=True,
                        owner_team__isnull=True,
                        owner_organization__isnull=False,
                    )
                ),
                name="memories_context_owner_matches_scope",
                violation_error_message="A context has exactly one owner, of the kind its scope names.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def owner(self):
        """The user, team or organization that owns this context."""
        if self.scope == self.Scope.PERSONAL:
            return self.owner_user
        if self.scope == self.Scope.TEAM:
            return self.owner_team
        return self.owner_organization


class Memory(models.Model):
    """One remembered item: a note, a command, AI context or a snippet."""

    class Kind(models.TextChoices):
        NOTE = "note", "Note"
        COMMAND = "command", "Command"
        AI_CONTEXT = "ai_context", "AI context"
        SNIPPET = "snippet", "Snippet"

    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="memories")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="authored_memories"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.NOTE)
    # Where the memory came from ("cli", "vscode", "chat"); free text, short.
    source = models.CharField(max_length=100, blank=True, default="")
    # Encrypted at rest later: never filtered, ordered or indexed in SQL.
    # Encrypted at rest (AES-256-GCM, bound to this model and column): OWASP ASVS 4.0.3 V8.3.7.
    content = EncryptedTextField()
    metadata = EncryptedJSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "memories"
        indexes = [
            # The list endpoint: one context (or a set of them), newest first, optionally by kind.
            models.Index(fields=["context", "-created_at", "-id"], name="memories_mem_ctx_created_idx"),
            models.Index(fields=["context", "kind", "-created_at"], name="memories_mem_ctx_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"


class MemoryTag(models.Model):
    """A normalised (lower-case) tag on a memory; its own table so filtering needs no JSON lookups."""

    memory = models.ForeignKey(Memory, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=50, db_index=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["memory", "name"], name="memories_tag_unique_per_memory"),
        ]

    def __str__(self) -> str:
        return self.name


class ContextShare(models.Model):
    """A grant of read, write or admin on one context to one user or one team."""

    class Permission(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Write"
        ADMIN = "admin", "Admin"

    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="context_shares"
    )
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="context_shares")
    permission = models.CharField(max_length=10, choices=Permission.choices, default=Permission.READ)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False, team__isnull=True) | Q(user__isnull=True, team__isnull=False)),
                name="memories_share_exactly_one_grantee",
                violation_error_message="A share is granted to exactly one user or one team.",
            ),
            models.CheckConstraint(
                condition=Q(permission__in=["read", "write", "admin"]), name="memories_share_permission_valid"
            ),
            models.UniqueConstraint(
                fields=["context", "user"], condition=Q(user__isnull=False), name="memories_share_unique_user"
            ),
            models.UniqueConstraint(
                fields=["context", "team"], condition=Q(team__isnull=False), name="memories_share_unique_team"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.permission} on {self.context_id} to {self.user or self.team}"

    @property
    def grantee(self):
        """The user or team this share grants to."""
        return self.user if self.user_id else self.team


class ContextTransferOffer(models.Model):
    """An owner's offer to give a context to another user, which only that user can accept.

    Nothing moves until the recipient accepts; on acceptance the recipient also decides which of
    the context's shares survive (the pen-test finding: a context pushed into someone's personal
    space with the sender's shares intact kept the sender reading what the victim wrote there).
    At most one offer per context is pending.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        DECLINED = "declined", "Declined"
        WITHDRAWN = "withdrawn", "Withdrawn"
        EXPIRED = "expired", "Expired"

    context = models.ForeignKey(Context, on_delete=models.CASCADE, related_name="transfer_offers")
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="transfer_offers_sent"
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="transfer_offers_received"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["context"], condition=Q(status="pending"), name="memories_transfer_offer_one_pending"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "accepted", "declined", "withdrawn", "expired"]),
                name="memories_transfer_offer_status_valid",
            ),
        ]
        indexes = [models.Index(fields=["recipient", "status"], name="memories_offer_recipient_idx")]

    def __str__(self) -> str:
        return f"offer of context {self.context_id} to user {self.recipient_id} ({self.status})"
