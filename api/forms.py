"""Forms of the API key page and the admin: they validate input shape; the services decide."""

from __future__ import annotations

import datetime

from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import MaxValueValidator
from django.utils import timezone

from api import conf
from api.scopes import SCOPE_CHOICES


class ApiKeyIssueForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses this key, e.g. “CI deploy job”.")
    scopes = forms.MultipleChoiceField(
        choices=SCOPE_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        help_text="Grant only what the caller needs. A key never does more than its account may.",
    )
    lifetime_days = forms.IntegerField(
        min_value=1,
        label="Valid for (days)",
        help_text="The key expires after this many days.",
    )
    allowed_networks = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Allowed networks (optional)",
        help_text="One IP address or CIDR network per line, e.g. 203.0.113.0/24. Empty: any network.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        maximum = conf.get("API_KEY_MAX_LIFETIME_DAYS")
        field = self.fields["lifetime_days"]
        field.max_value = maximum
        field.validators.append(MaxValueValidator(maximum))
        field.widget.attrs["max"] = maximum
        field.initial = conf.get("API_KEY_DEFAULT_LIFETIME_DAYS")
        field.help_text = f"The key expires after this many days (at most {maximum})."

    def clean_allowed_networks(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["allowed_networks"].splitlines() if line.strip()]

    def expires_at(self) -> datetime.datetime:
        return timezone.now() + datetime.timedelta(days=self.cleaned_data["lifetime_days"])


class AdminApiKeyIssueForm(ApiKeyIssueForm):
    """The admin's issue form: the owner is any active account (a person or a service account)."""

    owner = forms.ModelChoiceField(queryset=get_user_model().objects.none(), help_text="Who the key acts as.")

    field_order = ["owner", "name", "scopes", "lifetime_days", "allowed_networks"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = get_user_model().objects.filter(is_active=True).order_by("username")


class ApiKeyRotateForm(forms.Form):
    overlap_hours = forms.IntegerField(
        min_value=0,
        label="Keep the old key valid for (hours)",
        help_text="Time to deploy the new key; 0 ends the old key now.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        maximum = conf.get("API_KEY_ROTATION_MAX_OVERLAP_SECONDS") // 3600
        field = self.fields["overlap_hours"]
        field.validators.append(MaxValueValidator(maximum))
        field.widget.attrs["max"] = maximum
        field.initial = conf.get("API_KEY_ROTATION_OVERLAP_SECONDS") // 3600


class ApiKeyRevokeForm(forms.Form):
    reason = forms.CharField(max_length=200, required=False, help_text="Optional: why (kept in the audit trail).")


class ServiceAccountForm(forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
