from django.apps import AppConfig


class ApiConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "api"
    verbose_name = "API security"

    def ready(self) -> None:
        from api import checks, receivers, schema  # noqa: F401  (system checks, receivers, the OpenAPI extension)
