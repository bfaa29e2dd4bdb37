from __future__ import annotations

import dataclasses
import datetime as dt
import time
import uuid

import pytest

from conveyor import BadArguments, ConfigurationError, Conveyor, PayloadTooLarge, current_job
from conveyor.errors import ConveyorError
from conveyor.jobs import JobIds
from conveyor.serialization import decode_payload


@dataclasses.dataclass
class Point:
    x: int


@pytest.fixture
def app(sqlite_url: str) -> Conveyor:
    return Conveyor(sqlite_url, clock=lambda: 1_900_000_000.0)


def test_dispatch_routes_by_queue_type_and_priority(app: Conveyor) -> None:
    @app.job(queue="emails", tries=5, backoff=[5, 30, 120], timeout=20)
    def send_receipt(order_id: int) -> None: ...

    a = send_receipt.dispatch(1)
    b = send_receipt.options(priority="high").dispatch(2)
    c = send_receipt.options(delay=30).dispatch(3)
    d = send_receipt.options(queue="data", priority="low").dispatch(4)
    got = {i: app.backend.jobs_get(i) for i in (a, b, c, d)}
    assert got[a].queue == "emails" and got[b].queue == "emails_high"  # type: ignore[union-attr]
    assert got[c].available_at == 1_900_000_030.0  # type: ignore[union-attr]
    assert got[d].queue == "data_low"  # type: ignore[union-attr]
    assert got[a].max_tries == 5 and got[a].name == send_receipt.name  # type: ignore[union-attr]
    payload = decode_payload(got[a].payload)  # type: ignore[union-attr]
    assert payload.args == [1] and payload.job == send_receipt.name


def test_dispatch_many_is_one_insert_and_keeps_order(app: Conveyor) -> None:
    @app.job
    def noop(n: int) -> None: ...

    ids = app.dispatch_many([noop.prepare(i) for i in range(1000)])
    assert len(ids) == len(set(ids)) == 1000
    assert ids == sorted(ids)  # time-ordered ids
    (stats,) = app.backend.queue_stats(1_900_000_000.0)
    assert stats.available == 1000


def test_routing_rules_by_type_argument(app: Conveyor) -> None:
    @app.job(queue="emails")
    def send_email(to: str, type: str = "general") -> None: ...

    app.route(send_email.name, type="password_reset", priority="high")
    app.route(send_email.name, type="newsletter", priority="low")
    ids = [send_email.dispatch("a@x", "password_reset"),
           send_email.dispatch("a@x", type="newsletter"),
           send_email.dispatch("a@x")]
    queues = [app.backend.jobs_get(i).queue for i in ids]  # type: ignore[union-attr]
    assert queues == ["emails_high", "emails_low", "emails"]
    # an explicit option beats a rule
    explicit = send_email.options(priority="normal").dispatch("a@x", "newsletter")
    assert app.backend.jobs_get(explicit).queue == "emails"  # type: ignore[union-attr]


def test_arguments_are_checked_by_shape_every_time(app: Conveyor) -> None:
    @app.job
    def job(a: int, b: int = 0, *, c: int = 0) -> None: ...

    job.dispatch(1)
    job.dispatch(1, c=2)
    for args, kwargs in [((1, 2, 3), {}), ((), {}), ((1,), {"d": 4}), ((1,), {"a": 1}),
                         ((1, 2), {"b": 3})]:
        with pytest.raises(BadArguments, match="arguments do not match"):
            job.dispatch(*args, **kwargs)
    job.dispatch(5)  # a shape that bound before still binds


def test_call_arguments_rebuild_values_even_for_a_shape_seen_before(app: Conveyor) -> None:
    @app.job
    def job(p: Point | None, n: int = 0) -> tuple[object, int]:
        return p, n

    definition = app.get_job(job.name)

    def called(args: list[object], kwargs: dict[str, object]) -> object:
        call_args, call_kwargs = definition.call_arguments(args, kwargs)
        return definition.func(*call_args, **call_kwargs)

    assert called([3], {}) == (3, 0)
    assert called([3], {}) == (3, 0)  # the shape is known now: passed as it came
    assert called([{"x": 1}], {}) == (Point(1), 0)  # a dict is still rebuilt
    assert called([4], {"n": 2}) == called([4], {"n": 2}) == (4, 2)
    assert called([{"x": 5}], {"n": 2}) == (Point(5), 2)
    with pytest.raises(BadArguments, match="arguments do not match"):
        definition.call_arguments([1, 2, 3], {})
    with pytest.raises(BadArguments, match="arguments do not match"):
        definition.call_arguments([], {"q": 1})

    @app.job(context=True)
    def with_context(ctx: object, a: int) -> None: ...

    marker = object()
    for _ in range(2):
        assert app.get_job(with_context.name).call_arguments([1], {}, marker) == ((marker, 1), {})


