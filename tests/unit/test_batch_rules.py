"""The pure rules of batches: how an outcome moves the counters, which callbacks are due."""

from __future__ import annotations

from conveyor.backends.batch_rules import Delta, merge_failed_ids, outcome_delta
from conveyor.batches import BatchOptions, due_callbacks
from conveyor.records import BatchRecord


def test_outcome_moves_once_except_a_retried_failure() -> None:
    assert outcome_delta(None, "succeeded") == Delta(pending=-1)
    assert outcome_delta(None, "cancelled") == Delta(pending=-1)
    assert outcome_delta(None, "failed") == Delta(failed=1, add_failed_id=True)
    assert outcome_delta("failed", "succeeded") == Delta(pending=-1, failed=-1,
                                                         remove_failed_id=True)
    assert outcome_delta("failed", "failed") is None
    for done in ("succeeded", "cancelled"):
        for new in ("succeeded", "failed", "cancelled"):
            assert outcome_delta(done, new) is None


def test_merge_failed_ids_keeps_order() -> None:
    assert merge_failed_ids(["a", "b"], ["c", "a"], {"b"}) == ["a", "c"]


def record(total: int, pending: int, failed: int, cancelled: bool = False) -> BatchRecord:
    return BatchRecord("b", "", total, pending, failed, [], "{}", 0.0,
                       cancelled_at=1.0 if cancelled else None)


def test_due_callbacks() -> None:
    options = BatchOptions(callbacks={"progress": [{}]}, progress_every=25)
    assert due_callbacks(record(4, 4, 0), options) == []
    assert due_callbacks(record(4, 3, 0), options) == ["progress:25"]
    assert due_callbacks(record(4, 3, 1), options) == ["catch", "progress:25"]
    assert due_callbacks(record(4, 1, 1), options) == ["catch", "finally", "progress:75"]
    assert due_callbacks(record(4, 0, 0), options) == ["then", "finally", "progress:100"]
    assert due_callbacks(record(4, 0, 0, cancelled=True), BatchOptions()) == ["finally"]
    assert due_callbacks(record(0, 0, 0), BatchOptions()) == ["then", "finally"]
