from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import ConfigurationError
from conveyor.settings import load_settings


def test_defaults(tmp_path: Path) -> None:
    s = load_settings(tmp_path, environ={})
    assert s.url == "sqlite:///conveyor.db"
    assert (s.worker_timeout, s.worker_memory, s.worker_sleep, s.worker_tries) == (60, 512, 3, 3)


def test_seed_variables(tmp_path: Path) -> None:
    s = load_settings(tmp_path, environ={
        "QUEUE_CONNECTION": "redis", "REDIS_URL": "redis://h:6379/2",
        "QUEUE_WORKER_TIMEOUT": "90", "QUEUE_WORKER_MEMORY": "256", "QUEUE_WORKER_SLEEP": "1",
        "QUEUE_WORKER_TRIES": "5"})
    assert s.url == "redis://h:6379/2"
    assert (s.worker_timeout, s.worker_memory, s.worker_sleep, s.worker_tries) == (90, 256, 1, 5)
    db = load_settings(tmp_path, environ={"QUEUE_CONNECTION": "database",
                                          "DATABASE_URL": "postgresql://u@h/db"})
    assert db.url == "postgresql://u@h/db"
    assert load_settings(tmp_path, environ={"QUEUE_CONNECTION": "sync"}).url == "sync://"
    conveyor_url = load_settings(tmp_path, environ={"CONVEYOR_URL": "sqlite:///x.db",
                                                    "QUEUE_CONNECTION": "redis"})
    assert conveyor_url.url == "sqlite:///x.db"


def test_files_then_dotenv_then_environment(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.conveyor]\nworker_tries = 7\nworker_sleep = 2\nworker_memory = 100\n'
        'routing = [{job = "send", type = "newsletter", priority = "low"}]\n')
    (tmp_path / ".env").write_text(
        '# comment\nQUEUE_WORKER_SLEEP="4"\nexport QUEUE_WORKER_MEMORY=200\n')
    s = load_settings(tmp_path, environ={"QUEUE_WORKER_MEMORY": "300"})
    assert (s.worker_tries, s.worker_sleep, s.worker_memory) == (7, 4, 300)
    assert s.routing[0]["priority"] == "low"
    assert s.env["QUEUE_WORKER_SLEEP"] == "4"
    (tmp_path / "conveyor.toml").write_text("worker_tries = 9\n")
    assert load_settings(tmp_path, environ={}).worker_tries == 9


@pytest.mark.parametrize(("env", "message"), [
    ({"QUEUE_CONNECTION": "kafka"}, "QUEUE_CONNECTION='kafka' is not valid: accepted values"),
    ({"QUEUE_CONNECTION": "database"}, "needs DATABASE_URL"),
    ({"QUEUE_WORKER_TIMEOUT": "soon"}, "worker_timeout='soon' is not valid"),
    ({"QUEUE_WORKER_TRIES": "0"}, "worker_tries='0' is not valid"),
    ({"CONVEYOR_LOG_FORMAT": "xml"}, "log_format='xml' is not valid"),
    ({"CONVEYOR_URL": "nonsense"}, "url='nonsense' is not valid"),
])
def test_invalid_settings_fail_with_one_clear_line(tmp_path: Path, env: dict[str, str],
                                                   message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings(tmp_path, environ=env)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_unknown_file_key(tmp_path: Path) -> None:
    (tmp_path / "conveyor.toml").write_text("worker_triez = 2\n")
    with pytest.raises(ConfigurationError, match="unknown setting 'worker_triez'"):
        load_settings(tmp_path, environ={})
