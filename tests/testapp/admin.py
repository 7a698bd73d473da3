"""The admin of the test app: proves encrypted fields round-trip through the admin's forms."""

from django.contrib import admin

from tests.testapp.models import SecretRecord


@admin.register(SecretRecord)
class SecretRecordAdmin(admin.ModelAdmin):
    list_display = ("id", "label")
