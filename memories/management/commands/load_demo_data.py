"""``manage.py load_demo_data``: realistic demo organizations, teams, people, contexts and memories.

Everything is written through the services, each step by the person who would do it (the
organization owner adds members, each user writes in their own contexts), so the demo exercises
the same permission checks as the API. Running it again adds nothing that is already there.
Demo users get the password in ``DEMO_PASSWORD``, or one generated and printed once. Every run
ends with a table of the demo users: username, organization, role there, and teams with roles.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.urls import reverse

import audit
from core import context as request_context
from core.emails import absolute_url
from memories import services
from memories.models import Context, ContextShare, Membership, Memory, Organization, Role, Team
from memories.permissions import Action, can

# (username, first name, last name, email domain)
USERS = [
    ("amara.okafor", "Amara", "Okafor", "acme.example"),
    ("ben.carter", "Ben", "Carter", "acme.example"),
    ("chen.wei", "Chen", "Wei", "acme.example"),
    ("diana.rossi", "Diana", "Rossi", "acme.example"),
    ("emil.lindqvist", "Emil", "Lindqvist", "acme.example"),
    ("farah.haddad", "Farah", "Haddad", "acme.example"),
    ("gita.sharma", "Gita", "Sharma", "acme.example"),
    ("noah.becker", "Noah", "Becker", "northwind.example"),
    ("olivia.mensah", "Olivia", "Mensah", "northwind.example"),
    ("priya.nair", "Priya", "Nair", "northwind.example"),
    ("ivan.petrov", "Ivan", "Petrov", "northwind.example"),
    ("julia.santos", "Julia", "Santos", "northwind.example"),
]

# slug: (name, owner, {member: role})
ORGANIZATIONS = {
    "acme": (
        "Acme Robotics",
        "amara.okafor",
        {"ben.carter": Role.ADMIN, "chen.wei": Role.MEMBER, "diana.rossi": Role.VIEWER},
    ),
    "northwind": (
        "Northwind Health",
        "noah.becker",
        {"olivia.mensah": Role.ADMIN, "priya.nair": Role.MAINTAINER},
    ),
}

# (organization slug, team slug, team name, creator (becomes owner), {member: role})
TEAMS = [
    ("acme", "platform", "Platform", "ben.carter",
     {"chen.wei": Role.MAINTAINER, "emil.lindqvist": Role.MEMBER, "farah.haddad": Role.VIEWER}),
    ("acme", "ml-research", "ML Research", "amara.okafor", {"gita.sharma": Role.ADMIN, "farah.haddad": Role.MEMBER}),
    ("acme", "security", "Security", "ben.carter", {"diana.rossi": Role.MAINTAINER, "chen.wei": Role.VIEWER}),
    ("northwind", "data-engineering", "Data Engineering", "olivia.mensah",
     {"priya.nair": Role.MAINTAINER, "ivan.petrov": Role.MEMBER}),
    ("northwind", "clinical-apps", "Clinical Apps", "noah.becker",
     {"julia.santos": Role.ADMIN, "ivan.petrov": Role.VIEWER}),
]


@dataclass(frozen=True)
class ContextPlan:
    name: str
    scope: str
    owner: str  # username, "org/team" or org slug
    creator: str
    memories: int
    topics: tuple[str, ...]


CONTEXTS = [
    ContextPlan("Platform runbooks", "team", "acme/platform", "ben.carter", 30, ("kubernetes", "deploy", "postgres")),
    ContextPlan("Deploy commands", "team", "acme/platform", "ben.carter", 25, ("deploy", "kubernetes", "git")),
    ContextPlan("Prompt library", "team", "acme/ml-research", "amara.okafor", 28, ("llm", "python")),
    ContextPlan("Experiment notes", "team", "acme/ml-research", "gita.sharma", 22, ("python", "llm", "postgres")),
    ContextPlan("Incident response", "team", "acme/security", "ben.carter", 24, ("security", "kubernetes")),
    ContextPlan("Pipeline runbooks", "team", "northwind/data-engineering", "olivia.mensah", 26, ("postgres", "python")),
    ContextPlan("Clinical apps AI context", "team", "northwind/clinical-apps", "julia.santos", 22, ("llm", "security")),
    ContextPlan("Acme engineering handbook", "organization", "acme", "amara.okafor", 20, ("git", "deploy", "security")),
    ContextPlan("Northwind onboarding", "organization", "northwind", "noah.becker", 18, ("git", "postgres")),
    *(
        ContextPlan(f"{first}'s scratchpad", "personal", username, username, 9, ("git", "python", "kubernetes"))
        for username, first, _last, _domain in USERS
    ),
]

# (context name, grantee: username or "org/team", permission, granted by)
SHARES = [
    ("Prompt library", "acme/platform", ContextShare.Permission.READ, "amara.okafor"),
    ("Incident response", "emil.lindqvist", ContextShare.Permission.WRITE, "ben.carter"),
    ("Pipeline runbooks", "julia.santos", ContextShare.Permission.ADMIN, "olivia.mensah"),
    ("Amara's scratchpad", "ben.carter", ContextShare.Permission.READ, "amara.okafor"),
]

SERVICES = ["billing-api", "auth-gateway", "search-indexer", "ingest-worker", "patient-portal", "scheduler"]
ENVIRONMENTS = ["staging", "production", "dev"]

# Templates by topic and kind: (kind, text). {service}, {env}, {n} and {table} are filled in.
TEMPLATES = {
    "kubernetes": [
        ("command", "kubectl -n {env} rollout restart deployment/{service}"),
        ("command", "kubectl -n {env} logs deploy/{service} --since=15m | grep -i error"),
        ("command", "kubectl -n {env} scale deployment/{service} --replicas={n}"),
        ("note", "{service} in {env} was OOM-killed twice this week; memory limit raised to {n}Gi for now."),
        ("note", "Readiness probe for {service} must not call the database, or a DB blip takes every pod out."),
        ("snippet", "resources:\n  requests:\n    cpu: 250m\n    memory: 512Mi\n  limits:\n    memory: {n}Gi"),
    ],
    "deploy": [
        ("command", "make release VERSION=2.{n}.0 && git push origin v2.{n}.0"),
        ("command", "helm upgrade --install {service} charts/{service} -n {env} -f values/{env}.yaml"),
        ("note", "Deploy freeze for {env} every Friday after 15:00 UTC; hotfixes need two approvals."),
        ("note", "Rollback of {service}: redeploy the previous image tag; migrations are backwards compatible."),
        ("snippet", "on:\n  push:\n    tags: ['v*']\njobs:\n  deploy:\n    environment: {env}"),
    ],
    "postgres": [
        ("command", "psql \"$DATABASE_URL\" -c 'SELECT pid, state, query_start FROM pg_stat_activity'"),
        ("command", "pg_dump --format=custom --file={table}.dump --table={table} \"$DATABASE_URL\""),
        ("note", "Table {table} grew to {n}M rows; the nightly vacuum no longer finishes before 06:00."),
        ("note", "Add indexes CONCURRENTLY on {table}; a plain CREATE INDEX locked writes for 4 minutes."),
        ("snippet", "CREATE INDEX CONCURRENTLY IF NOT EXISTS {table}_created_idx ON {table} (created_at);"),
    ],
    "git": [
        ("command", "git log --oneline --since='2 weeks ago' -- services/{service}"),
        ("command", "git bisect start HEAD v2.{n}.0 && git bisect run make test"),
        ("note", "Branch names: feature/<ticket>-short-title; squash-merge into main only."),
        ("snippet", "[alias]\n  lg = log --graph --oneline --decorate\n  st = status -sb"),
    ],
    "python": [
        ("snippet", "def chunked(items, size={n}):\n    for start in range(0, len(items), size):\n"
                    "        yield items[start:start + size]"),
        ("command", "python -m pytest tests/{service} -q -x --maxfail=1"),
        ("note", "Pin numpy below 3 for the {service} image; the wheels for our base image lag behind."),
        ("snippet", "with transaction.atomic():\n    row = Model.objects.select_for_update().get(pk=pk)"),
    ],
    "llm": [
        ("ai_context", "You are a code reviewer for {service}. Flag missing tests, unsafe SQL and secrets in logs."),
        ("ai_context", "Summarise the incident timeline for {service} in {env} as bullet points with UTC times."),
        ("ai_context", "When writing SQL for {table}, never select patient identifiers; use the pseudonymised view."),
        ("note", "Evaluation run {n}: the shorter system prompt lost 3 points on the {service} regression set."),
    ],
    "security": [
        ("note", "Rotate the {service} signing key every 90 days; last rotation was run {n} days ago."),
        ("command", "trivy image {service}:latest --severity HIGH,CRITICAL"),
        ("note", "Suspicious logins against {service} from {n} IPs; blocked at the edge, users notified."),
        ("ai_context", "You triage security alerts for {service}. Ask for the request id before anything else."),
    ],
}
TABLES = ["appointments", "invoices", "audit_events", "sessions", "lab_results", "documents"]
SOURCES = ["cli", "vscode", "web", "slack", "chat"]


@contextlib.contextmanager
def command_run_bound():
    """Keep the ``cmd-`` run id manage.py bound, or bind one (``call_command`` binds none), so the
    bootstrap marker and the grants it explains share one request id."""
    if request_context.current_request_id():
        yield
        return
    with request_context.bound(request_id=f"cmd-{request_context.new_request_id()}"):
        yield


class Command(BaseCommand):
    help = "Load realistic demo data (idempotent): organizations, teams, users, contexts, shares, memories."

    def handle(self, *args, **options):
        self.created = {"users": 0, "organizations": 0, "teams": 0, "memberships": 0, "contexts": 0,
                        "shares": 0, "memories": 0}
        password = os.environ.get("DEMO_PASSWORD") or ""
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        else:
            try:
                validate_password(password)
            except ValidationError as error:
                raise CommandError(f"DEMO_PASSWORD is too weak: {' '.join(error.messages)}") from None

        with command_run_bound(), transaction.atomic():
            # Recorded before the demo's grants, in this run: monitoring raises the alerts they
            # cause (owners and admins of the demo organizations) already resolved (docs/monitoring.md).
            audit.record(action=audit.Action.BOOTSTRAP_STARTED, context={"command": "load_demo_data"})
            users = self._users(password)
            organizations = self._organizations(users)
            teams = self._teams(users, organizations)
            contexts = self._contexts(users, organizations, teams)
            self._shares(users, teams, contexts)
            self._memories(users, contexts)

        if self.created["users"] and generated:
            # Printed once, and only here: on a later run the users keep the password they have.
            self.stdout.write(f"Password of the {self.created['users']} new demo users: {password}")
        elif self.created["users"]:
            self.stdout.write(f"The {self.created['users']} new demo users sign in with the password in DEMO_PASSWORD.")
        else:
            self.stdout.write("The demo users keep the password they were created with.")
        self._print_users(users)
        totals = {
            "organizations": Organization.objects.count(),
            "teams": Team.objects.count(),
            "users": len(users),
            "contexts": Context.objects.count(),
            "shares": ContextShare.objects.count(),
            "memories": Memory.objects.count(),
        }
        self.stdout.write("Demo data: " + ", ".join(f"{count} {name}" for name, count in totals.items()) + ".")
        created = ", ".join(f"{count} {name}" for name, count in self.created.items() if count)
        self.stdout.write(f"Created now: {created or 'nothing (already loaded)'}.")

    def _print_users(self, users: dict) -> None:
        """A table of the demo users as they are now: organization and its role, teams and theirs."""
        memberships = Membership.objects.filter(user__in=users.values()).select_related(
            "organization", "team__organization"
        )
        organizations: dict[int, set[str]] = {user.pk: set() for user in users.values()}
        organization_roles: dict[int, list[str]] = {user.pk: [] for user in users.values()}
        teams: dict[int, list[str]] = {user.pk: [] for user in users.values()}
        for membership in memberships.order_by("organization__name", "team__name"):
            role = Role(membership.role).label.lower()
            if membership.organization_id is not None:
                organizations[membership.user_id].add(membership.organization.name)
                organization_roles[membership.user_id].append(role)
            else:
                organizations[membership.user_id].add(membership.team.organization.name)
                teams[membership.user_id].append(f"{membership.team.name} ({role})")
        rows = [("username", "organization", "org role", "teams (role)")] + [
            (
                username,
                ", ".join(sorted(organizations[user.pk])) or "-",
                ", ".join(organization_roles[user.pk]) or "-",
                ", ".join(teams[user.pk]) or "-",
            )
            for username, user in users.items()
        ]
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        self.stdout.write(f"Demo users (sign in at {absolute_url(reverse('accounts:login'))}):")
        for row in rows:
            padded = [row[column].ljust(widths[column]) for column in range(3)]
            self.stdout.write("  " + "  ".join([*padded, row[3]]))

    # -----------------------------------------------------------------------------------------
    def _users(self, password: str) -> dict:
        user_model = get_user_model()
        users = {}
        for username, first, last, domain in USERS:
            user = user_model.objects.filter(username=username).first()
            if user is None:
                user = user_model.objects.create_user(
                    username=username,
                    email=f"{username}@{domain}",
                    password=password,
                    first_name=first,
                    last_name=last,
                )
                self.created["users"] += 1
            users[username] = user
        return users

    def _organizations(self, users: dict) -> dict[str, Organization]:
        organizations = {}
        for slug, (name, owner, members) in ORGANIZATIONS.items():
            organization = Organization.objects.filter(slug=slug).first()
            if organization is None:
                organization = services.organization_create(actor=users[owner], name=name, slug=slug)
                self.created["organizations"] += 1
            for username, role in members.items():
                self._member(actor=users[owner], user=users[username], role=role, organization=organization)
            organizations[slug] = organization
        return organizations

    def _teams(self, users: dict, organizations: dict) -> dict[str, Team]:
        teams = {}
        for organization_slug, slug, name, creator, members in TEAMS:
            organization = organizations[organization_slug]
            team = Team.objects.filter(organization=organization, slug=slug).first()
            if team is None:
                team = services.team_create(actor=users[creator], organization=organization, name=name, slug=slug)
                self.created["teams"] += 1
            for username, role in members.items():
                self._member(actor=users[creator], user=users[username], role=role, team=team)
            teams[f"{organization_slug}/{slug}"] = team
        return teams

    def _member(self, *, actor, user, role, team=None, organization=None) -> None:
        target = {"team": team} if team is not None else {"organization": organization}
        if not Membership.objects.filter(user=user, **target).exists():
            services.membership_add(actor=actor, user=user, role=role, **target)
            self.created["memberships"] += 1

    def _contexts(self, users: dict, organizations: dict, teams: dict) -> dict[str, Context]:
        contexts = {}
        for plan in CONTEXTS:
            owner = {"personal": users, "team": teams, "organization": organizations}[plan.scope][plan.owner]
            owner_field = {"personal": "owner_user", "team": "owner_team", "organization": "owner_organization"}
            context = Context.objects.filter(
                name=plan.name, scope=plan.scope, **{owner_field[plan.scope]: owner}
            ).first()
            if context is None:
                context = services.context_create(
                    actor=users[plan.creator],
                    name=plan.name,
                    scope=plan.scope,
                    team=owner if plan.scope == "team" else None,
                    organization=owner if plan.scope == "organization" else None,
                )
                self.created["contexts"] += 1
            contexts[plan.name] = context
        return contexts

    def _shares(self, users: dict, teams: dict, contexts: dict) -> None:
        for context_name, grantee, permission, granted_by in SHARES:
            context = contexts[context_name]
            target = {"team": teams[grantee]} if "/" in grantee else {"user": users[grantee]}
            if not ContextShare.objects.filter(context=context, **target).exists():
                services.context_share(actor=users[granted_by], context=context, permission=permission, **target)
                self.created["shares"] += 1

    def _memories(self, users: dict, contexts: dict) -> None:
        for plan in CONTEXTS:
            context = contexts[plan.name]
            existing = Memory.objects.filter(context=context).count()
            if existing >= plan.memories:
                continue
            # Everyone who may write here takes turns as author; a seeded generator per context
            # makes a re-run after an interruption continue with the same items.
            authors = [user for user in users.values() if can(user, Action.CREATE, context)]
            generator = random.Random(f"demo:{plan.name}")
            items = [self._memory_fields(generator, plan) for _ in range(plan.memories)]
            for index in range(existing, plan.memories):
                services.memory_create(actor=authors[index % len(authors)], context=context, **items[index])
                self.created["memories"] += 1

    @staticmethod
    def _memory_fields(generator: random.Random, plan: ContextPlan) -> dict:
        topic = generator.choice(plan.topics)
        kind, template = generator.choice(TEMPLATES[topic])
        service = generator.choice(SERVICES)
        environment = generator.choice(ENVIRONMENTS)
        content = template.format(
            service=service, env=environment, n=generator.randint(2, 48), table=generator.choice(TABLES)
        )
        tags = [topic, service] + ([environment] if generator.random() < 0.5 else [])
        metadata = {"service": service, "environment": environment}
        if kind == "command":
            metadata["shell"] = "bash"
        elif kind == "snippet":
            metadata["language"] = {"python": "python", "postgres": "sql"}.get(topic, "yaml")
        elif kind == "ai_context":
            metadata["model"] = generator.choice(["claude", "gpt", "llama"])
        return {
            "kind": kind,
            "content": content,
            "source": generator.choice(SOURCES),
            "metadata": metadata,
            "tags": tags,
        }
