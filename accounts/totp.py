"""TOTP arithmetic (RFC 6238) on top of django-otp's HOTP, and the backup-code format.

Parameters are fixed by ``SECURITY-STANDARDS.md``: 30-second steps, 6 digits, HMAC-SHA-1 (what
every authenticator app supports), and at most one step of drift either way (RFC 6238 §5.2).
Unlike django-otp's ``TOTPDevice`` we never *learn* drift (``OTP_TOTP_SYNC``): a learnt drift
moves the window, so a device could end up accepting codes several steps away from the
server's clock.
"""

from __future__ import annotations

import base64
import re
import secrets
import time

from django_otp.oath import hotp

STEP_SECONDS = 30
DIGITS = 6
TOLERANCE_STEPS = 1
KEY_BYTES = 20  # 160 bits, the HMAC-SHA-1 block-size recommendation of RFC 4226 §4

TOTP_CODE_PATTERN = re.compile(r"^[0-9]{6}$")
# Backup codes: 12 characters of a 32-symbol alphabet without the look-alikes 0/O and 1/I:
# 12 × 5 = 60 bits of entropy each (the issue asks for at least 50; ASVS 2.6.2 accepts fewer
# than 112 bits when the code is stored salted and hashed, which it is).
BACKUP_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
BACKUP_CODE_LENGTH = 12
BACKUP_CODE_PATTERN = re.compile(rf"^[{BACKUP_CODE_ALPHABET}]{{{BACKUP_CODE_LENGTH}}}$")
# Longest input the code field accepts (a backup code with separators and spaces).
CODE_INPUT_MAX_LENGTH = 32


def new_key() -> bytes:
    """Return a fresh random TOTP key (20 bytes from the OS CSPRNG)."""
    return secrets.token_bytes(KEY_BYTES)


def key_to_base32(key: bytes) -> str:
    """The key as authenticator apps take it: base32 without padding (RFC 4648 §6)."""
    return base64.b32encode(key).decode("ascii").rstrip("=")


def time_step(at: float | None = None) -> int:
    """The RFC 6238 time step ``T`` of a Unix time (T0 = 0)."""
    return int(time.time() if at is None else at) // STEP_SECONDS


def code_at_step(key: bytes, step: int, *, digits: int = DIGITS) -> str:
    """The code of time step ``step``, zero-padded to ``digits``."""
    return str(hotp(key, step, digits=digits)).zfill(digits)


def matching_step(key: bytes, code: str, *, at: float | None = None, digits: int = DIGITS) -> int | None:
    """Return the time step within ±1 of now whose code is ``code``, or ``None``.

    The current step is tried first, then the previous one, then the next one. Comparison is
    constant-time per candidate.
    """
    if len(code) != digits or not all("0" <= character <= "9" for character in code):
        return None
    current = time_step(at)
    for step in (current, current - 1, current + 1):
        if secrets.compare_digest(code_at_step(key, step, digits=digits), code):
            return step
    return None


def normalise_code_input(value: str) -> str:
    """Strip what people type around a code: spaces and dashes; upper-case letters."""
    return re.sub(r"[\s-]", "", value or "").upper()


def new_backup_code() -> str:
    """Return a fresh backup code (60 bits from the OS CSPRNG)."""
    return "".join(secrets.choice(BACKUP_CODE_ALPHABET) for _ in range(BACKUP_CODE_LENGTH))


def format_backup_code(code: str) -> str:
    """``ABCDEFGHJKLM`` → ``ABCD-EFGH-JKLM`` for display."""
    return "-".join(code[index : index + 4] for index in range(0, len(code), 4))
