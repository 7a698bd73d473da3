"""``manage.py db_roles``: the PostgreSQL migration owner and runtime roles (print, apply, check)."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from encryption.database_roles import (
    DEFAULT_APP_ROLE,
    DEFAULT_OWNER_ROLE,
    roles_apply,
    roles_check,
    roles_sql,
    validate_identifier,
)


class Command(BaseCommand):
    help = (
        "PostgreSQL privilege separation: a migration owner role that owns the schema and a runtime role that "
        "can only read and write rows (and only append to the audit trail). --print-sql shows the SQL "
        "(deploy/security/postgres-roles.sql), --apply runs it with a superuser connection, --check reports "
        "drift. Run --apply again after every migrate."
    )

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--print-sql", action="store_true", help="Print the SQL; connect to nothing.")
        action.add_argument("--apply", action="store_true", help="Create the roles and set every grant.")
        action.add_argument(
            "--check", action="store_true", help="Report what the runtime role may do that it must not."
        )
        parser.add_argument("--owner-role", default=DEFAULT_OWNER_ROLE, help=f"Default {DEFAULT_OWNER_ROLE}.")
        parser.add_argument("--app-role", default=DEFAULT_APP_ROLE, help=f"Default {DEFAULT_APP_ROLE}.")
        parser.add_argument("--database", help="Database name (default: the NAME of the default database).")
        parser.add_argument(
            "--admin-url-env",
            default="DATABASE_ADMIN_URL",
            help="Environment variable holding a superuser's postgres:// URL for --apply (default "
            "DATABASE_ADMIN_URL; if unset, the default database's own settings are used). A URL is never "
            "accepted on the command line, where other users could read it.",
        )
        parser.add_argument(
            "--owner-password-env",
            default="DATABASE_OWNER_PASSWORD",
            help="Environment variable with the owner role's password, set by --apply when present "
            "(default DATABASE_OWNER_PASSWORD).",
        )
        parser.add_argument(
            "--app-password-env",
            default="DATABASE_APP_PASSWORD",
            help="Environment variable with the runtime role's password, set by --apply when present "
            "(default DATABASE_APP_PASSWORD).",
        )

    def handle(self, *args, **options):
        default = connections["default"].settings_dict
        database = options["database"] or (default["NAME"] if connections["default"].vendor == "postgresql" else "")
        try:
            owner = validate_identifier(options["owner_role"], what="Owner role")
            app = validate_identifier(options["app_role"], what="Application role")
            database = validate_identifier(database or "ninaivalaigal", what="Database")
            sql_text = roles_sql(owner_role=owner, app_role=app, database=database)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if options["print_sql"]:
            self.stdout.write(sql_text, ending="")
            return
        if connections["default"].vendor != "postgresql" and not os.environ.get(options["admin_url_env"]):
            raise CommandError("Database roles exist on PostgreSQL only (DATABASE_URL is not a PostgreSQL database).")
        try:
            with self._connect(options["admin_url_env"] if options["apply"] else None, database) as connection:
                if options["check"]:
                    problems = roles_check(connection, owner_role=owner, app_role=app)
                else:
                    passwords = {
                        role: os.environ[variable]
                        for role, variable in (
                            (owner, options["owner_password_env"]),
                            (app, options["app_password_env"]),
                        )
                        if os.environ.get(variable)
                    }
                    roles_apply(connection, owner_role=owner, app_role=app, database=database, passwords=passwords)
                    problems = roles_check(connection, owner_role=owner, app_role=app)
        except CommandError:
            raise
        except Exception as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise CommandError(f"{type(error).__name__}: {first_line}") from None
        if options["apply"]:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Roles {owner} (owner) and {app} (runtime) configured in database {database}"
                    + (f"; passwords set for {', '.join(sorted(passwords))}." if passwords else ".")
                )
            )
        if problems:
            for problem in problems:
                self.stderr.write(f"  {problem}")
            raise CommandError(f"{len(problems)} privilege problem(s) for {app}.")
        self.stdout.write(self.style.SUCCESS(f"{app} holds exactly the runtime privileges."))

    def _connect(self, admin_url_env: str | None, database: str):
        import environ
        import psycopg

        url = os.environ.get(admin_url_env or "", "")
        config = environ.Env.db_url_config(url) if url else connections["default"].settings_dict
        options = config.get("OPTIONS") or {}
        params = {
            "dbname": database,
            "user": config.get("USER") or None,
            "password": config.get("PASSWORD") or None,
            "host": config.get("HOST") or None,
            "port": config.get("PORT") or None,
            "sslmode": options.get("sslmode"),
            "sslrootcert": options.get("sslrootcert"),
            "application_name": "ninaivalaigal-db-roles",
            "connect_timeout": 10,
        }
        return psycopg.connect(**{key: value for key, value in params.items() if value}, autocommit=True)
