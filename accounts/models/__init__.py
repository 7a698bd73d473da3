"""The models of the accounts app, one module per concern."""

from accounts.models.lockout import FailureCounter
from accounts.models.mfa import BackupCode, BackupCodeDevice, TOTPDevice
from accounts.models.outbox import SecurityEmail, SecurityEmailStatus
from accounts.models.sessions import TrackedSession
from accounts.models.user import NormalisingUserManager, User, UserQuerySet

__all__ = [
    "BackupCode",
    "BackupCodeDevice",
    "FailureCounter",
    "NormalisingUserManager",
    "SecurityEmail",
    "SecurityEmailStatus",
    "TOTPDevice",
    "TrackedSession",
    "User",
    "UserQuerySet",
]
