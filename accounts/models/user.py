"""The identity model."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models.functions import Lower

from accounts.normalisation import normalise_email, normalise_username

# The fields whose change is a privilege change: audited, and rotating the user's session keys.
PRIVILEGE_FIELDS = ("is_staff", "is_superuser")


class UserQuerySet(models.QuerySet):
    """A query set whose ``update()`` audits privilege changes.

    ``QuerySet.update()`` bypasses ``save()`` and signals, which is how bulk changes escaped
    django-auditlog. Here an update that touches ``is_staff`` or ``is_superuser`` (the admin's
    bulk actions, ``bulk_update``, a shell session) goes through
    ``accounts.services.privileges.user_privileges_update``, which records one event per
    changed user in the same transaction.
    """

    def update(self, **kwargs):
        if not any(name in kwargs for name in PRIVILEGE_FIELDS):
            return super().update(**kwargs)
        from accounts.services.privileges import user_privileges_update

        return user_privileges_update(queryset=self, values=kwargs)

    def update_without_privilege_audit(self, **kwargs) -> int:
        """The plain ``update()``; only for the service that records the events itself."""
        return super().update(**kwargs)


class NormalisingUserManager(UserManager.from_queryset(UserQuerySet)):
    """A user manager that looks accounts up and creates them by their normalised identifiers."""

    def get_by_natural_key(self, username: str):
        return self.get(username=normalise_username(username))

    def _create_user(self, username, email, password, **extra_fields):
        return super()._create_user(
            normalise_username(username), normalise_email(email or ""), password, **extra_fields
        )

    def _create_user_object(self, username, email, password, **extra_fields):
        return super()._create_user_object(
            normalise_username(username), normalise_email(email or ""), password, **extra_fields
        )


class User(AbstractUser):
    """A person (or a service account) who signs in.

    Usernames and emails are stored normalised and are unique case-insensitively: the database
    constraint is the last line of defence behind the normalisation in ``clean()``.
    """

    email = models.EmailField("email address", blank=True)
    # Self-registered accounts start unverified and cannot log in until they follow the emailed
    # link; accounts created by an administrator or a command are trusted.
    email_verified = models.BooleanField(default=True)
    email_verification_sent_at = models.DateTimeField(null=True, blank=True)
    # When the "MFA for everyone" grace period of this user started (first login under the policy).
    mfa_grace_started_at = models.DateTimeField(null=True, blank=True)
    # Incremented on every privilege change; a session that saw another value rotates its key.
    privilege_version = models.PositiveIntegerField(default=0, editable=False)

    objects = NormalisingUserManager()

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        # The security administrator role (accounts/roles.py, docs/PERMISSIONS.md).
        # Deactivating and reactivating accounts: the console's security page (superusers, or
        # whoever is granted it); deleting uses Django's own ``delete_user``.
        permissions = [
            ("unlock_user", "Can unlock accounts (clear lockout counters)"),
            ("deactivate_user", "Can deactivate and reactivate accounts"),
        ]
        constraints = [
            models.UniqueConstraint(Lower("username"), name="accounts_user_username_ci_unique"),
            models.UniqueConstraint(
                Lower("email"),
                name="accounts_user_email_ci_unique",
                condition=~models.Q(email=""),
            ),
        ]

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        # The privileges as loaded, so the post_save receiver can tell what a save() changed
        # without another query.
        instance._loaded_privileges = {
            name: instance.__dict__.get(name) for name in PRIVILEGE_FIELDS if name in instance.__dict__
        }
        return instance

    def clean(self) -> None:
        super().clean()
        self.username = normalise_username(self.username)
        self.email = normalise_email(self.email)

    def save(self, *args, **kwargs) -> None:
        # Normalisation is a property of the stored value, not a business rule: it must hold
        # however the row is written (admin, API, createsuperuser, fixtures).
        self.username = normalise_username(self.username)
        self.email = normalise_email(self.email)
        super().save(*args, **kwargs)
