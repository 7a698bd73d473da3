"""Authentication backend that compares usernames in their normalised form, behind the lockout."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend

from accounts.normalisation import normalise_username


class NormalisedUsernameBackend(ModelBackend):
    """Django's ``ModelBackend``, with the submitted username normalised before the look-up.

    Called with a request (any ``authenticate(request, ...)`` outside our login pages: DRF basic
    authentication, a third-party view), it goes through ``accounts.services.authentication.
    password_check``: the same lockout counters and audit events as the login page, and only
    active accounts with a verified email. Without a request (shell, tests) it is the plain
    ``ModelBackend`` on the normalised username.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        if username is None or password is None:
            return None
        if request is not None:
            from accounts.services.authentication import Result, password_check
            from core.requests import base_url, client_ip

            check = password_check(
                username=username, password=password, client_ip=client_ip(request), base_url=base_url(request)
            )
            return check.user if check.result is Result.OK else None
        return super().authenticate(request, username=normalise_username(username), password=password)

    def user_can_authenticate(self, user):
        return super().user_can_authenticate(user) and getattr(user, "email_verified", True)

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD
