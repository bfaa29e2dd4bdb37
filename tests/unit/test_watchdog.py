"""The watchdog keeps only what it must: finished watches do not pile up until their
deadline on a busy worker (a memory leak proportional to jobs/s x timeout)."""

from __future__ import annotations

from conveyor.worker.watchdog import COMPACT_EVERY, Watchdog


def test_finished_watches_are_swept() -> None:
    stuck: list[object] = []
    dog = Watchdog(5.0, stuck.append)
    try:
        running = dog.watch("long", 600.0, inject=False)
        for i in range(COMPACT_EVERY * 5):
            dog.watch(i, 600.0, inject=False).finish()
        assert dog.size <= COMPACT_EVERY + 1
        assert not running.finished and not stuck
    finally:
        dog.stop()


def test_unfinished_watches_are_kept_and_fire() -> None:
    import threading

    fired = threading.Event()
    dog = Watchdog(0.05, lambda key: fired.set())
    try:
        watch = dog.watch("slow", 0.05, inject=False)
        for i in range(COMPACT_EVERY):
            dog.watch(i, 600.0, inject=False).finish()
        assert fired.wait(10)
        assert watch.timed_out
    finally:
        dog.stop()
