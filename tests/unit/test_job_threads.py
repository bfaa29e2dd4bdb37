from __future__ import annotations

import threading

import pytest

from conveyor.worker.threads import JobThreads


def test_tasks_run_on_the_threads_and_a_failing_task_keeps_its_thread(
        caplog: pytest.LogCaptureFixture) -> None:
    threads = JobThreads(2, name="t")
    done: list[int] = []
    finished = threading.Semaphore(0)

    def task(n: int) -> None:
        done.append(n)
        finished.release()
        if n % 2:
            raise RuntimeError(f"task {n} broke")

    for n in range(10):
        threads.submit(task, n)
    for _ in range(10):
        assert finished.acquire(timeout=5)
    assert sorted(done) == list(range(10))
    assert "unexpected error on a job thread" in caplog.text
    threads.shutdown()


def test_shutdown_drops_tasks_not_started_and_ends_idle_threads() -> None:
    threads = JobThreads(1, name="t")
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def blocker() -> None:
        started.set()
        release.wait(5)
        ran.append("blocker")

    threads.submit(blocker)
    assert started.wait(5)
    threads.submit(ran.append, "queued")  # waits behind the blocker
    threads.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        threads.submit(ran.append, "late")
    release.set()
    for thread in threads._threads:
        thread.join(5)
        assert not thread.is_alive() and thread.daemon
    assert ran == ["blocker"]
