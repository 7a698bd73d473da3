"""Create the first administrator if there is none (used by ``make run``)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.services.administrators import administrator_ensure
from config.settings.base import env


class Command(BaseCommand):
    help = "Create the first superuser from ADMIN_USERNAME/ADMIN_EMAIL/ADMIN_PASSWORD, or with a generated password."

    def handle(self, *args, **options):
        try:
            user, generated = administrator_ensure(
                username=env.str("ADMIN_USERNAME", default="admin"),
                email=env.str("ADMIN_EMAIL", default="admin@ninaivalaigal.localhost"),
                password=env.str("ADMIN_PASSWORD", default="") or None,
            )
        except ValidationError as error:
            raise CommandError("ADMIN_PASSWORD is not acceptable: " + " ".join(error.messages)) from None
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created administrator '{user.username}' with the password below. "
                    "It is shown once; change it after signing in.\n"
                )
                + generated
            )
        else:
            self.stdout.write(f"Administrator exists: {user.username}")
