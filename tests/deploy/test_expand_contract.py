"""Expand/contract, proven: the previous release runs on the schema the current code migrates to.

During a blue-green deploy (docs/operations.md "Deployments") the previous release keeps serving
while the new one migrates the shared database, and a rollback puts it back in front of that
schema. Two checks keep that safe (tests/support/releases.py says how the previous release is
chosen):

* statically, every migration added since the previous release only expands: no column or table
  dropped or renamed, no NOT NULL column without a database default, unless the migration says
  why it may contract (``contract = "..."`` on its class);
* by running it: the previous release's code, from ``git archive``, does its own system checks,
  finds no migration missing, logs in, and writes and reads memories through API v2 on a fresh
  database migrated by the current code; each release reads what the other wrote.

Without git history (an archive, a shallow clone) both skip and say why.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection, migrations, models
from django.db.migrations.loader import MigrationLoader

from tests.support.releases import (
    ROOT,
    NoHistory,
    backward_incompatible_operations,
    contract_reason,
    export,
    git,
    migrations_at,
    migrations_on_disk,
    previous_release,
)

SMOKE = (Path(__file__).parent / "release_smoke.py").read_text()


@pytest.fixture(scope="module")
def previous():
    try:
        return previous_release()
    except NoHistory as reason:
        pytest.skip(f"no previous release to check against: {reason}")


def disk_migrations() -> dict[tuple[str, str], tuple[str, object]]:
    """``(app folder, name) -> (app label, Migration)`` of the current code's migrations."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return {
        (migration.__module__.split(".", 1)[0], name): (label, migration)
        for (label, name), migration in loader.disk_migrations.items()
    }


def test_the_previous_release_is_an_ancestor_of_the_code_under_test(previous):
    ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", previous.commit, "HEAD"], cwd=ROOT)
    assert ancestor.returncode == 0, previous
    assert migrations_at(previous.commit), previous  # it has migrations: the project existed then


def test_migrations_added_since_the_previous_release_only_expand(previous):
    loader = MigrationLoader(None, ignore_no_migrations=True)
    known = disk_migrations()
    added = sorted(migrations_on_disk() - migrations_at(previous.commit))
    problems = []
    for key in added:
        label, migration = known[key]
        if contract_reason(migration):
            continue  # a contract step, with its reason in the migration (docs/decisions/expand-contract-migrations.md)
        state = loader.project_state((label, migration.name), at_end=False)
        problems += backward_incompatible_operations(migration, state)
    assert problems == [], f"since {previous.how} ({previous.commit[:12]}): " + "; ".join(problems)


def test_the_static_check_names_each_operation_the_previous_release_cannot_live_with():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    state = loader.project_state()
    planted = migrations.Migration("9999_planted", "memories")
    planted.operations = [
        migrations.AddField("memory", "fine_null", models.CharField(max_length=5, null=True)),
        migrations.AddField("memory", "fine_db_default", models.IntegerField(db_default=0)),
        migrations.AddIndex("memory", models.Index(fields=["fine_null"], name="planted_fine_index")),
        migrations.AddField("memory", "not_null", models.CharField(max_length=5, default="x")),
        migrations.AlterField("memory", "fine_null", models.CharField(max_length=5, default="y")),
        migrations.AlterField("memory", "fine_db_default", models.IntegerField(db_default=0, db_column="renamed")),
        migrations.RenameField("memory", "not_null", "now_named"),
        migrations.RemoveField("memory", "now_named"),
        migrations.RunSQL("ALTER TABLE memories_memory DROP COLUMN kind", reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL("CREATE INDEX planted ON memories_memory (id)", reverse_sql=migrations.RunSQL.noop),
        migrations.DeleteModel("memory"),
    ]
    problems = backward_incompatible_operations(planted, state)
    assert [problem.split(": ", 2)[2] for problem in problems] == [
        "a NOT NULL column without db_default, which the previous release's INSERTs lack (add it with null=True "
        "or db_default=, and tighten it in a later release)",
        "makes a nullable column NOT NULL without db_default in one step",
        "renames column fine_db_default to renamed",
        "renames what the previous release reads by its old name",
        "drops a column the previous release still reads",
        "raw SQL that drops, renames or sets NOT NULL",
        "drops a table the previous release still reads",
    ]
    assert problems[0].startswith("memories.9999_planted: Add field not_null to memory: ")
    planted.contract = "memory.now_named unused since v1.3 (read by no release that may still run)"
    assert contract_reason(planted).startswith("memory.now_named unused")


@pytest.fixture
def database_url():
    """A fresh database: a file on SQLite, a new database on the suite's PostgreSQL server."""
    if connection.vendor != "postgresql":
        yield None
        return
    import psycopg

    server = connection.settings_dict
    name = f"ninaivalaigal_expand_{secrets.token_hex(4)}"
    address = {"host": server["HOST"], "port": server["PORT"], "user": server["USER"], "password": server["PASSWORD"]}
    with psycopg.connect(dbname="postgres", autocommit=True, **address) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://{server['USER']}:{server['PASSWORD']}@{server['HOST']}:{server['PORT']}/{name}"
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **address) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_in(tree: Path, what: str, command: list[str], env: dict, *, stdin: str | None = None) -> str:
    process = subprocess.run(command, cwd=tree, env=env, input=stdin, capture_output=True, text=True, timeout=300)
    if process.returncode != 0:
        lines = [line for line in process.stderr.splitlines() if not line.startswith("{")]  # JSON log lines
        code = "the current code" if tree == ROOT else "the previous release"
        pytest.fail(f"{what} with {code} exited {process.returncode}:\n" + "\n".join(lines[-15:]))
    return process.stdout