def test_bad_dispatches_are_clear_errors(app: Conveyor) -> None:
    @app.job
    def job(a: int) -> None: ...

    with pytest.raises(BadArguments, match="arguments do not match"):
        job.dispatch(1, 2)
    with pytest.raises(ConfigurationError, match="unknown job option"):
        job.options(priority="high", colour="red")
    with pytest.raises(ConfigurationError, match="invalid priority"):
        job.options(priority="urgent")
    with pytest.raises(ConfigurationError, match="invalid queue name"):
        job.options(queue="drop table;")
    with pytest.raises(PayloadTooLarge):
        Conveyor(app.settings.url, payload_max_bytes=100).job(name="j")(lambda s: None) \
            .dispatch("x" * 500)
    assert app.backend.queue_stats(0) == []  # nothing was stored


def test_job_ids_made_in_bulk_are_unique_ordered_uuid7() -> None:
    ids = JobIds()
    many = [*ids.many(5000), ids(), *ids.many(3)]  # well past 4,096 in one millisecond
    assert len(set(many)) == len(many) and many == sorted(many)
    for job_id in many:
        value = uuid.UUID(job_id)
        assert value.version == 7 and value.variant == uuid.RFC_4122
    assert ids.many(0) == []
    # the leading 48 bits are the millisecond the ids were made (a fresh JobIds: no
    # earlier burst pushed its clock ahead); their last 62 bits are random
    fresh = JobIds()
    before = time.time_ns() // 1_000_000
    made = fresh.many(10)
    after = time.time_ns() // 1_000_000
    assert all(before <= uuid.UUID(i).int >> 80 <= after for i in made)
    assert len({uuid.UUID(i).int & ((1 << 62) - 1) for i in made}) == 10


def test_duplicate_names_are_refused(app: Conveyor) -> None:
    @app.job(name="x")
    def a() -> None: ...

    with pytest.raises(ConfigurationError, match="two jobs are named 'x'"):
        @app.job(name="x")
        def b() -> None: ...


def test_fake_records_dispatches(app: Conveyor) -> None:
    @app.job(queue="emails")
    def send(to: str) -> None: ...

    @app.job
    def other() -> None: ...

    with app.fake() as fake:
        send.dispatch("a@x")
        send.options(priority="high").dispatch("b@x")
        fake.assert_dispatched(send)
        fake.assert_dispatched(send, 2)
        fake.assert_dispatched(send, queue="emails_high", args=("b@x",))
        fake.assert_not_dispatched(other)
        fake.assert_count(2)
        with pytest.raises(AssertionError, match="dispatched 2 time"):
            fake.assert_dispatched(send, 3)
        with pytest.raises(AssertionError, match="was not dispatched"):
            fake.assert_dispatched(other)
    assert app.backend.queue_stats(0) == []  # the fake stored nothing


def test_sync_connection_runs_inline_with_tries() -> None:
    app = Conveyor("sync://")
    seen: list[tuple[int, int]] = []

    @app.job(tries=3)
    def flaky(n: int) -> None:
        seen.append((n, current_job().attempt))
        if current_job().attempt < 2:
            raise RuntimeError("transient")

    @app.job(tries=2)
    def broken() -> None:
        raise ValueError("always")

    flaky.dispatch(7)
    assert seen == [(7, 1), (7, 2)]
    with pytest.raises(ValueError, match="always"):
        broken.dispatch()
    with pytest.raises(ConfigurationError, match="sync connection has no store"):
        _ = app.backend


def test_sync_connection_runs_async_jobs_and_typed_args() -> None:
    app = Conveyor("sync://")
    got: list[object] = []

    @app.job
    async def stamp(when: dt.date) -> None:
        got.append(when)

    stamp.dispatch(dt.date(2026, 1, 2))
    assert got == [dt.date(2026, 1, 2)]


def test_current_job_outside_a_job() -> None:
    with pytest.raises(ConveyorError, match="outside a running job"):
        current_job()
