"""Shared set-up of the benchmarks: a scratch database for one run."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable


def scratch_database(prefix: str) -> tuple[str, Callable[[], None]]:
    """Point DATABASE_URL at a new empty database; return (description, cleanup).

    SQLite: a file in a new temporary folder. PostgreSQL (DATABASE_URL given): a new database on
    the same server, dropped by the cleanup.
    """
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        folder = tempfile.mkdtemp(prefix=f"{prefix}-")
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
        return "SQLite (file)", lambda: None
    import environ
    import psycopg

    config = environ.Env.db_url_config(url)
    name = f"{prefix.replace('-', '_')}_{secrets.token_hex(4)}"
    admin = {
        "host": config["HOST"],
        "port": config["PORT"] or 5432,
        "user": config["USER"],
        "password": config["PASSWORD"],
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(dbname="postgres", autocommit=True, **admin) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return "PostgreSQL", drop


def run_in_scratch_database(prefix: str, run: Callable[[str], None]) -> None:
    """Set Django up on a new scratch database, call ``run(description)``, then drop the database."""
    description, cleanup = scratch_database(prefix)
    import django

    django.setup()
    try:
        run(description)
    finally:
        cleanup()
