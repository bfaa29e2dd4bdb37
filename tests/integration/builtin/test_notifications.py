"""SendNotificationJob against the FCM-shaped server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.builtin import notifications
from conveyor.testing import run_until_empty
from conveyor.testing.fcm_server import FcmServer


@pytest.fixture(scope="module")
def fcm() -> Iterator[FcmServer]:
    with FcmServer(project_id="grofresh-test") as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fcm: FcmServer) -> None:
    fcm.received.clear()
    fcm.unregistered.clear()
    fcm.invalid.clear()


def make(tmp_path: Path, fcm: FcmServer, clock: list[float] | None = None, **overrides: object
         ) -> tuple[Conveyor, notifications.NotificationService, list[list[str]]]:
    app = Conveyor(f"sqlite:///{tmp_path / 'q.db'}",
                   clock=(lambda: clock[0]) if clock else None)
    removed: list[list[str]] = []
    push = notifications.install(app, settings=fcm.settings(retry_base=0.0, **overrides),
                                 on_invalid_tokens=removed.append)
    return app, push, removed


def test_authenticated_v1_requests_with_priorities(tmp_path: Path, fcm: FcmServer) -> None:
    app, push, _ = make(tmp_path, fcm, chunk_size=7, concurrency=4)
    tokens = [f"tok-{i}" for i in range(20)]
    push.send({"title": "On its way", "body": "Order 7", "data": {"order_id": 7}}, tokens,
              type="delivery_alert")
    push.send({"title": "Sale", "body": "-20%"}, ["tok-m"], type="marketing")
    queues = {s.queue for s in app.backend.queue_stats(app.clock())}
    assert queues == {"notifications_high", "notifications_low"}
    before = fcm.token_requests
    rejected = fcm.rejected_auth
    run_until_empty(app)
    assert fcm.rejected_auth == rejected
    assert fcm.token_requests == before + 1  # one OAuth exchange, cached for both jobs
    assert sorted(r.token for r in fcm.received) == sorted([*tokens, "tok-m"])
    by_token = {r.token: r.message for r in fcm.received}
    high = by_token["tok-3"]
    assert high["notification"] == {"title": "On its way", "body": "Order 7"}
    assert high["data"] == {"order_id": "7"}
    assert high["android"] == {"priority": "HIGH"}
    assert high["apns"] == {"headers": {"apns-priority": "10"}}
    low = by_token["tok-m"]
    assert low["android"] == {"priority": "NORMAL"}
    assert low["apns"] == {"headers": {"apns-priority": "5"}}


def test_expired_access_token_is_refreshed(tmp_path: Path, fcm: FcmServer) -> None:
    app, push, _ = make(tmp_path, fcm)
    push.send({"title": "a"}, ["t1"])
    run_until_empty(app)
    fcm.expire_tokens()
    push.send({"title": "b"}, ["t2"])
    run_until_empty(app)
    assert fcm.delivered("t1") == 1 and fcm.delivered("t2") == 1


def test_invalid_tokens_reach_the_cleanup_hook(tmp_path: Path, fcm: FcmServer) -> None:
    app, push, removed = make(tmp_path, fcm)
    fcm.unregistered.add("gone")
    fcm.invalid.add("garbage")
    push.send({"title": "Hi"}, ["ok-1", "gone", "ok-2", "garbage"], type="order_update")
    run_until_empty(app)
    assert [sorted(batch) for batch in removed] == [["garbage", "gone"]]
    assert fcm.delivered() == 2
    assert app.backend.failed_list() == []


def test_429_retry_after_is_honoured_and_only_failed_tokens_are_retried(
        tmp_path: Path, fcm: FcmServer) -> None:
    now = [2_000_000.0]
    app, push, _ = make(tmp_path, fcm, clock=now)
    fcm.fail_next("busy", 429, retry_after=7)
    fcm.fail_next("flaky", 503)
    push.send({"title": "Hi"}, ["a", "busy", "b", "flaky"], type="order_update")
    run_until_empty(app)
    assert fcm.delivered() == 2
    waiting = app.backend.queue_stats(now[0])
    assert [(s.queue, s.scheduled) for s in waiting] == [("notifications_high", 1)]
    now[0] += 6.9
    run_until_empty(app)
    assert fcm.attempts("busy") == 1  # not before Retry-After
    now[0] += 0.2
    run_until_empty(app)
    assert {t: fcm.attempts(t) for t in ("a", "b", "busy", "flaky")} == {
        "a": 1, "b": 1, "busy": 2, "flaky": 2}
    assert fcm.delivered() == 4
    assert app.backend.failed_list() == []


def test_tokens_failing_every_round_end_in_failed_store(tmp_path: Path, fcm: FcmServer) -> None:
    app, push, _ = make(tmp_path, fcm, rounds=3)
    fcm.fail_next("down", 500, times=5)
    push.send({"title": "Hi"}, ["fine", "down"])
    run_until_empty(app)
    assert fcm.attempts("fine") == 1 and fcm.attempts("down") == 3
    failed = app.backend.failed_list()
    assert len(failed) == 1 and "still failing after 3 rounds" in failed[0].summary


def test_invalid_payload_fails_at_dispatch_and_on_worker(tmp_path: Path, fcm: FcmServer) -> None:
    app, push, _ = make(tmp_path, fcm)
    with pytest.raises(notifications.PushError):
        push.send({"titel": "typo"}, ["t"])
    job_id = push.job.dispatch({"titel": "typo"}, ["t"])
    run_until_empty(app)
    failed = app.backend.failed_get(job_id)
    assert failed is not None and failed.attempts == 1 and "unknown keys" in failed.summary
    assert fcm.received == []


def test_out_of_time_budget_continues_without_resending(tmp_path: Path, fcm: FcmServer) -> None:
    app, push, _ = make(tmp_path, fcm, chunk_size=3, time_budget=1e-9)
    runs: list[str] = []
    app.on("job_succeeded", lambda **kw: runs.append(kw["queue"]))
    tokens = [f"t{i}" for i in range(10)]
    push.send({"title": "Hi"}, tokens, type="order_update")
    run_until_empty(app)
    assert runs == ["notifications_high"] * 4  # one chunk of 3 per job, then continued
    assert {t: fcm.attempts(t) for t in tokens} == dict.fromkeys(tokens, 1)
    assert app.backend.failed_list() == []


def test_wrong_project_fails_the_job_and_removes_no_token(tmp_path: Path, fcm: FcmServer) -> None:
    app, push, removed = make(tmp_path, fcm, project_id="someone-else")
    job_id = push.send({"title": "Hi"}, ["a", "b"])
    run_until_empty(app)
    failed = app.backend.failed_get(job_id)
    assert failed is not None and "403 PERMISSION_DENIED" in failed.summary
    assert removed == []


def test_retry_after_forms_and_priority_mapping() -> None:
    import datetime as dt
    from email.utils import format_datetime

    now = 1_700_000_000.0
    later = format_datetime(dt.datetime.fromtimestamp(now + 30, dt.UTC), usegmt=True)
    assert notifications.retry_after_seconds("120", now) == 120.0
    assert notifications.retry_after_seconds(later, now) == 30.0
    assert notifications.retry_after_seconds("soon", now) is None
    normal = notifications.build_message({"body": "x", "data": {"n": 1, "s": "t"}}, "normal")
    assert normal == {"android": {"priority": "NORMAL"},
                      "apns": {"headers": {"apns-priority": "5"}},
                      "notification": {"body": "x"}, "data": {"n": "1", "s": "t"}}
