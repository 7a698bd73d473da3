"""Models for the encryption tests and benchmarks."""

from __future__ import annotations

from django.db import models

from encryption.fields import (
    BlindIndexField,
    EncryptedCharField,
    EncryptedDateField,
    EncryptedDateTimeField,
    EncryptedEmailField,
    EncryptedIntegerField,
    EncryptedJSONField,
    EncryptedTextField,
)


class SecretRecord(models.Model):
    """One of every encrypted field variant, and a blind index of the email."""

    label = models.CharField(max_length=50, blank=True)
    note = EncryptedTextField(blank=True, null=True)
    title = EncryptedCharField(max_length=120, blank=True, null=True)
    email = EncryptedEmailField(blank=True, null=True)
    email_index = BlindIndexField(source="email")
    metadata = EncryptedJSONField(blank=True, null=True)
    birthday = EncryptedDateField(blank=True, null=True)
    seen_at = EncryptedDateTimeField(blank=True, null=True)
    score = EncryptedIntegerField(blank=True, null=True)

    def __str__(self) -> str:
        return f"SecretRecord {self.pk}"


class EncryptedMemory(models.Model):
    """A memory with encrypted content and metadata (the benchmark's encrypted side)."""

    title = models.CharField(max_length=200)
    content = EncryptedTextField()
    metadata = EncryptedJSONField(default=dict)

    def __str__(self) -> str:
        return self.title


class PlainMemory(models.Model):
    """The plain twin of ``EncryptedMemory`` (the benchmark's baseline)."""

    title = models.CharField(max_length=200)
    content = models.TextField()
    metadata = models.JSONField(default=dict)

    def __str__(self) -> str:
        return self.title
