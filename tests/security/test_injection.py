"""No injection: hostile ids, queue names and worker names round-trip through every store or
are refused, and never change what a statement or script does; hostile strings in every CLI
argument and setting end in a clear error, never a traceback."""

from __future__ import annotations

import time
import uuid

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.backends import Backend
from conveyor.cli.main import cli
from conveyor.errors import ConfigurationError, ConveyorError
from conveyor.records import NewJob, WorkerInfo
from conveyor.settings import ENV_FIELDS, load_settings
from tests.backends.conftest import backend, store_url  # noqa: F401 - fixtures, every store

from .test_bad_input import HOSTILE

SETTINGS = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def new_job(queue: str) -> NewJob:
    now = time.time()
    return NewJob(str(uuid.uuid4()), queue, "add", '{"v":1,"job":"add","args":[1]}', now - 1,
                  now - 1)


def still_works(store: Backend) -> None:
    """The tables (keys) are intact: a job goes in and comes out."""
    job = new_job("default")
    store.jobs_insert([job])
    (reserved,) = store.jobs_reserve(["default"], 1, 30, "w", time.time())
    assert reserved.id == job.id
    assert store.jobs_complete([reserved.lease]) == 1


@SETTINGS
@given(text=HOSTILE)
def test_hostile_ids_find_nothing_and_break_nothing(backend: Backend, text: str) -> None:  # noqa: F811
    try:
        assert backend.jobs_get(text) is None
        assert backend.failed_get(text) is None
        assert backend.failed_forget(text) is False
        assert backend.failed_retry([text], time.time()) == []
        backend.worker_remove(text)
    except ConveyorError as exc:  # refused (PostgreSQL text cannot hold NUL): said clearly
        assert "\x00" in text and "NUL" in str(exc), exc
    still_works(backend)


@SETTINGS
@given(queue=HOSTILE)
def test_hostile_queue_names_round_trip_or_are_refused(backend: Backend, queue: str) -> None:  # noqa: F811
    job = new_job(queue)
    try:
        backend.jobs_insert([job])
    except ConveyorError as exc:
        assert str(exc)
        still_works(backend)
        return  # refused cleanly
    assert queue in {s.queue for s in backend.queue_stats(time.time())}
    backend.queue_pause(queue)
    assert backend.jobs_reserve([queue], 5, 30, "w", time.time()) == []
    assert queue in backend.queues_paused()
    backend.queue_resume(queue)
    (reserved,) = backend.jobs_reserve([queue], 5, 30, "w", time.time())
    assert (reserved.id, reserved.queue) == (job.id, queue)
    assert backend.jobs_complete([reserved.lease]) == 1
    still_works(backend)


@SETTINGS
@given(name=HOSTILE)
def test_hostile_worker_names_round_trip(backend: Backend, name: str) -> None:  # noqa: F811
    now = time.time()
    worker = WorkerInfo(name=name, host=name, pid=1, queues=[name], concurrency=1,
                        started_at=now, last_heartbeat=now, info={"note": name})
    try:
        backend.worker_register(worker)
    except ConveyorError as exc:  # NUL on PostgreSQL, 256+ characters on MySQL
        assert "NUL" in str(exc) or "too long" in str(exc), exc
        still_works(backend)
        return
    assert name in {w.name for w in backend.worker_list()}
    backend.worker_remove(name)
    assert name not in {w.name for w in backend.worker_list()}


COMMANDS = [
    ["retry", "{}"], ["forget", "{}"], ["pause", "{}"], ["resume", "{}"],
    ["clear", "{}", "--force"], ["failed", "--queue", "{}"], ["monitor", "--retry", "{}"],
    ["flush", "--hours", "{}"], ["work", "--queue", "{}", "--stop-when-empty"],
    ["work", "--backoff", "{}", "--stop-when-empty"],
    ["work", "--name", "{}", "--stop-when-empty", "--quiet"],
]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from(COMMANDS), text=HOSTILE.filter(lambda t: "\x00" not in t))
def test_hostile_cli_arguments_end_in_a_clear_exit(runner: CliRunner, sqlite_url: str,
                                                   command: list[str], text: str) -> None:
    args = ["--app", "tests.apps.basic:app", "--connection", sqlite_url,
            *[text if part == "{}" else part for part in command]]
    result = runner.invoke(cli, args, catch_exceptions=True)
    assert result.exit_code in (0, 1, 2), (args, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        args, result.exception)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("option", ["--app", "--connection"])
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=HOSTILE.filter(lambda t: "\x00" not in t))
def test_hostile_app_and_connection_end_in_a_clear_exit(runner: CliRunner, sqlite_url: str,
                                                        option: str, text: str) -> None:
    other = ["--connection", sqlite_url] if option == "--app" else ["--app",
                                                                     "tests.apps.basic:app"]
    result = runner.invoke(cli, [option, text, *other, "monitor"], catch_exceptions=True)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        text, result.exception)
    assert "Traceback" not in result.output


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted([*ENV_FIELDS, "QUEUE_CONNECTION", "CONVEYOR_URL"])),
       text=HOSTILE)
def test_hostile_settings_are_accepted_or_refused_in_one_line(name: str, text: str) -> None:
    try:
        load_settings(environ={name: text})
    except ConfigurationError as exc:
        message = str(exc)
        assert "\n" not in message.strip() or name == "CONVEYOR_URL"
        if name == "CONVEYOR_ENCRYPTION_KEYS":
            assert text.strip() not in message or len(text.strip()) < 2  # never echo a key
