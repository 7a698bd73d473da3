"""``skip = true`` equivalents in ``mutation.toml``: listed lines are not run, and still counted as equivalent."""

from __future__ import annotations

import pytest
from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import MutationSpec, WorkerOutcome, WorkItem, WorkResult
from cosmic_ray.work_item import TestOutcome as Outcome  # not a test class

from tests.test_mutation_script import mutation

SOURCE = "def f(a: int | None, *, b):\n    return a > b\n"


def _session(tmp_path):
    session = tmp_path / "session.sqlite"
    with use_db(str(session), WorkDB.Mode.create) as db:
        for job_id, operator, line in [
            ("annotation", "core/ReplaceBinaryOperator_BitOr_Add", 1),
            ("marker", "core/ReplaceBinaryOperator_Mul_Div", 1),
            ("comparison", "core/ReplaceComparisonOperator_Gt_GtE", 2),
        ]:
            db.add_work_item(WorkItem.single(job_id, MutationSpec("m.py", operator, 0, (line, 0), (line, 1))))
    return session


def _module(*equivalents):
    return mutation.Module("m.py", ["tests"], [], list(equivalents))


ANNOTATION = mutation.Equivalent(
    "core/ReplaceBinaryOperator_BitOr_.*", "def f(a: int | None, *, b):", "*", "an annotation", True
)


def test_only_the_listed_lines_by_the_listed_operators_are_skipped_and_they_count_as_equivalent(tmp_path):
    (tmp_path / "m.py").write_text(SOURCE, encoding="utf-8")
    session = _session(tmp_path)
    module = _module(ANNOTATION)

    assert mutation.skip_listed_equivalents(module, session, root=tmp_path) == 1

    with use_db(str(session), WorkDB.Mode.open) as db:
        assert sorted(item.job_id for item in db.pending_work_items) == ["comparison", "marker"]
        for job_id in ["comparison", "marker"]:
            db.set_result(job_id, WorkResult(worker_outcome=WorkerOutcome.NORMAL, test_outcome=Outcome.KILLED))
    score = mutation.score_module(module, session, root=tmp_path)
    assert (score.total, score.killed, score.equivalent, score.skipped, score.pending) == (3, 2, 1, 1, 0)
    assert score.percent == 100.0 and score.unused_equivalents == []


def test_a_skipped_mutant_whose_entry_is_gone_counts_as_not_run(tmp_path):
    (tmp_path / "m.py").write_text(SOURCE, encoding="utf-8")
    session = _session(tmp_path)
    mutation.skip_listed_equivalents(_module(ANNOTATION), session, root=tmp_path)

    score = mutation.score_module(_module(), session, root=tmp_path)

    assert (score.equivalent, score.skipped, score.pending) == (0, 0, 3)


def test_skip_without_every_mutant_of_the_line_is_refused(tmp_path):
    config = tmp_path / "mutation.toml"
    config.write_text(
        '[[module]]\npath = "m.py"\ntests = ["m.py"]\n\n[[module.equivalent]]\noperator = "core/NumberReplacer"\n'
        'original = "x = 1"\nmutated = "x = 2"\nreason = "r"\nskip = true\n',
        encoding="utf-8",
    )
    (tmp_path / "m.py").write_text("x = 1\n", encoding="utf-8")
    with pytest.raises(mutation.MutationConfigError, match='skip = true needs mutated = "\\*"'):
        mutation.load_config(config, root=tmp_path)


def test_a_sample_runs_every_nth_mutant_and_scores_over_the_sample(tmp_path):
    (tmp_path / "m.py").write_text(SOURCE, encoding="utf-8")
    session = _session(tmp_path)

    assert mutation.sample_mutants(session, 2) == 1

    with use_db(str(session), WorkDB.Mode.open) as db:
        assert sorted(item.job_id for item in db.pending_work_items) == ["annotation", "comparison"]
        db.set_result("annotation", WorkResult(worker_outcome=WorkerOutcome.NORMAL, test_outcome=Outcome.KILLED))
        db.set_result(
            "comparison",
            WorkResult(
                worker_outcome=WorkerOutcome.NORMAL,
                test_outcome=Outcome.SURVIVED,
                diff="-    return a > b\n+    return a >= b\n",
            ),
        )
    score = mutation.score_module(_module(), session, root=tmp_path)
    assert (score.total, score.killed, score.pending, score.counted, score.percent) == (3, 1, 1, 2, 50.0)


def test_a_sample_below_one_exits_2_with_one_line(capsys):
    assert mutation.main(["--sample", "0", "api/signing.py"]) == 2
    assert capsys.readouterr().err == "mutation: --sample must be at least 1, not 0\n"