def smoke(tree: Path, env: dict, order: dict) -> dict:
    """The smoke path (tests/deploy/release_smoke.py) with ``tree``'s own code."""
    output = run_in(tree, "the smoke path", [sys.executable, "-c", SMOKE], env, stdin=json.dumps(order))
    return json.loads(output.splitlines()[-1])


def test_the_previous_release_runs_on_the_schema_the_current_code_migrated(previous, tmp_path, database_url):
    old = export(previous.commit, tmp_path / "previous")
    env = {name: value for name, value in os.environ.items() if name not in {"PYTHONPATH", "DJANGO_SETTINGS_MODULE"}}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=database_url or f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        TEST_VAR_DIR=str(tmp_path / "var"),
    )
    run_in(ROOT, "migrate", [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"], env)

    account = {"username": "release-smoke", "password": secrets.token_urlsafe(18)}
    new_writes = smoke(ROOT, env, {**account, "write": "written by the current release"})
    old_writes = smoke(old, env, {**account, "read": [[new_writes["written"][0], "written by the current release"]],
                                  "write": "written by the previous release"})
    smoke(ROOT, env, {**account, "read": [[old_writes["written"][0], "written by the previous release"]]})
    assert Path(old_writes["code"]) == old.resolve()  # the previous release's code ran, not this checkout's
    assert Path(new_writes["code"]) == ROOT


def test_the_rule_for_the_previous_release_in_a_scratch_repository(tmp_path):
    repo = tmp_path / "repo"
    (repo / "app" / "migrations").mkdir(parents=True)

    def commit(message: str, path: str) -> str:
        (repo / path).write_text(message)
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", message],
                       cwd=repo, check=True)
        return git("rev-parse", "HEAD", root=repo)

    with pytest.raises(NoHistory, match="not a git checkout"):
        previous_release(repo)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    commit("first schema", "app/migrations/0001_initial.py")
    with pytest.raises(NoHistory, match="the only migration change is the first commit"):
        previous_release(repo)
    code_only = commit("code only", "app/views.py")
    second_schema = commit("second schema", "app/migrations/0002_more.py")
    commit("code after it", "app/views.py")
    release = previous_release(repo)
    assert release.commit == code_only and second_schema[:12] in release.how  # just before the last schema change

    (repo / "app" / "migrations" / "0003_new.py").write_text("")  # not committed yet
    assert previous_release(repo).commit == git("rev-parse", "HEAD", root=repo)
    (repo / "app" / "migrations" / "0003_new.py").unlink()

    subprocess.run(["git", "tag", "v1.0.0", code_only], cwd=repo, check=True)
    commit("code after the tag", "app/views.py")
    assert previous_release(repo).commit == code_only and "v1.0.0" in previous_release(repo).how

    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True)
    with pytest.raises(NoHistory, match="shallow clone"):
        previous_release(shallow)
