"""``manage.py record_deployment --kind deploy|rollback --from-revision R1 --to-revision R2 [--note TEXT]``.

Records ``system.deployed`` or ``system.rolled_back`` (``monitoring.services.deployments``) and
prints one line naming the event. Bad input (an unknown kind, a revision that is neither a git
commit hash nor a version tag, a note too long or of several lines, a missing option) prints one
line to stderr, records nothing and exits with status 2.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from monitoring.services.deployments import KINDS, DeploymentInvalid, deployment_record

USAGE_ERROR = 2  # the exit status of bad input, as argparse uses it


class Command(BaseCommand):
    help = (
        "Record a deploy or a rollback in the audit trail (system.deployed / system.rolled_back) with the revision "
        "that served before and the one that serves after; the deploy tool runs it once the proxy has switched."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def error(message: str):
            # One line and status 2, from the command line and from call_command alike (argparse
            # would print the whole usage first).
            if parser.called_from_command_line:
                sys.stderr.write(f"record_deployment: {message} (see --help)\n")
                sys.exit(USAGE_ERROR)
            raise CommandError(message, returncode=USAGE_ERROR)

        parser.error = error
        return parser

    def add_arguments(self, parser):
        parser.add_argument("--kind", required=True, choices=sorted(KINDS), help="deploy or rollback")
        parser.add_argument("--from-revision", required=True, help="the revision that served before (hash or tag)")
        parser.add_argument("--to-revision", required=True, help="the revision that serves now (hash or tag)")
        parser.add_argument(
            "--environment", help="the environment's name (default MONITORING_DEPLOYMENT_ENVIRONMENT, production)"
        )
        parser.add_argument("--tool", default="manual", help="what ran it, e.g. bluegreen (default manual)")
        parser.add_argument("--note", help="one line for the record, at most 200 characters; never a secret")

    def handle(self, *args, kind, from_revision, to_revision, environment=None, tool="manual", note=None, **options):
        try:
            event = deployment_record(
                kind=kind,
                from_revision=from_revision,
                to_revision=to_revision,
                environment=environment,
                tool=tool,
                note=note,
            )
        except DeploymentInvalid as error:
            raise CommandError(str(error), returncode=USAGE_ERROR) from None
        context = event.context
        self.stdout.write(
            f"recorded {event.action} (event {event.uuid}): {context['environment']} "
            f"{context['from_revision']} -> {context['to_revision']}"
        )
