"""Secrets for the embedded default: generated once into ``var/secrets/`` and reused.

Production never calls this module: ``config.settings.production`` reads every secret from the
environment (or a mounted file) and refuses to start without it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from encryption.keyring import format_key, generate_key_material


def _create_once(directory: Path, name: str) -> tuple[Path, int | None]:
    """Return ``directory/name`` and a descriptor to write it if this call created it (mode 0600).

    The descriptor is None if the file exists. ``O_EXCL`` makes two processes starting at once
    (web, worker, beat) agree on one value instead of overwriting each other's.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / name
    try:
        return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path, None


def load_or_create_secret(directory: Path, name: str, *, nbytes: int = 48) -> str:
    """Return the secret stored in ``directory/name``, creating it (mode 0600) if missing."""
    path, fd = _create_once(directory, name)
    if fd is None:
        value = path.read_text().strip()
        if value:
            return value
        raise RuntimeError(f"Secret file {path.name} in var/secrets is empty; delete it to regenerate.")
    value = secrets.token_urlsafe(nbytes)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def load_or_create_key_file(directory: Path, name: str, *, key_id_prefix: str = "local") -> Path:
    """Make sure ``directory/name`` holds a key ring (one ``id:BASE64KEY`` line); return its path.

    Used by the embedded default for the encryption key rings (``ENCRYPTION_KEY_PROVIDER=file``):
    a new 32-byte key is written once (mode 0600, ``O_EXCL`` as above) and never overwritten, so
    an operator can later put a new key on the first line to rotate.
    """
    path, fd = _create_once(directory, name)
    if fd is None:
        return path
    key = format_key(f"{key_id_prefix}-{secrets.token_hex(4)}", generate_key_material())
    with os.fdopen(fd, "w") as handle:
        handle.write(f"# {name} keys: the first encrypts, all decrypt. Never commit this file.\n{key}\n")
    return path
