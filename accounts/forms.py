"""Forms of the account pages: validation of shape only; decisions are made by the services."""

from __future__ import annotations

from django import forms
from django.contrib.auth import password_validation

from accounts import totp
from accounts.normalisation import CONTROL_CHARACTERS_MESSAGE, contains_control_characters, normalise_username
from accounts.services.authentication import USERNAME_MAX_LENGTH, username_is_acceptable

PASSWORD_MAX_LENGTH = 4096


class AccessibleFormMixin:
    """Ties each field's errors and help text to it with ``aria-describedby`` and marks invalid fields."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._update_aria()

    def full_clean(self):
        super().full_clean()
        self._update_aria()

    def add_error(self, field, error):
        super().add_error(field, error)
        self._update_aria()

    def _update_aria(self):
        errors = self._errors or {}
        for name, field in self.fields.items():
            described = []
            if field.help_text:
                described.append(f"id_{name}_help")
            if name in errors:
                described.append(f"id_{name}_error")
                field.widget.attrs["aria-invalid"] = "true"
            if described:
                field.widget.attrs["aria-describedby"] = " ".join(described)


class LoginForm(AccessibleFormMixin, forms.Form):
    username = forms.CharField(
        max_length=USERNAME_MAX_LENGTH + 50,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True, "autocapitalize": "none"}),
    )
    password = forms.CharField(
        max_length=PASSWORD_MAX_LENGTH,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    def clean_username(self):
        value = self.cleaned_data["username"]
        if not username_is_acceptable(normalise_username(value)):
            raise forms.ValidationError("Usernames cannot contain control characters.", code="invalid_username")
        return value


class CodeForm(AccessibleFormMixin, forms.Form):
    # No max_length here: a too-long code reaches the service, which refuses it as malformed,
    # records it and counts it like any wrong code (the bound only protects the server).
    code = forms.CharField(
        label="Authentication code",
        max_length=1000,
        help_text="The 6-digit code from your authenticator app, or one of your backup codes.",
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autofocus": True,
                "spellcheck": "false",
                "autocapitalize": "characters",
                "maxlength": str(totp.CODE_INPUT_MAX_LENGTH),
            }
        ),
    )


class ReauthenticateForm(AccessibleFormMixin, forms.Form):
    password = forms.CharField(
        max_length=PASSWORD_MAX_LENGTH,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )

    def __init__(self, *args, with_code: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if with_code:
            self.fields["code"] = CodeForm.base_fields["code"]
            self.fields["code"].widget.attrs.pop("autofocus", None)
            self.fields["code"].widget.attrs["aria-describedby"] = "id_code_help"


class DeviceNameForm(AccessibleFormMixin, forms.Form):
    name = forms.CharField(
        label="Name of the authenticator",
        max_length=64,
        initial="Authenticator app",
        help_text="So you can tell your devices apart, e.g. “Phone” or “Work laptop”.",
    )

    def clean_name(self):
        value = self.cleaned_data["name"]
        if contains_control_characters(value):
            raise forms.ValidationError(CONTROL_CHARACTERS_MESSAGE, code="control_characters")
        return value


class DeviceConfirmForm(AccessibleFormMixin, forms.Form):
    code = forms.CharField(
        label="Code from the app",
        max_length=1000,
        help_text="Enter the 6-digit code your app shows now.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


class SignUpForm(AccessibleFormMixin, forms.Form):
    username = forms.CharField(
        max_length=USERNAME_MAX_LENGTH,
        help_text="Letters, digits and @ . + - _ only; not case-sensitive.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}),
    )
    email = forms.EmailField(max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password1 = forms.CharField(
        label="Password",
        max_length=PASSWORD_MAX_LENGTH,
        strip=False,
        help_text="At least 12 characters; not a common password.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label="Password again",
        max_length=PASSWORD_MAX_LENGTH,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_username(self):
        from django.contrib.auth.validators import UnicodeUsernameValidator

        value = normalise_username(self.cleaned_data["username"])
        if not username_is_acceptable(value):
            raise forms.ValidationError("Usernames cannot contain control characters.", code="invalid_username")
        UnicodeUsernameValidator()(value)
        return value

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password1") and cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return cleaned


class SetPasswordForm(AccessibleFormMixin, forms.Form):
    new_password1 = forms.CharField(
        label="New password",
        max_length=PASSWORD_MAX_LENGTH,
        strip=False,
        help_text="At least 12 characters; not a common password.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password", "autofocus": True}),
    )
    new_password2 = forms.CharField(
        label="New password again",
        max_length=PASSWORD_MAX_LENGTH,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, user=None, **kwargs):
        self.user = user
        super().__init__(*args, **kwargs)

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("new_password1"), cleaned.get("new_password2")
        if first and first != second:
            self.add_error("new_password2", "The two passwords differ.")
        elif first:
            try:
                password_validation.validate_password(first, self.user)
            except forms.ValidationError as error:
                self.add_error("new_password1", error)
        return cleaned


class EmailForm(AccessibleFormMixin, forms.Form):
    email = forms.EmailField(
        max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )


class PasswordChangeForm(SetPasswordForm):
    """The new password twice, and whether the API keys go too (OWASP ASVS 4.0.3 V3.3.3: offered, on by default)."""

    revoke_api_keys = forms.BooleanField(
        label="Also revoke all my API keys",
        required=False,
        initial=True,
        help_text="Scripts and tools using them stop working until you issue new keys. "
        "Leave this on if someone else may have known your password.",
    )
