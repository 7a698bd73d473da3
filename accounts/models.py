"""The identity model."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models.functions import Lower

from accounts.normalisation import normalise_email, normalise_username


class NormalisingUserManager(UserManager):
    """A user manager that looks accounts up and creates them by their normalised identifiers."""

    def get_by_natural_key(self, username: str):
        return self.get(username=normalise_username(username))

    def _create_user(self, username, email, password, **extra_fields):
        return super()._create_user(normalise_username(username), normalise_email(email or ""), password, **extra_fields)

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

    objects = NormalisingUserManager()

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            models.UniqueConstraint(Lower("username"), name="accounts_user_username_ci_unique"),
            models.UniqueConstraint(
                Lower("email"),
                name="accounts_user_email_ci_unique",
                condition=~models.Q(email=""),
            ),
        ]

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
