from __future__ import annotations

import random

import pytest

from conveyor.errors import ConfigurationError, Fail, JobTimeout, Retry
from conveyor.retry import parse_backoff
from conveyor.routing import Router, parse_worker_queues, queue_name, split_queue
from conveyor.worker.policy import JobPolicy, decide


def test_backoff_forms() -> None:
    assert parse_backoff(10).delay(1) == 10
    fixed_list = parse_backoff([5, 30, 120])
    assert [fixed_list.delay(n) for n in (1, 2, 3, 4, 9)] == [5, 30, 120, 120, 120]
    assert parse_backoff("5,30").delay(3) == 30
    exp = parse_backoff({"exponential": 2, "cap": 20, "jitter": False})
    assert [exp.delay(n) for n in (1, 2, 3, 4, 5, 6)] == [2, 4, 8, 16, 20, 20]
    jittered = parse_backoff("exponential:4")
    rng = random.Random(1)
    for attempt in range(1, 8):
        raw = min(600, 4 * 2 ** (attempt - 1))
        assert raw / 2 <= jittered.delay(attempt, rng) <= raw
    assert parse_backoff(parse_backoff([1, 2]).to_data()) == parse_backoff([1, 2])


@pytest.mark.parametrize("bad", ["", "soon", -1, [1, -2], True])
def test_bad_backoff(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="invalid backoff"):
        parse_backoff(bad)


def policy(**kw: object) -> JobPolicy:
    base = dict(tries=3, backoff=parse_backoff([10, 20]), timeout=None, retry_until=None,
                retry_on=None)
    base.update(kw)
    return JobPolicy(**base)  # type: ignore[arg-type]


def test_decisions() -> None:
    p = policy()
    assert decide(None, attempt=1, policy=p, now=0).action == "complete"
    d = decide(RuntimeError(), attempt=1, policy=p, now=0)
    assert (d.action, d.delay) == ("release", 10)
    assert decide(RuntimeError(), attempt=2, policy=p, now=0).delay == 20
    assert decide(RuntimeError(), attempt=3, policy=p, now=0).action == "fail"
    assert decide(Fail("no"), attempt=1, policy=p, now=0).action == "fail"
    r = decide(Retry(delay=99), attempt=1, policy=p, now=0)
    assert (r.action, r.delay) == ("release", 99)
    assert decide(Retry(delay=1), attempt=3, policy=p, now=0).action == "fail"
    assert decide(RuntimeError(), attempt=1, policy=p, now=0, permanent=True).action == "fail"


def test_retry_on_and_retry_until() -> None:
    p = policy(retry_on=(ValueError,))
    assert decide(ValueError(), attempt=1, policy=p, now=0).action == "release"
    assert decide(KeyError(), attempt=1, policy=p, now=0).action == "fail"
    assert decide(JobTimeout(), attempt=1, policy=p, now=0).action == "release"
    deadline = policy(tries=1, retry_until=100.0)
    assert decide(RuntimeError(), attempt=5, policy=deadline, now=70).action == "release"
    assert decide(RuntimeError(), attempt=5, policy=deadline, now=85).action == "fail"


def test_queue_names() -> None:
    assert queue_name("emails", "high") == "emails_high"
    assert queue_name("emails") == "emails"
    assert queue_name("data", "low") == "data_low"
    assert split_queue("emails_high") == ("emails", "high")
    assert split_queue("reports") == ("reports", "normal")
    with pytest.raises(ConfigurationError, match="invalid priority"):
        queue_name("emails", "urgent")
    with pytest.raises(ConfigurationError, match="invalid queue name"):
        queue_name("bad queue")


def test_router_rules_are_data() -> None:
    router = Router.from_data([
        {"job": "send_email", "type": "password_reset", "priority": "high"},
        {"job": "send_email", "type": "newsletter", "priority": "low"},
        {"job": "*", "type": "bulk", "queue": "data"},
    ])
    assert router.route("send_email", "password_reset").priority == "high"  # type: ignore[union-attr]
    assert router.route("send_email", "newsletter").priority == "low"  # type: ignore[union-attr]
    assert router.route("other", "bulk").queue == "data"  # type: ignore[union-attr]
    assert router.route("send_email", "receipt") is None
    with pytest.raises(ConfigurationError, match="expected keys"):
        Router.from_data([{"job": "x", "colour": "red"}])


def test_worker_queue_specs() -> None:
    queues, weights = parse_worker_queues(None)
    assert queues[0] == "default_high" and queues[-1] == "notifications_low" and weights is None
    assert parse_worker_queues("a,b") == (["a", "b"], None)
    assert parse_worker_queues("a:5,b:1") == (["a", "b"], {"a": 5, "b": 1})
    for bad in ("a:5,b", "a,a", ",", "bad queue"):
        with pytest.raises(ConfigurationError):
            parse_worker_queues(bad)
