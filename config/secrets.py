"""Secrets for the embedded default: generated once into ``var/secrets/`` and reused.

Production never calls this module: ``config.settings.production`` reads every secret from the
environment (or a mounted file) and refuses to start without it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create_secret(directory: Path, name: str, *, nbytes: int = 48) -> str:
    """Return the secret stored in ``directory/name``, creating it (mode 0600) if missing.

    The file is created with ``O_EXCL`` so two processes starting at once (web, worker, beat)
    agree on one value instead of overwriting each other's.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / name
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        value = path.read_text().strip()
        if value:
            return value
        raise RuntimeError(f"Secret file {path.name} in var/secrets is empty; delete it to regenerate.") from None
    value = secrets.token_urlsafe(nbytes)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value
