"""``make mutation`` (scripts/mutation.py, docs/mutation.md): what its score means and where it plants bugs."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import MutationSpec, WorkerOutcome, WorkItem, WorkResult
from cosmic_ray.work_item import TestOutcome as Outcome  # not a test class

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "mutation.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("mutation_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


mutation = _load_script()


def test_every_listed_module_and_test_exists_and_every_equivalent_says_why():
    settings, modules = mutation.load_config()
    assert settings["fail-under"] >= 90
    assert {"api/signing.py", "api/permissions.py"} <= {module.path for module in modules}
    for module in modules:
        assert module.tests, module.path
        for equivalent in module.equivalent:
            assert equivalent.reason.strip(), (module.path, equivalent.original)
            assert equivalent.original != equivalent.mutated


def test_a_module_that_does_not_exist_is_refused_by_name(tmp_path):
    config = tmp_path / "mutation.toml"
    config.write_text('[[module]]\npath = "api/nothing_here.py"\ntests = ["tests/api"]\n', encoding="utf-8")
    with pytest.raises(mutation.MutationConfigError, match="api/nothing_here.py does not exist"):
        mutation.load_config(config)


def test_an_unlisted_module_on_the_command_line_exits_2_with_one_line(capsys):
    assert mutation.main(["api/not_listed.py"]) == 2
    error = capsys.readouterr().err
    assert error == "mutation: not listed in mutation.toml: api/not_listed.py\n"


def _result(outcome, original="", mutated=""):
    diff = f"--- mutation diff ---\n--- a/m.py\n+++ b/m.py\n@@ -1 +1 @@\n-    {original}\n+    {mutated}\n"
    return WorkResult(worker_outcome=WorkerOutcome.NORMAL, test_outcome=outcome, diff=diff)


def test_the_score_leaves_out_listed_equivalents_and_incompetent_mutants_and_names_the_rest(tmp_path):
    """killed / (mutants - listed equivalents - incompetent - not run), survivors printed by line."""
    session = tmp_path / "session.sqlite"
    outcomes = {
        "killed-1": _result(Outcome.KILLED),
        "killed-2": _result(Outcome.KILLED),
        "listed": _result(Outcome.SURVIVED, "if n > 0:", "if n >= 0:"),
        "unlisted": _result(Outcome.SURVIVED, "return a + b", "return a - b"),
        "incompetent": _result(Outcome.INCOMPETENT),
    }
    with use_db(str(session), WorkDB.Mode.create) as db:
        for line, job_id in enumerate([*outcomes, "not-run"], start=1):
            spec = MutationSpec("m.py", "core/ReplaceComparisonOperator_Gt_GtE", 0, (line, 0), (line, 1))
            db.add_work_item(WorkItem.single(job_id, spec))
        for job_id, result in outcomes.items():
            db.set_result(job_id, result)
    module = mutation.Module(
        "m.py",
        ["tests"],
        [],
        [
            mutation.Equivalent("core/ReplaceComparisonOperator_Gt_GtE", "if n > 0:", "if n >= 0:", "n is never 0"),
            mutation.Equivalent("core/NumberReplacer", "x = 1", "x = 2", "gone since"),
        ],
    )

    score = mutation.score_module(module, session)

    assert (score.total, score.killed, score.equivalent, score.incompetent, score.pending) == (6, 2, 1, 1, 1)
    assert score.counted == 3
    assert score.percent == pytest.approx(200 / 3)
    assert score.survivors == [("core/ReplaceComparisonOperator_Gt_GtE", "m.py:4: return a + b", "return a - b")]
    assert [equivalent.original for equivalent in score.unused_equivalents] == ["x = 1"]


@pytest.mark.skipif(shutil.which("git") is None, reason="the script lists the tree with git")
def test_a_real_run_plants_mutants_in_a_copy_and_fails_under_the_threshold(tmp_path):
    """A real cosmic-ray run over a tiny project: the weak test lets mutants live, the score says so."""
    (tmp_path / "scripts").mkdir()
    shutil.copy2(SCRIPT, tmp_path / "scripts" / "mutation.py")
    (tmp_path / "rules.py").write_text("def is_adult(age):\n    return age >= 18\n", encoding="utf-8")
    (tmp_path / "test_rules.py").write_text(
        "from rules import is_adult\n\n\ndef test_adult():\n    assert is_adult(40)\n", encoding="utf-8"
    )
    (tmp_path / "mutation.toml").write_text(
        textwrap.dedent(
            """
            [settings]
            fail-under = 90
            timeout = 60
            pytest-args = ["-p", "no:django"]

            [[module]]
            path = "rules.py"
            tests = ["test_rules.py"]
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / ".gitignore").write_text("var/\n", encoding="utf-8")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    environment = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}

    finished = subprocess.run(
        [sys.executable, "scripts/mutation.py"], cwd=tmp_path, env=environment, capture_output=True, text=True
    )

    assert finished.returncode == 1, finished.stdout + finished.stderr
    summary = next(line for line in finished.stdout.splitlines() if line.startswith("rules.py: "))
    survived = int(re.search(r"(\d+) survived", summary).group(1))
    assert survived >= 1 and "under 90 %: rules.py" in finished.stdout
    # `age >= 18` -> `age > 18` lives: no test asks about 18 itself.
    assert "return age > 18" in finished.stdout
    assert (tmp_path / "rules.py").read_text(encoding="utf-8") == "def is_adult(age):\n    return age >= 18\n"
    assert (tmp_path / "var" / "mutation" / "tree" / "rules.py").exists()
