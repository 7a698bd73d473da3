"""The memories app: organizations, teams, contexts, memories, their permissions and API v1."""

from django.apps import AppConfig


class MemoriesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "memories"
    verbose_name = "Memories"
