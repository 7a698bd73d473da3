"""Authentication backend that compares usernames in their normalised form."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from accounts.normalisation import normalise_username


class NormalisedUsernameBackend(ModelBackend):
    """Django's ``ModelBackend``, with the submitted username normalised before the look-up."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is not None:
            username = normalise_username(username)
        return super().authenticate(request, username=username, password=password, **kwargs)
