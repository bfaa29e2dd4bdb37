"""The chaos verdict itself: it must catch what it is there to catch."""

from __future__ import annotations

from conveyor.records import FailedRecord

from .analysis import Fates, judge, parse

PLANNED = {"1": ("id1", "ok"), "2": ("id2", "fail")}


def failed(job_id: str, text: str, attempts: int) -> FailedRecord:
    return FailedRecord(job_id, "sqlite", "default", "chaos", "{}", text, 0.0, attempts)


FAIL_2 = {"id2": failed("id2", "conveyor.errors.Fail: chaos: this job always fails", 1)}
CLEAN = [("start", "1", 1, 10), ("done", "1", 1, 10), ("start", "2", 1, 10),
         ("fail", "2", 1, 10)]


def test_a_clean_run_passes() -> None:
    verdict = judge(PLANNED, parse(CLEAN), FAIL_2, set(), Fates())
    assert verdict.problems == [] and verdict.completed == 1 and verdict.failed_as_planned == 1


def test_a_lost_job_is_caught() -> None:
    verdict = judge(PLANNED, parse(CLEAN[2:]), FAIL_2, set(), Fates())
    assert verdict.lost == 1 and verdict.problems


def test_a_rerun_while_the_first_worker_lived_is_caught() -> None:
    lines = [("start", "1", 1, 10), ("start", "1", 2, 11), ("done", "1", 1, 10),
             ("done", "1", 2, 11), *CLEAN[2:]]
    assert judge(PLANNED, parse(lines), FAIL_2, set(), Fates()).problems
    verdict = judge(PLANNED, parse(lines), FAIL_2, set(), Fates(stopped={10}))
    assert verdict.problems == [] and verdict.duplicates == 1
    assert verdict.superseded == {"lease lost": 1}


def test_an_attempt_handed_out_twice_is_caught() -> None:
    lines = [("start", "1", 1, 10), ("start", "1", 1, 11), ("done", "1", 1, 11), *CLEAN[2:]]
    assert any("ran twice" in p for p in judge(PLANNED, parse(lines), FAIL_2, set(),
                                                Fates(killed={10})).problems)


def test_a_wrong_failure_is_caught() -> None:
    wrong = {"id1": failed("id1", "RuntimeError: boom", 1), **FAIL_2}
    assert judge(PLANNED, parse(CLEAN), wrong, set(), Fates()).problems
    assert judge(PLANNED, parse(CLEAN), {}, set(), Fates()).problems  # 2 should have failed
