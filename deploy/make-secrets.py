#!/usr/bin/env python3
"""Generate the secrets folder of a new compose deployment (deploy/compose.yaml): standard library only.

    python3 deploy/make-secrets.py FOLDER [--site-host HOST]

Writes one file per secret, each readable only by the uid of the container that reads it (when run
as root; otherwise readable by all, for rootless podman, with a warning): the Django secret key,
the API-key hash key, one key ring per encryption purpose, the passwords of the PostgreSQL
superuser, migration owner and runtime roles and the database URLs that carry them, Redis's
password and the URLs that carry it, and a self-signed TLS certificate for the proxy (made by the
openssl program; replace ``proxy_certificate`` with your own certificate and key in one PEM file).
FOLDER must not exist yet: an existing deployment's secrets are never overwritten. Nothing secret
is printed.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# The containers' fixed uids (deploy/Containerfile, deploy/services/*.Containerfile).
APP_UID, POSTGRES_UID, REDIS_UID, PROXY_UID = 10001, 10002, 10003, 10004
# encryption.keyring.PURPOSES, and its key text "id:BASE64" of 32 random bytes.
ENCRYPTION_PURPOSES = ("field", "blind_index", "audit_chain", "backup", "audit_archive", "audit_checkpoint")
OWNER_ROLE, APP_ROLE, DATABASE = "ninaivalaigal_owner", "ninaivalaigal_app", "ninaivalaigal"
HOST_PATTERN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


def key_text(purpose: str) -> str:
    return f"{purpose}-1:{base64.b64encode(secrets.token_bytes(32)).decode('ascii')}"


def secret_values() -> dict[str, tuple[str, int]]:
    """Every secret but the certificate: file name -> (content, uid of its reader)."""
    postgres, owner, app, redis = (secrets.token_hex(24) for _ in range(4))
    values = {
        "secret_key": (secrets.token_urlsafe(50), APP_UID),
        "api_key_hash_key": (secrets.token_urlsafe(48), APP_UID),
        "metrics_token": (secrets.token_urlsafe(32), APP_UID),
        "postgres_password": (postgres, POSTGRES_UID),
        "database_admin_url": (f"postgres://postgres:{postgres}@postgres:5432/{DATABASE}", APP_UID),
        "database_owner_password": (owner, APP_UID),
        "database_app_password": (app, APP_UID),
        "database_owner_url": (f"postgres://{OWNER_ROLE}:{owner}@postgres:5432/{DATABASE}", APP_UID),
        "database_url": (f"postgres://{APP_ROLE}:{app}@postgres:5432/{DATABASE}", APP_UID),
        "redis_password": (redis, REDIS_UID),
        "celery_broker_url": (f"redis://:{redis}@redis:6379/0", APP_UID),
        "api_cache_url": (f"redis://:{redis}@redis:6379/1", APP_UID),
        "cache_url": (f"redis://:{redis}@redis:6379/2", APP_UID),
    }
    for purpose in ENCRYPTION_PURPOSES:
        values[f"encryption/{purpose}"] = (key_text(purpose), APP_UID)
    return values


def certificate(host: str, scratch: Path) -> str:
    """A self-signed certificate and its key for ``host`` (openssl), as one PEM text."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("make-secrets: the openssl program is needed for the proxy's certificate (Debian: openssl)")
    key, cert = scratch / "key.pem", scratch / "cert.pem"
    result = subprocess.run(  # noqa: S603 (openssl found on PATH, fixed arguments)
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "365", "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"make-secrets: openssl could not make the certificate (exit {result.returncode})")
    return cert.read_text() + key.read_text()


def write(folder: Path, name: str, content: str, uid: int, as_root: bool) -> None:
    path = folder / name
    path.parent.mkdir(mode=0o755, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400 if as_root else 0o444)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content if content.endswith("\n") else content + "\n")
    if as_root:
        os.chown(path, uid, uid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where to write the secrets (must not exist)")
    parser.add_argument("--site-host", default="localhost", help="the certificate's host name (default localhost)")
    arguments = parser.parse_args(argv)
    folder: Path = arguments.folder
    if not HOST_PATTERN.fullmatch(arguments.site_host):
        print(f"make-secrets: --site-host {arguments.site_host!r} is not a host name", file=sys.stderr)
        return 2
    if folder.exists():
        print(f"make-secrets: {folder} exists; secrets are never overwritten (choose a new folder)", file=sys.stderr)
        return 1
    as_root = os.geteuid() == 0
    if not as_root:
        print("make-secrets: not root, so the files cannot be given to the containers' uids: "
              "they are readable by every local user (fine for rootless podman on a single-user machine)",
              file=sys.stderr)  # fmt: skip
    values = secret_values()
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(mode=0o755, parents=True)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            values["proxy_certificate"] = (certificate(arguments.site_host, Path(scratch)), PROXY_UID)
        for name, (content, uid) in values.items():
            write(partial, name, content, uid, as_root)
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    print(f"make-secrets: wrote {len(values)} secrets into {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
