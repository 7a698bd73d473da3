"""Clear the lockout and MFA-throttle counters of an account: ``manage.py unlock_account USERNAME``."""

from django.core.management.base import BaseCommand

from accounts.services.lifecycle import account_unlock


class Command(BaseCommand):
    help = "Unlock an account: clear its failed-login and failed-code counters (the username is normalised)."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username: str, **options):
        cleared = account_unlock(actor=None, username=username)
        self.stdout.write(f"Unlocked '{username.strip()}': {cleared} active lock(s) cleared.")
