"""PostgreSQL privilege separation: the owner migrates, the runtime role only reads and writes rows.

The PostgreSQL tests build a real deployment in a scratch database, in the documented order:
``db_roles --apply`` as the superuser, ``migrate`` as the owner role, ``db_roles --apply`` again.
Then they connect *as the runtime role* with psycopg and try what it may and may not do.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from encryption.database_roles import narrow_grants, roles_check, roles_sql
from tests.support.servers import PROJECT_DIR

SQL_FILE = PROJECT_DIR / "deploy" / "security" / "postgres-roles.sql"


# --- Everywhere: the script and the command say the same -----------------------------------
def test_the_documented_script_is_the_commands_output():
    """deploy/security/postgres-roles.sql is exactly `db_roles --print-sql` for the default names."""
    out = io.StringIO()
    call_command("db_roles", "--print-sql", "--database", "ninaivalaigal", stdout=out)
    assert out.getvalue() == SQL_FILE.read_text(), "regenerate: manage.py db_roles --print-sql > " + str(SQL_FILE)


def test_the_script_grants_only_append_and_read_on_the_audit_table():
    text = roles_sql()
    assert "GRANT SELECT, INSERT ON public.audit_auditevent TO ninaivalaigal_app;" in text
    assert (
        "GRANT UPDATE (sequence, previous_hash, hash, chain_key_id) ON public.audit_auditevent TO ninaivalaigal_app;"
        in text
    )
    statements = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    assert not [line for line in statements if "PASSWORD" in line.upper()]  # passwords never live in the script
    assert "ALTER DEFAULT PRIVILEGES FOR ROLE ninaivalaigal_owner IN SCHEMA public" in text


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--owner-role", "Robert'); DROP TABLE x;--"], "not a plain PostgreSQL name"),
        (["--app-role", "ninaivalaigal_owner"], "must be different roles"),
        (["--database", "two words"], "not a plain PostgreSQL name"),
    ],
)
def test_bad_names_are_refused(arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("db_roles", "--print-sql", *arguments)


def test_apply_needs_postgresql(on_postgresql, monkeypatch):
    if on_postgresql:
        pytest.skip("this run is on PostgreSQL")
    monkeypatch.delenv("DATABASE_ADMIN_URL", raising=False)
    with pytest.raises(CommandError, match="PostgreSQL only"):
        call_command("db_roles", "--apply")


# --- PostgreSQL: a real deployment in a scratch database ------------------------------------
class Deployment:
    """A scratch database migrated by a fresh owner role, used by a fresh runtime role."""

    def __init__(self, tmp: Path) -> None:
        settings_dict = connection.settings_dict
        self.tmp = tmp
        self.host, self.port = settings_dict["HOST"], str(settings_dict["PORT"])
        self.superuser, self.superuser_password = settings_dict["USER"], settings_dict["PASSWORD"]
        token = secrets.token_hex(4)
        self.database = f"nv_roles_{token}"
        self.owner, self.app = f"nv_owner_{token}", f"nv_app_{token}"
        self.owner_password, self.app_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)

    def url(self, user: str, password: str) -> str:
        return f"postgres://{user}:{password}@{self.host}:{self.port}/{self.database}"

    def connect(self, user: str, password: str, *, autocommit: bool = True):
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, user=user, password=password, dbname=self.database, autocommit=autocommit
        )

    def as_superuser(self, dbname: str = "postgres"):
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.superuser,
            password=self.superuser_password,
            dbname=dbname,
            autocommit=True,
        )

    def environment(self, user: str, password: str, **extra: str) -> dict:
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": self.url(user, password),
            "DATABASE_POOL": "false",
            "TEST_VAR_DIR": str(self.tmp),
            **extra,
        }

    def manage(self, *arguments: str, user: str, password: str, **extra: str) -> subprocess.CompletedProcess:
        completed = subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=PROJECT_DIR,
            env=self.environment(user, password, **extra),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
        return completed

    def apply(self) -> subprocess.CompletedProcess:
        """``db_roles --apply`` as the superuser, passwords from the environment."""
        return self.manage(
            "db_roles",
            "--apply",
            "--owner-role",
            self.owner,
            "--app-role",
            self.app,
            "--database",
            self.database,
            user=self.superuser,
            password=self.superuser_password,
            DATABASE_ADMIN_URL=self.url(self.superuser, self.superuser_password),
            DATABASE_OWNER_PASSWORD=self.owner_password,
            DATABASE_APP_PASSWORD=self.app_password,
        )


@pytest.fixture(scope="module")
def deployment(django_db_blocker, tmp_path_factory):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (runs in the PostgreSQL half of make test)")
    with django_db_blocker.unblock():
        site = Deployment(tmp_path_factory.mktemp("roles"))
        with site.as_superuser() as admin:
            admin.execute(f'CREATE DATABASE "{site.database}"')
        try:
            site.first_apply = site.apply()
            site.migrate = site.manage(
                "migrate", "--noinput", user=site.owner, password=site.owner_password, AUDIT_RECORD_MIGRATIONS="true"
            )
            with site.connect(site.superuser, site.superuser_password) as database:
                site.problems_before_second_apply = roles_check(database, owner_role=site.owner, app_role=site.app)
            site.second_apply = site.apply()
            yield site
        finally:
            with site.as_superuser() as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{site.database}" WITH (FORCE)')
                admin.execute(f'DROP ROLE IF EXISTS "{site.app}"')
                admin.execute(f'DROP ROLE IF EXISTS "{site.owner}"')


@pytest.fixture
def app(deployment):
    """A psycopg connection as the runtime role."""
    with deployment.connect(deployment.app, deployment.app_password) as database:
        yield database


def _denied(database, statement: str, params=None) -> str:
    """Run ``statement`` as ``database``'s role; it must be refused; return the error's SQLSTATE name."""
    import psycopg

    with pytest.raises(psycopg.Error) as caught:
        database.execute(statement, params)
    return type(caught.value).__name__


def _insert(database, instance) -> int:
    """INSERT ``instance`` (an unsaved model) through ``database``, values prepared as Django would."""
    meta = instance._meta
    fields = [field for field in meta.concrete_fields if not field.primary_key]
    values = [field.get_db_prep_save(field.pre_save(instance, add=True), connection) for field in fields]
    columns = ", ".join(f'"{field.column}"' for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    (pk,) = database.execute(
        f'INSERT INTO "{meta.db_table}" ({columns}) VALUES ({placeholders}) RETURNING id',  # noqa: S608
        values,
    ).fetchone()
    return pk


@pytest.mark.postgresql
def test_apply_reports_a_clean_runtime_role(deployment):
    assert "configured in database" in deployment.second_apply.stdout
    assert "passwords set for" in deployment.second_apply.stdout
    assert "holds exactly the runtime privileges" in deployment.second_apply.stdout
    with deployment.connect(deployment.app, deployment.app_password) as database:
        assert roles_check(database, owner_role=deployment.owner, app_role=deployment.app) == []


@pytest.mark.postgresql
def test_migrate_without_a_second_apply_leaves_the_audit_table_too_open(deployment):
    """Why the script runs again after migrate: default privileges alone give full DML everywhere."""
    problems = "\n".join(deployment.problems_before_second_apply)
    assert f"{deployment.app} has UPDATE on audit_auditevent (it must not)" in problems
    assert f"{deployment.app} has DELETE on audit_auditevent (it must not)" in problems


@pytest.mark.postgresql
def test_the_owner_owns_every_table(deployment):
    with deployment.connect(deployment.superuser, deployment.superuser_password) as database:
        owners = database.execute(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class WHERE relnamespace = 'public'::regnamespace "
            "AND relkind IN ('r', 'S', 'i')"
        ).fetchall()
    assert owners == [(deployment.owner,)]


@pytest.mark.postgresql
def test_runtime_role_can_insert_and_select_memories(app):
    from memories.models import Context, Memory

    user_id = _insert(app, get_user_model()(username=f"roles-{secrets.token_hex(3)}", password="!"))
    context_id = _insert(app, Context(name="notes", scope=Context.Scope.PERSONAL, owner_user_id=user_id))
    memory = Memory(context_id=context_id, author_id=user_id, content="remember the milk", metadata={"a": 1})
    memory_id = _insert(app, memory)
    (stored,) = app.execute("SELECT content FROM memories_memory WHERE id = %s", [memory_id]).fetchone()
    assert stored.startswith("nv1:")
    assert Memory._meta.get_field("content").decrypt_token(stored) == "remember the milk"
    app.execute("UPDATE memories_memory SET kind = 'command' WHERE id = %s", [memory_id])
    app.execute("DELETE FROM memories_memory WHERE id = %s", [memory_id])


@pytest.mark.postgresql
@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE public.intruder (id int)",
        "CREATE TABLE intruder (id int)",
        "CREATE TEMPORARY TABLE intruder (id int)",
        "CREATE SCHEMA intruder",
        "CREATE VIEW public.intruder AS SELECT 1",
        "CREATE FUNCTION public.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    ],
)
def test_runtime_role_cannot_create_anything(app, statement):
    assert _denied(app, statement) == "InsufficientPrivilege"


@pytest.mark.postgresql
@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE memories_memory ADD COLUMN intruder text",
        "ALTER TABLE memories_memory DROP COLUMN content",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only",
        "ALTER TABLE memories_memory OWNER TO CURRENT_USER",
        "CREATE INDEX intruder ON memories_memory (kind)",
        "DROP TABLE memories_memory",
        "DROP TABLE audit_auditevent",
        "DROP TRIGGER audit_event_append_only ON audit_auditevent",
        "TRUNCATE memories_memory",
    ],
)
def test_runtime_role_cannot_alter_or_drop_tables(app, statement):
    assert _denied(app, statement) == "InsufficientPrivilege"


@pytest.fixture
def audit_row(deployment):
    """An unsealed audit event inserted through the runtime role, as audit.record() does."""
    from audit.actions import Action
    from audit.services import build_event

    with deployment.connect(deployment.app, deployment.app_password) as database:
        pk = _insert(database, build_event(action=Action.LOGIN_SUCCEEDED, context={"method": "roles test"}))
        yield database, pk


@pytest.mark.postgresql
def test_runtime_role_can_append_and_read_audit_events(audit_row):
    database, pk = audit_row
    (action,) = database.execute("SELECT action FROM audit_auditevent WHERE id = %s", [pk]).fetchone()
    assert action == "auth.login_succeeded"


@pytest.mark.postgresql
def test_runtime_role_cannot_delete_or_truncate_audit_events(audit_row):
    database, pk = audit_row
    assert _denied(database, "DELETE FROM audit_auditevent WHERE id = %s", [pk]) == "InsufficientPrivilege"
    assert _denied(database, "TRUNCATE audit_auditevent") == "InsufficientPrivilege"
    # Not even with the purge switch the trigger honours: the privilege is missing.
    with database.transaction():
        database.execute("SELECT set_config('audit.allow_purge', 'on', true)")
        assert _denied(database, "DELETE FROM audit_auditevent WHERE id = %s", [pk]) == "InsufficientPrivilege"
    assert _denied(database, "DELETE FROM audit_chainhead") == "InsufficientPrivilege"
    assert _denied(database, "DELETE FROM audit_audittombstone") == "InsufficientPrivilege"
    assert _denied(database, "INSERT INTO django_migrations (app, name, applied) VALUES ('x', 'y', now())") == (
        "InsufficientPrivilege"
    )


@pytest.mark.postgresql
@pytest.mark.parametrize(
    "assignment",
    [
        "action = 'auth.logout'",
        "actor_username = 'someone else'",
        "context = '{}'",
        "content_mac = 'x'",
        "content_key_id = 'another-key'",
    ],
)
def test_runtime_role_cannot_update_what_an_audit_event_says(audit_row, assignment):
    database, pk = audit_row
    statement = f"UPDATE audit_auditevent SET {assignment} WHERE id = %s"  # noqa: S608 - fixed test strings
    assert _denied(database, statement, [pk]) == "InsufficientPrivilege"


@pytest.mark.postgresql
def test_runtime_role_can_seal_once_and_never_rewrite_a_seal(audit_row):
    """The sealer's writes are allowed (column grants + trigger); changing a seal afterwards is refused.

    The seal is the real one (``audit.chain.link_hash`` from the head), so the chain stays valid.
    """
    from audit.chain import CONTENT_FIELDS, GENESIS_HASH, canonical_content, link_hash, signing_key
    from audit.merkle import event_leaf, format_frontier, parse_frontier
    from audit.offline_verifier import frontier_append

    database, pk = audit_row
    with database.transaction():
        head = database.execute("SELECT sequence, hash FROM audit_chainhead WHERE id = 1 FOR UPDATE").fetchone()
        if head is None:
            database.execute(
                "INSERT INTO audit_chainhead (id, sequence, hash, anchor_sequence, anchor_hash, "
                "anchor_mac, updated_at) VALUES (1, 0, %s, 0, %s, '', now())",
                [GENESIS_HASH] * 2,
            )
            head = (0, GENESIS_HASH)
        (content_mac,) = database.execute("SELECT content_mac FROM audit_auditevent WHERE id = %s", [pk]).fetchone()
        sequence = head[0] + 1
        key = signing_key()
        hash_value = link_hash(sequence=sequence, previous_hash=head[1], content_mac_value=content_mac, key=key)
        database.execute(
            "UPDATE audit_auditevent SET sequence = %s, previous_hash = %s, hash = %s, chain_key_id = %s "
            "WHERE id = %s AND sequence IS NULL",
            [sequence, head[1], hash_value, key.id, pk],
        )
        # The chain and the Merkle tree as the sealer extends them (audit/sealing.py), so later tests
        # of this deployment find a consistent tree.
        tree_base, tree_size, tree_frontier = database.execute(
            "SELECT tree_base, tree_size, tree_frontier FROM audit_chainhead WHERE id = 1"
        ).fetchone()
        columns = ", ".join(CONTENT_FIELDS)
        values = database.execute(f"SELECT {columns} FROM audit_auditevent WHERE id = %s", [pk]).fetchone()  # noqa: S608
        frontier = parse_frontier(tree_frontier)
        assert tree_base + tree_size == head[0]
        content = canonical_content(dict(zip(CONTENT_FIELDS, values, strict=True)))
        frontier_append(frontier, tree_size, event_leaf(sequence, content))
        database.execute(
            "UPDATE audit_chainhead SET sequence = %s, hash = %s, tree_size = %s, tree_frontier = %s, "
            "updated_at = now() WHERE id = 1",
            [sequence, hash_value, tree_size + 1, format_frontier(frontier)],
        )
    rewrite = "UPDATE audit_auditevent SET hash = %s WHERE id = %s"
    assert _denied(database, rewrite, ["b" * 64, pk]) == "InsufficientPrivilege"
    rekey = "UPDATE audit_auditevent SET chain_key_id = %s WHERE id = %s"
    assert _denied(database, rekey, ["another-key", pk]) == "InsufficientPrivilege"
    (stored,) = database.execute("SELECT hash FROM audit_auditevent WHERE id = %s", [pk]).fetchone()
    assert stored == hash_value
    assert _denied(database, "UPDATE audit_chainhead SET anchor_sequence = 5") == "InsufficientPrivilege"


@pytest.mark.postgresql
def test_tables_made_by_a_later_migration_get_the_runtime_grants(deployment):
    with deployment.connect(deployment.owner, deployment.owner_password) as owner:
        owner.execute("CREATE TABLE IF NOT EXISTS later_table (id bigint GENERATED BY DEFAULT AS IDENTITY, note text)")
    with deployment.connect(deployment.app, deployment.app_password) as database:
        database.execute("INSERT INTO later_table (note) VALUES ('x')")
        assert database.execute("SELECT count(*) FROM later_table").fetchone()[0] >= 1
        assert _denied(database, "DROP TABLE later_table") == "InsufficientPrivilege"


_APP_SCRIPT = """
import json
import audit
from django.contrib.auth import get_user_model
from audit.models import AuditEvent
from audit.services import audit_chain_verify
from memories.models import Context, Memory

