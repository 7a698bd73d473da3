"""Bootstrap of the first administrator (``manage.py ensure_admin``, used by ``make run``)."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.db import transaction

from accounts.normalisation import normalise_email, normalise_username


def administrator_ensure(*, username: str, email: str, password: str | None) -> tuple[object, str | None]:
    """Create the first superuser if the platform has none.

    Returns ``(user, generated_password)``; ``generated_password`` is set only when a password
    was generated here (the caller shows it once and never stores it). When a superuser already
    exists nothing changes and ``(existing, None)`` is returned. A supplied password must pass
    the configured validators (raises ``django.core.exceptions.ValidationError``).
    Permission: none needed — only operators with shell access can run this.
    """
    user_model = get_user_model()
    with transaction.atomic():
        existing = user_model.objects.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            return existing, None
        generated = None
        if not password:
            generated = password = secrets.token_urlsafe(18)
        candidate = user_model(username=normalise_username(username), email=normalise_email(email))
        validate_password(password, user=candidate)
        user = user_model.objects.create_superuser(username=username, email=email, password=password)
    return user, generated
