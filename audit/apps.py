from django.apps import AppConfig


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from audit import admin_log, checks  # noqa: F401  (checks register themselves)

        admin_log.connect()
        from audit.receivers import record_applied_migrations

        # sender=self: once per migrate run (Django sends post_migrate once per app, same plan).
        post_migrate.connect(record_applied_migrations, sender=self, dispatch_uid="audit.record_applied_migrations")
