"""Create the first administrator if there is none (used by ``make run``).

A generated password is printed, and also written to ``var/secrets/first-admin-password`` (mode
0600, beside the other generated secrets) so that it cannot be lost in the start-up output of the
worker and beat. Later starts say that the file still holds the password, or remove it once the
password has been changed (it no longer works). ``--remind`` prints the password from that file
once more, and nothing when there is none; ``scripts/run.sh`` calls it after the services start.
"""

import contextlib
import os
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

import audit
from accounts.services.administrators import administrator_ensure
from core import context as request_context
from core.emails import absolute_url

PASSWORD_FILE_NAME = "first-admin-password"  # noqa: S105 - a file name, not a secret


def password_file() -> Path:
    return Path(settings.VAR_DIR) / "secrets" / PASSWORD_FILE_NAME


def _shown(path: Path) -> str:
    """The path as the operator typed ``make run``: relative to the project when inside it."""
    try:
        return str(path.relative_to(Path(settings.BASE_DIR)))
    except ValueError:
        return str(path)


class Command(BaseCommand):
    help = (
        "Create the first superuser from ADMIN_USERNAME/ADMIN_EMAIL/ADMIN_PASSWORD, or with a generated password "
        "(printed, and kept in var/secrets/first-admin-password until it is changed)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--remind",
            action="store_true",
            help="Only print the generated password again, if the first administrator still has it.",
        )
        parser.add_argument(
            "--after", type=float, default=0, metavar="SECONDS", help="With --remind: wait this long first."
        )

    def handle(self, *args, remind=False, after=0, **options):
        if remind:
            try:
                if options["verbosity"] >= 2:
                    self.stderr.write(f"Reminder in {max(after, 0):g} s.")
                time.sleep(max(after, 0))
            except KeyboardInterrupt:  # Ctrl-C of make run before the reminder: leave quietly
                return None
            return self._remind()
        try:
            with command_run_bound(), transaction.atomic():
                if not get_user_model().objects.filter(is_superuser=True).exists():
                    # Recorded before the grants, in this run: monitoring raises the privilege
                    # alerts of the first administrator already resolved (docs/monitoring.md).
                    audit.record(action=audit.Action.BOOTSTRAP_STARTED, context={"command": "ensure_admin"})
                user, generated = administrator_ensure(
                    username=os.environ.get("ADMIN_USERNAME") or "admin",
                    email=os.environ.get("ADMIN_EMAIL") or "admin@ninaivalaigal.localhost",
                    password=os.environ.get("ADMIN_PASSWORD") or None,
                )
        except ValidationError as error:
            raise CommandError("ADMIN_PASSWORD is not acceptable: " + " ".join(error.messages)) from None
        path = password_file()
        if generated:
            _write_private(path, generated)
            self.stdout.write(
                self.style.WARNING(f"Created administrator '{user.username}' with the password below. ")
                + "Change it after signing in."
            )
            self.stdout.write(f"    {generated}")
            self.stdout.write(
                f"It is also in {_shown(path)} (readable by you only) until you change it; "
                "make run prints it again once the services are up."
            )
            return
        self.stdout.write(f"Administrator exists: {user.username}")
        if _pending(path) is not None:
            self.stdout.write(
                self.style.WARNING(f"Its generated password is still in {_shown(path)}: change it after signing in.")
            )

    def _remind(self) -> None:
        path = password_file()
        pending = _pending(path)
        if pending is None:
            return
        username, password = pending
        line = "=" * 72
        self.stdout.write(self.style.WARNING(line))
        self.stdout.write(
            self.style.WARNING(f"First administrator '{username}' (change the password after signing in):")
        )
        self.stdout.write(f"    {password}")
        self.stdout.write(f"Also in {_shown(path)}. Sign in at {absolute_url(reverse('admin:index'))}")
        self.stdout.write(self.style.WARNING(line))


@contextlib.contextmanager
def command_run_bound():
    """Keep the ``cmd-`` run id manage.py bound, or bind one (``call_command`` binds none), so the
    bootstrap marker and the grants it explains share one request id."""
    if request_context.current_request_id():
        yield
        return
    with request_context.bound(request_id=f"cmd-{request_context.new_request_id()}"):
        yield


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable and writable by the owner only (0600, its folder 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")
    os.chmod(path, 0o600)  # a file left by an earlier run keeps its mode through O_TRUNC


def _pending(path: Path) -> tuple[str, str] | None:
    """``(username, password)`` while the file's password still opens the first superuser, else None.

    A file whose password no longer works (it was changed, or the database was replaced) is
    removed: a stale copy of a credential helps nobody.
    """
    try:
        password = path.read_text().strip()
    except FileNotFoundError:
        return None
    user = get_user_model().objects.filter(is_superuser=True).order_by("pk").first()
    if user is not None and password and user.check_password(password):
        return user.get_username(), password
    path.unlink(missing_ok=True)
    return None