user = get_user_model().objects.create_user(username="runtime-" + __import__("secrets").token_hex(3), password=None)
context = Context.objects.create(name="work", scope=Context.Scope.PERSONAL, owner_user=user)
memory = Memory.objects.create(context=context, author=user, content="written by the runtime role")
event = audit.record(action=audit.Action.LOGIN_SUCCEEDED, actor=user)
report = audit_chain_verify(publish=False)
print(json.dumps({
    "content": Memory.objects.get(pk=memory.pk).content,
    "sealed": AuditEvent.objects.get(pk=event.pk).sequence is not None,
    "chain_ok": report.ok,
}))
"""


@pytest.mark.postgresql
def test_the_application_runs_as_the_runtime_role(deployment):
    """Django itself, as the runtime role: ORM writes, audit.record, sealing and verification work."""
    completed = deployment.manage("shell", "-c", _APP_SCRIPT, user=deployment.app, password=deployment.app_password)
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result == {"content": "written by the runtime role", "sealed": True, "chain_ok": True}


@pytest.mark.postgresql
def test_backups_run_as_the_runtime_role_and_verify_with_a_createdb_account(deployment):
    path = deployment.tmp / f"roles-{secrets.token_hex(3)}.nvbak"
    deployment.manage(
        "backup_database", "--output", str(path), "--no-progress", user=deployment.app, password=deployment.app_password
    )
    completed = deployment.manage(
        "verify_backup",
        str(path),
        "--no-progress",
        user=deployment.app,
        password=deployment.app_password,
        ENCRYPTION_BACKUP_VERIFY_DATABASE_URL=deployment.url(deployment.superuser, deployment.superuser_password),
    )
    assert "Backup verified" in completed.stdout


@pytest.mark.postgresql
def test_verify_as_the_runtime_role_alone_explains_what_is_missing(deployment):
    path = deployment.tmp / f"roles-{secrets.token_hex(3)}.nvbak"
    deployment.manage(
        "backup_database", "--output", str(path), "--no-progress", user=deployment.app, password=deployment.app_password
    )
    completed = subprocess.run(
        [sys.executable, "manage.py", "verify_backup", str(path), "--no-progress"],
        cwd=PROJECT_DIR,
        env=deployment.environment(deployment.app, deployment.app_password),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 1
    assert "needs CREATEDB" in completed.stderr and "ENCRYPTION_BACKUP_VERIFY_DATABASE_URL" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.postgresql
def test_migrations_run_by_the_owner_are_audit_events_naming_the_owner(deployment):
    with deployment.connect(deployment.superuser, deployment.superuser_password) as database:
        rows = database.execute(
            "SELECT context FROM audit_auditevent WHERE action = 'system.migration_applied'"
        ).fetchall()
    contexts = [row[0] for row in rows]
    assert len(contexts) >= 20
    assert {context["db_user"] for context in contexts} == {deployment.owner}
    assert {"app": "audit", "migration": "0001_initial"}.items() <= next(
        context for context in contexts if context["app"] == "audit" and context["migration"] == "0001_initial"
    ).items()


@pytest.mark.postgresql
def test_narrow_grants_name_real_tables(deployment):
    with deployment.connect(deployment.superuser, deployment.superuser_password) as database:
        for grant in narrow_grants():
            assert database.execute("SELECT to_regclass(%s)", [f"public.{grant.table}"]).fetchone()[0] is not None


@pytest.mark.postgresql
def test_a_forged_row_on_the_next_number_cannot_stop_the_runtime_roles_sealer(deployment):
    """One INSERT by the runtime role of a row holding ``head + 1``: ``audit_seal``, run as that role, steps
    over the number, records the skip and seals the real event after it (before: an IntegrityError on every run).
    """
    from audit.actions import Action
    from audit.services import build_event

    with deployment.connect(deployment.app, deployment.app_password) as database:
        (head,) = database.execute("SELECT sequence FROM audit_chainhead WHERE id = 1").fetchone()
        forged = build_event(action=Action.STAFF_GRANTED, subject="mallory")
        forged.sequence, forged.previous_hash, forged.hash = head + 1, "0" * 64, "f" * 64
        forged_id = _insert(database, forged)
        real_id = _insert(database, build_event(action=Action.LOGIN_SUCCEEDED, context={"method": "roles test"}))
    completed = subprocess.run(
        [sys.executable, "manage.py", "audit_seal"],
        cwd=PROJECT_DIR,
        env=deployment.environment(deployment.app, deployment.app_password),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 1 and "Traceback" not in completed.stderr, completed.stderr[-3000:]
    assert (
        f"Skipped 1 sequence number(s) held by rows the sealer did not allocate (forged, outside audit.record): "
        f"#{head + 1} (row ids [{forged_id}])" in completed.stderr
    )
    with deployment.connect(deployment.superuser, deployment.superuser_password) as database:
        (sealed,) = database.execute("SELECT sequence FROM audit_auditevent WHERE id = %s", [real_id]).fetchone()
        assert sealed == head + 2
        skip = database.execute("SELECT sequence, forged_event_id FROM audit_auditskippedsequence").fetchall()
        assert skip == [(head + 1, forged_id)]
        (reported,) = database.execute(
            "SELECT count(*) FROM audit_auditevent WHERE action = 'system.audit_forged_row_skipped' "
            "AND sequence IS NOT NULL"
        ).fetchone()
        assert reported == 1
        with database.transaction():  # the owner's clean-up: the forged row goes, the skip stays
            database.execute("SELECT set_config('audit.allow_purge', 'on', true)")
            database.execute("DELETE FROM audit_auditevent WHERE id = %s", [forged_id])
    verified = deployment.manage(
        "audit_verify", "--no-progress", "--no-publish", user=deployment.app, password=deployment.app_password
    )
    assert "Audit chain OK." in verified.stdout
