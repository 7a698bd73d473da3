"""The previous release, from git, and whether the migrations since then let it run on the new schema.

Expand/contract (docs/decisions/expand-contract-migrations.md): during a blue-green deploy the
previous release keeps serving on the schema the new one migrated, so a migration may only
*expand* (new tables, nullable columns or columns with a database default, new indexes) and a
column or table is dropped or renamed (*contract*) only in a later release, once no running code
uses it. ``tests/deploy/test_expand_contract.py`` checks both halves: statically, the operations
of every migration added since the previous release; and by running the previous release's code
against a database the current code migrated.

The previous release is, in this order:

1. the working tree's ``HEAD``, when migration files differ from it (uncommitted migrations:
   what is committed is what runs beside them);
2. the newest tag ``v<number>...`` reachable from ``HEAD``'s first parent (a tagged release);
3. the first parent of the newest commit on ``HEAD``'s first-parent line that changed a
   migration file: the code that ran just before the last schema change, whichever branch
   brought it. On ``main`` that is ``main`` before the last merge that changed a migration.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
MIGRATION_FILES = ":(glob)*/migrations/[0-9]*.py"
MIGRATION_PATH = re.compile(r"(?P<app>[a-z_]+)/migrations/(?P<name>\d{4}_\w+)\.py")
RELEASE_TAG = "v[0-9]*"


class NoHistory(Exception):
    """Git or its history is not there: the message says why (the test skips with it)."""


@dataclass(frozen=True)
class Release:
    commit: str
    how: str  # which rule chose it, for the test's messages


def git(*args: str, check: bool = True, root: Path = ROOT) -> str:
    try:
        process = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise NoHistory("git is not installed") from None
    if check and process.returncode != 0:
        raise NoHistory(f"git {args[0]} failed: {process.stderr.strip()[:200]}")
    return process.stdout.strip()


def previous_release(root: Path = ROOT) -> Release:
    """The release the code in ``root`` must be able to run beside (the module's three rules)."""
    if shutil.which("git") is None:
        raise NoHistory("git is not installed")

    def run(*args: str, check: bool = True) -> str:
        return git(*args, check=check, root=root)

    if run("rev-parse", "--is-inside-work-tree", check=False) != "true":
        raise NoHistory("not a git checkout (an archive or an image): no previous release to compare with")
    if run("rev-parse", "--is-shallow-repository") == "true":
        raise NoHistory("a shallow clone: the previous release is not in its history (clone with full history)")
    if run("status", "--porcelain", "--", MIGRATION_FILES):
        return Release(run("rev-parse", "HEAD"), "HEAD (migration files differ from it in the working tree)")
    if run("rev-parse", "--verify", "--quiet", "HEAD^1", check=False):
        tag = run("describe", "--tags", "--abbrev=0", "--match", RELEASE_TAG, "HEAD^1", check=False)
        if tag:
            return Release(run("rev-parse", f"{tag}^{{commit}}"), f"the newest release tag, {tag}")
    changes = run("log", "--first-parent", "--format=%H", "HEAD", "--", MIGRATION_FILES).split()
    if not changes:
        raise NoHistory("no commit has changed a migration")
    for changed in changes:
        parent = run("rev-parse", "--verify", "--quiet", f"{changed}^1", check=False)
        if not parent:
            raise NoHistory("the only migration change is the first commit: there is no release before it")
        # A state with two migrations of one number in an app (branches merged, their
        # migrations not yet re-chained) was never releasable: look further back.
        if not _numbers_repeat(git("ls-tree", "-r", "--name-only", parent, root=root).splitlines()):
            return Release(parent, f"the parent of {changed[:12]}, the newest commit that changed a migration")
    raise NoHistory("no earlier state has one migration per number")


def _numbers_repeat(names: list[str]) -> bool:
    numbers = [(m["app"], m["name"][:4]) for m in map(MIGRATION_PATH.fullmatch, names) if m]
    return len(numbers) != len(set(numbers))


def migrations_at(commit: str) -> set[tuple[str, str]]:
    """``(app folder, migration name)`` of each migration file in ``commit``."""
    names = git("ls-tree", "-r", "--name-only", commit).splitlines()
    return {(m["app"], m["name"]) for m in map(MIGRATION_PATH.fullmatch, names) if m}


def migrations_on_disk() -> set[tuple[str, str]]:
    found = set()
    for path in ROOT.glob("*/migrations/[0-9]*.py"):
        match = MIGRATION_PATH.fullmatch(path.relative_to(ROOT).as_posix())
        if match:
            found.add((match["app"], match["name"]))
    return found


def export(commit: str, into: Path) -> Path:
    """``git archive`` of ``commit`` unpacked into ``into`` (tracked files only: no .git, no var/)."""
    into.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(["git", "archive", "--format=tar", commit], cwd=ROOT, stdout=subprocess.PIPE)
    with tarfile.open(fileobj=process.stdout, mode="r|") as archive:
        archive.extractall(into, filter="data")
    if process.wait(timeout=120) != 0:
        raise NoHistory(f"git archive {commit[:12]} failed")
    return into


# --- the static half: which operations the previous release cannot live with -----------------


def _not_null_without_database_default(field) -> bool:
    from django.db.models import NOT_PROVIDED

    return (
        not field.many_to_many  # a many-to-many adds a table, not a column
        and not field.null
        and getattr(field, "db_default", NOT_PROVIDED) is NOT_PROVIDED
    )


SQL_CONTRACT = re.compile(r"\b(DROP\s+(COLUMN|TABLE)|RENAME\s+(COLUMN|TO)|SET\s+NOT\s+NULL)\b", re.IGNORECASE)


def backward_incompatible_operations(migration, state_before) -> list[str]:
    """What in ``migration`` breaks code that predates it, one line each (empty: it only expands).

    ``state_before`` is the project state just before the migration (``MigrationLoader.project_state``).
    A ``default=`` is no database default (Django drops it after filling the rows), so the
    previous release's INSERTs, which lack the new column, fail on a NOT NULL column unless it has
    ``db_default=`` or ``null=True``.
    """
    from django.db import migrations

    problems = []
    state = state_before.clone()
    app = migration.app_label
    for operation in migration.operations:
        where = f"{app}.{migration.name}: {operation.describe()}"
        if isinstance(operation, migrations.RemoveField):
            problems.append(f"{where}: drops a column the previous release still reads")
        elif isinstance(operation, migrations.DeleteModel):
            problems.append(f"{where}: drops a table the previous release still reads")
        elif isinstance(operation, migrations.RenameField | migrations.RenameModel | migrations.AlterModelTable):
            problems.append(f"{where}: renames what the previous release reads by its old name")
        elif isinstance(operation, migrations.AddField) and _not_null_without_database_default(operation.field):
            problems.append(
                f"{where}: a NOT NULL column without db_default, which the previous release's INSERTs lack "
                "(add it with null=True or db_default=, and tighten it in a later release)"
            )
        elif isinstance(operation, migrations.AlterField):
            model = state.models[app, operation.model_name_lower]
            before = model.fields.get(operation.name)
            after = operation.field
            if before is not None:
                before_column = before.db_column or operation.name
                after_column = after.db_column or operation.name
                if before_column != after_column:
                    problems.append(f"{where}: renames column {before_column} to {after_column}")
                if before.null and _not_null_without_database_default(after):
                    problems.append(f"{where}: makes a nullable column NOT NULL without db_default in one step")
        elif isinstance(operation, migrations.RunSQL):
            statements = operation.sql if isinstance(operation.sql, list | tuple) else [operation.sql]
            text = " ".join(str(item[0] if isinstance(item, list | tuple) else item) for item in statements)
            if SQL_CONTRACT.search(text):
                problems.append(f"{where}: raw SQL that drops, renames or sets NOT NULL")
        operation.state_forwards(app, state)
    return problems


def contract_reason(migration) -> str:
    """The reason a migration gives for contracting (``contract = "..."`` on its class), or ''."""
    return str(getattr(migration, "contract", "") or "").strip()
