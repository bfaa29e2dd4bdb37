"""Bad input, generated (hypothesis): whatever a payload, an argument, a queue name or a job
name holds, it ends in a clear error at dispatch or a failed record on the worker. The
worker never dies and never runs anything that is not registered."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor import Conveyor
from conveyor.errors import ConfigurationError, ConveyorError, SerializationError
from conveyor.records import NewJob
from conveyor.routing import validate_queue
from conveyor.testing import run_until_empty

# a background thread of the worker dying (the watchdog, the heartbeat) fails the test
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)
#: strings an attacker would try: quotes, comment markers, Lua and Redis hash-tag syntax
HOSTILE = st.one_of(
    st.text(min_size=1, max_size=60),
    st.sampled_from(["'", '"', "';--", "1; DROP TABLE jobs; --", "{q}", "}{", "a}b{c",
                     "\\x00", "\x00", "../../etc/passwd", "$(rm -rf /)", "`id`", "%s", "%(x)s",
                     "{s}", "*", "?", "\n", " ", "é", "🙂", "a" * 300, "KEYS *",
                     "redis.call('FLUSHALL')", "]]--", "\r\nFLUSHALL\r\n"]))
OPTIONS = st.dictionaries(
    st.sampled_from(["tries", "backoff", "timeout", "retry_until", "zzz"]),
    JSON | st.sampled_from([-1, 0, 1e308, "x", [], {}, True]), max_size=3)


class Calls:
    def __init__(self) -> None:
        self.made: list[tuple[Any, ...]] = []


@pytest.fixture
def app(tmp_path: Path) -> tuple[Conveyor, Calls]:
    app = Conveyor(f"sqlite:///{tmp_path / 'bad.db'}", payload_max_bytes=4096)
    calls = Calls()

    @app.job(name="add", tries=2, backoff=0)
    def add(a: int, b: int = 0) -> int:
        calls.made.append(("add", a, b))
        return a + b

    return app, calls


def stored_job(app: Conveyor, name: str, payload: str) -> str:
    """A row written straight into the store: what a bug, an old version or an attacker
    with write access to the store could leave there."""
    job_id = str(uuid.uuid4())
    now = app.clock()
    app.backend.jobs_insert([NewJob(job_id, "default", name, payload, now, now)])
    return job_id


def drain(app: Conveyor, ids: list[str]) -> list[str]:
    """Run a burst worker; every job must be settled. Returns the failure texts."""
    worker = run_until_empty(app, ["default"], concurrency=2, lease=5)
    assert worker.exit_code == 0
    texts = []
    for job_id in ids:
        assert app.backend.jobs_get(job_id) is None, "a job was left behind"
        failed = app.backend.failed_get(job_id)
        if failed is not None:
            assert failed.exception.strip(), "a failure without a reason"
            texts.append(failed.exception)
    return texts


def payload_like() -> st.SearchStrategy[str]:
    """Documents shaped like payloads, with wrong parts, plus plain garbage."""
    document = st.fixed_dictionaries(
        {}, optional={"v": JSON, "job": st.sampled_from(["add", "os.system", "nope"]) | JSON,
                      "args": JSON | st.lists(JSON, max_size=3),
                      "kwargs": JSON | st.dictionaries(st.sampled_from(["a", "b", "c"]), JSON),
                      "meta": OPTIONS | JSON, "enc": JSON, "data": JSON})
    return st.one_of(
        document.map(lambda d: json.dumps(d)),
        st.text(max_size=200),
        st.sampled_from(['{"job":"add","args":[1,2],"meta":{"timeout":Infinity}}',
                         '{"job":"add","args":[NaN]}', "[]", "null", '"add"', "{}",
                         '{"job":"add","args":[{"__cv__":"datetime","v":"not a date"}]}',
                         '{"job":"add","args":[{"__cv__":"pickle","v":"gASV"}]}']))


@SETTINGS
@given(payloads=st.lists(payload_like(), min_size=1, max_size=8),
       names=st.lists(st.sampled_from(["add", "nope", "os.system"]), min_size=8, max_size=8))
def test_random_payloads_end_in_a_failed_record_or_run(
        app: tuple[Conveyor, Calls], payloads: list[str], names: list[str]) -> None:
    conveyor, calls = app
    calls.made.clear()
    ids = [stored_job(conveyor, name, payload) for name, payload in zip(names, payloads,
                                                                       strict=False)]
    texts = drain(conveyor, ids)
    assert len(texts) + len(calls.made) >= len(ids)  # each failed, or ran (and maybe failed)
    ran_rows = sum(1 for name in names[:len(ids)] if name == "add")
    assert len(calls.made) <= ran_rows  # only rows naming a registered job ever run


def test_unregistered_names_never_run_and_say_why(app: tuple[Conveyor, Calls]) -> None:
    conveyor, calls = app
    payload = json.dumps({"v": 1, "job": "os.system", "args": ["touch /tmp/owned"]})
    (text,) = drain(conveyor, [stored_job(conveyor, "os.system", payload)])
    assert "no job named 'os.system' is registered" in text and calls.made == []
    mismatch = json.dumps({"v": 1, "job": "os.system", "args": [1]})
    (text,) = drain(conveyor, [stored_job(conveyor, "add", mismatch)])
    assert "payload names job 'os.system' but the row names 'add'" in text
    assert calls.made == []


@SETTINGS
@given(cut=st.integers(min_value=0, max_value=400), extra=st.integers(1, 5000))
def test_truncated_and_oversize_payloads_fail_clearly(
        app: tuple[Conveyor, Calls], cut: int, extra: int) -> None:
    conveyor, calls = app
    calls.made.clear()
    valid = json.dumps({"v": 1, "job": "add", "args": [1], "kwargs": {"b": 2}, "meta": {}})
    truncated = valid[:cut % len(valid)]
    oversize = json.dumps({"v": 1, "job": "add", "args": ["x" * (4096 + extra)]})
    ids = [stored_job(conveyor, "add", truncated), stored_job(conveyor, "add", oversize)]
    texts = drain(conveyor, ids)
    assert any("over the cap of 4096" in t for t in texts)
    assert len(texts) == 2 and calls.made == [], texts


@SETTINGS
@given(args=st.lists(JSON, max_size=4), kwargs=st.dictionaries(st.text(max_size=5), JSON,
                                                                 max_size=3))
def test_arguments_that_do_not_bind_fail_at_dispatch(
        app: tuple[Conveyor, Calls], args: list[Any], kwargs: dict[str, Any]) -> None:
    conveyor, _ = app
    add = conveyor.get_job("add")
    try:
        add.signature.bind(*args, **kwargs)  # type: ignore[union-attr]
        binds = True
    except TypeError:
        binds = False
    try:
        add.dispatch(*args, **kwargs)
        assert binds
    except ConveyorError as exc:
        assert not binds or isinstance(exc, SerializationError), exc
        assert str(exc)


@pytest.mark.parametrize("value", [object(), lambda: 1, {1: "int key"}, float("nan"),
                                   Path("/etc"), type, {"a": {1, 2}}.keys(), 1j])
def test_arguments_that_are_not_data_fail_at_dispatch(
        app: tuple[Conveyor, Calls], value: object) -> None:
    conveyor, _ = app
    with pytest.raises(SerializationError) as info:
        conveyor.get_job("add").dispatch(value)
    assert "job argument" in str(info.value) or "JSON" in str(info.value) or "keys" in str(
        info.value)
    assert conveyor.backend.queue_stats(0) == []


@SETTINGS
@given(options=OPTIONS)
def test_dispatch_options_are_checked(app: tuple[Conveyor, Calls],
                                      options: dict[str, Any]) -> None:
    conveyor, calls = app
    calls.made.clear()
    try:
        job_id = conveyor.get_job("add").options(**options).dispatch(1)
    except ConfigurationError as exc:
        assert "zzz" in options or str(exc)
        return
    drain(conveyor, [job_id])


@SETTINGS
@given(name=HOSTILE)
def test_queue_names_are_validated(app: tuple[Conveyor, Calls], name: str) -> None:
    conveyor, calls = app
    try:
        validate_queue(name)
    except ConfigurationError as exc:
        assert "invalid queue name" in str(exc)
        with pytest.raises(ConfigurationError):
            conveyor.get_job("add").options(queue=name)
        return
    job_id = conveyor.get_job("add").options(queue=name).dispatch(1)
    job = conveyor.backend.jobs_get(job_id)
    assert job is not None and job.queue == name
    calls.made.clear()
    worker = run_until_empty(conveyor, [name])
    assert worker.exit_code == 0 and calls.made == [("add", 1, 0)]


# -- regressions found by the generated tests above ---------------------------------------
@pytest.mark.parametrize(("meta", "message"), [
    ({"tries": "abc"}, "has invalid options (meta)"),
    ({"backoff": [None]}, "has invalid options (meta)"),
    ({"retry_until": {}}, "has invalid options (meta)"),
])
def test_bad_options_in_a_stored_payload_fail_the_job_not_the_worker(
        app: tuple[Conveyor, Calls], meta: dict[str, Any], message: str) -> None:
    conveyor, calls = app
    payload = json.dumps({"v": 1, "job": "add", "args": [1], "meta": meta})
    (text,) = drain(conveyor, [stored_job(conveyor, "add", payload)])
    assert message in text and calls.made == []


def test_a_far_timeout_does_not_kill_the_watchdog(app: tuple[Conveyor, Calls]) -> None:
    conveyor, calls = app
    far = json.dumps({"v": 1, "job": "add", "args": [1], "meta": {"timeout": 1e300}})
    nan = '{"v": 1, "job": "add", "args": [2], "meta": {"timeout": NaN}}'
    ids = [stored_job(conveyor, "add", far), stored_job(conveyor, "add", nan)]
    (text,) = drain(conveyor, ids)  # the far one runs; NaN is not JSON
    assert calls.made == [("add", 1, 0)] and "NaN is not a JSON value" in text


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1])
def test_timeouts_and_delays_must_be_finite(app: tuple[Conveyor, Calls], value: float) -> None:
    conveyor, _ = app
    for option in ("timeout", "delay"):
        with pytest.raises(ConfigurationError, match="number of seconds >= 0"):
            conveyor.get_job("add").options(**{option: value})


@pytest.mark.parametrize("spec", [[None], ["x"], {"exponential": "x"}, [float("inf")],
                                  {"exponential": 1, "cap": float("nan")}, object()])
def test_bad_backoffs_are_configuration_errors(spec: Any) -> None:
    from conveyor.retry import parse_backoff

    with pytest.raises(ConfigurationError, match="invalid backoff"):
        parse_backoff(spec)
