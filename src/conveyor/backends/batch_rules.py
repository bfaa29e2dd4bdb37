"""The counting rule every store applies in ``batch_record``: pure, so the stores agree.

A member job's outcome moves at most: none -> any; failed -> succeeded or cancelled (a
retry that ran). Everything else is a repeat (a job run again after its worker died) and
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..records import BatchOutcome

_FAILED = BatchOutcome.FAILED.value


@dataclass(frozen=True, slots=True)
class Delta:
    pending: int = 0
    failed: int = 0
    add_failed_id: bool = False
    remove_failed_id: bool = False


def outcome_delta(previous: str | None, new: str) -> Delta | None:
    """The counter change for ``previous -> new``, or None when nothing may change."""
    if previous is None:
        if new == _FAILED:
            return Delta(failed=1, add_failed_id=True)
        return Delta(pending=-1)
    if previous == _FAILED and new != _FAILED:
        return Delta(pending=-1, failed=-1, remove_failed_id=True)
    return None


def merge_failed_ids(current: list[str], added: list[str], removed: set[str]) -> list[str]:
    kept = [i for i in current if i not in removed]
    seen = set(kept)
    return kept + [i for i in added if i not in seen and i not in removed]
