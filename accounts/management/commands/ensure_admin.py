"""Create the first administrator if there is none (used by ``make run``)."""

import os

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.services.administrators import administrator_ensure


class Command(BaseCommand):
    help = "Create the first superuser from ADMIN_USERNAME/ADMIN_EMAIL/ADMIN_PASSWORD, or with a generated password."

    def handle(self, *args, **options):
        try:
            user, generated = administrator_ensure(
                username=os.environ.get("ADMIN_USERNAME") or "admin",
                email=os.environ.get("ADMIN_EMAIL") or "admin@ninaivalaigal.localhost",
                password=os.environ.get("ADMIN_PASSWORD") or None,
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
