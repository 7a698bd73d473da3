from django.apps import AppConfig
from django.core import checks


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core.checks import check_deployment_policy

        checks.register(check_deployment_policy, checks.Tags.security)
