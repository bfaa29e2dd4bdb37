"""Read a chaos run's ledger against what the store says, and explain every execution.

The ledger has one ``start`` line per execution and, unless the process died first, one
ending line (``done``, ``error`` for a deliberate retry, ``fail`` for a deliberate final
failure), each with the job's tag, the attempt number the store handed out and the pid
of the worker process.

Rules (the guarantees of docs/reliability.md):

* every job either completed (a ``done`` line, gone from the store) or sits in the failed
  store with a reason: nothing is lost;
* each attempt number of a job runs at most once (a reservation is never handed out twice);
* the job's last attempt is the one that decided its fate;
* an earlier attempt that was neither a deliberate retry nor a deliberate failure was
  superseded: its worker died, was stopped past its lease, or lost the store. Anything
  else is a job run twice while its first worker was alive, which must never happen;
* deliberate failures are in the failed store with their own reason and attempt count;
  a job that was meant to succeed is in the failed store only as "worker lost".
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from conveyor.records import FailedRecord

ENDINGS = ("done", "error", "fail")


@dataclass(slots=True)
class Execution:
    tag: str
    attempt: int
    pid: int
    ending: str = ""  # "" when the process died (or was still stopped) mid-run


@dataclass
class Fates:
    """What happened to the worker processes during the run."""

    killed: set[int] = field(default_factory=set)
    stopped: set[int] = field(default_factory=set)
    troubled: set[int] = field(default_factory=set)  # logged store trouble

    def explain(self, pid: int) -> str:
        if pid in self.killed:
            return "killed"
        if pid in self.stopped:
            return "lease lost"
        if pid in self.troubled:
            return "store trouble"
        return ""


@dataclass
class Verdict:
    jobs: int = 0
    completed: int = 0
    failed_as_planned: int = 0
    worker_lost: int = 0
    lost: int = 0
    executions: int = 0
    duplicates: int = 0  # extra executions that ran the job's body to its end
    superseded: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    retries: int = 0  # deliberate retries seen
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        causes = ", ".join(f"{k}={v}" for k, v in sorted(self.superseded.items())) or "none"
        return (f"jobs={self.jobs} completed={self.completed} "
                f"failed={self.failed_as_planned}+{self.worker_lost} worker-lost "
                f"lost={self.lost} executions={self.executions} retries={self.retries} "
                f"duplicates={self.duplicates} superseded({causes})")


def parse(lines: list[tuple[str, str, int, int]]) -> dict[str, list[Execution]]:
    """Executions per tag, in ledger order (one process appends a job's lines in order)."""
    runs: dict[tuple[str, int, int], Execution] = {}
    by_tag: dict[str, list[Execution]] = defaultdict(list)
    for event, tag, attempt, pid in lines:
        key = (tag, attempt, pid)
        if event == "start":
            execution = Execution(tag, attempt, pid)
            runs[key] = execution
            by_tag[tag].append(execution)
        elif event in ENDINGS and key in runs:
            runs[key].ending = event
    return by_tag


def judge(planned: dict[str, tuple[str, str]], by_tag: dict[str, list[Execution]],
          failed: dict[str, FailedRecord], still_stored: set[str], fates: Fates) -> Verdict:
    """``planned``: tag -> (job id, kind); ``failed``: job id -> failed record;
    ``still_stored``: ids the jobs table still holds (must be empty)."""
    verdict = Verdict(jobs=len(planned))
    for tag, (job_id, kind) in planned.items():
        runs = by_tag.get(tag, [])
        verdict.executions += len(runs)
        record = failed.get(job_id)
        if job_id in still_stored:
            verdict.lost += 1
            verdict.problems.append(f"job {tag} ({job_id}) is still in the store")
            continue
        attempts = [r.attempt for r in runs]
        if len(attempts) != len(set(attempts)):
            verdict.problems.append(f"job {tag}: an attempt number ran twice: {attempts}")
        final = max(runs, key=lambda r: r.attempt) if runs else None
        if record is None:
            if final is None or final.ending != "done":
                verdict.lost += 1
                verdict.problems.append(f"job {tag} ({job_id}) is neither done nor failed: "
                                        f"{runs}")
                continue
            verdict.completed += 1
            if kind == "fail":
                verdict.problems.append(f"job {tag} should have failed but completed")
        elif "WorkerLost" in record.exception:
            verdict.worker_lost += 1  # every attempt's worker died: checked below
        else:
            if kind != "fail" or "always fails" not in record.exception:
                verdict.problems.append(f"job {tag} ({kind}) failed: {record.summary}")
            elif final is None or record.attempts != final.attempt or final.ending != "fail":
                verdict.problems.append(f"job {tag}: failed record says attempt "
                                        f"{record.attempts}, the ledger {runs}")
            else:
                verdict.failed_as_planned += 1
        for run in runs:
            if run is final and (record is None or "WorkerLost" not in record.exception):
                continue
            if run.ending == "error" and kind == "flaky" and run.attempt == 1:
                verdict.retries += 1
                continue
            cause = fates.explain(run.pid)
            if not cause:
                verdict.problems.append(
                    f"job {tag}: attempt {run.attempt} on pid {run.pid} was superseded "
                    f"although its worker was alive and held its lease: {runs}")
                continue
            verdict.superseded[cause] += 1
            if run.ending == "done":
                verdict.duplicates += 1
        if kind == "flaky" and final is not None and record is None and final.attempt < 2:
            verdict.problems.append(f"job {tag}: flaky job completed on attempt 1")
    return verdict
