"""The encryption app: key ring, encrypted fields, blind index, key rotation."""

from django.apps import AppConfig
from django.core import checks


class EncryptionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "encryption"
    verbose_name = "Encryption"

    def ready(self) -> None:
        from encryption.checks import check_encryption_keys
        from encryption.crypto import decryption_failed
        from encryption.receivers import record_decryption_failure

        checks.register(check_encryption_keys, checks.Tags.security)
        decryption_failed.connect(record_decryption_failure, dispatch_uid="encryption.record_decryption_failure")
