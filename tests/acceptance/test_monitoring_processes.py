"""Real processes: a burst worker records metrics the monitor then shows (and keeps them
across a restart), `monitor --watch` renders and exits on SIGINT, supervisor-config."""

from __future__ import annotations

import configparser
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import Conveyor
from tests.integration.monitoring_store import run_cli

APP_MODULE = '''
from conveyor import Conveyor

app = Conveyor()


@app.job(name="shopapp.send", queue="emails", tries=1, timeout=600)
def send(n: int) -> None:
    if n % 4 == 0:
        raise ValueError(f"bad order {n}")
'''


@pytest.fixture
def shop(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Conveyor, dict[str, str]]]:
    (tmp_path / "shopapp.py").write_text(APP_MODULE)
    env = {**os.environ, "CONVEYOR_URL": sqlite_url, "CONVEYOR_APP": "shopapp:app",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    app = Conveyor(sqlite_url)

    @app.job(name="shopapp.send", queue="emails", tries=1)
    def send(n: int) -> None: ...

    yield app, env
    app.close()


def conveyor(env: dict[str, str], *args: str,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conveyor", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, check=False)


def test_burst_worker_metrics_shown_by_monitor_and_kept_across_restart(
        shop: tuple[Conveyor, dict[str, str]]) -> None:
    app, env = shop
    send = app.registry["shopapp.send"]
    app.dispatch_many([send.prepare(n) for n in range(12)])
    done = conveyor(env, "work", "--queue", "emails", "--stop-when-empty", "--json",
                    "--name", "host-a:1")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    jobs = [line for line in lines if line.get("event") == "job"]
    assert len(jobs) == 12 and {j["outcome"] for j in jobs} == {"done", "failed"}
    assert set(jobs[0]) >= {"ts", "level", "logger", "message", "queue", "job", "id",
                            "attempt", "tries", "duration_ms", "wait_ms", "outcome",
                            "timed_out", "worker"}
    assert jobs[0]["worker"] == "host-a:1" and jobs[0]["job"] == "shopapp.send"

    stats = json.loads(run_cli(app, "monitor", "--stats", "--json").output)
    (emails,) = stats["queues"]
    assert (emails["queue"], emails["processed"], emails["failed"]) == ("emails", 12, 3)
    overview = json.loads(run_cli(app, "monitor", "--json").output)
    (row,) = overview["queues"]
    assert (row["failed"], row["available"]) == (3, 0) and row["throughput_per_min"] > 0

    # the same worker again (restarted by its supervisor): its totals add up
    app.dispatch_many([send.prepare(n) for n in range(12, 16)])
    assert conveyor(env, "work", "--queue", "emails", "--stop-when-empty", "--quiet",
                    "--name", "host-a:1").returncode == 0
    stats = json.loads(run_cli(app, "monitor", "--stats", "--json").output)
    assert (stats["total"]["processed"], stats["total"]["failed"]) == (16, 4)


def read_until(fd: int, needle: bytes, deadline: float) -> bytes:
    seen = b""
    while needle not in seen:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"{needle!r} never appeared in {seen[-2000:]!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def _ctrl_c_enabled() -> None:
    """In the child: SIGINT as a terminal gives it. A test run started in the background
    (``cmd &`` in a script) inherits SIGINT ignored, and Python then installs no
    KeyboardInterrupt handler, so Ctrl-C could not be simulated."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_watch_renders_and_exits_on_sigint(shop: tuple[Conveyor, dict[str, str]]) -> None:
    app, env = shop
    app.registry["shopapp.send"].dispatch(1)
    app.close()
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "conveyor", "monitor", "--watch",
                             "--interval", "0.2"], env=env | {"COLUMNS": "160"},
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True,
                            preexec_fn=_ctrl_c_enabled)
    os.close(slave)
    try:
        out = read_until(master, b"emails", time.monotonic() + 30)
        out += read_until(master, b"Queues on", time.monotonic() + 30)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"Traceback" not in out


def test_watch_json_lines_until_sigint(shop: tuple[Conveyor, dict[str, str]]) -> None:
    _app, env = shop
    proc = subprocess.Popen([sys.executable, "-m", "conveyor", "monitor", "--workers",
                             "--watch", "--json", "--interval", "0.2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_enabled)
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline()) == []
        assert json.loads(proc.stdout.readline()) == []  # a second frame
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_supervisor_config(shop: tuple[Conveyor, dict[str, str]], tmp_path: Path) -> None:
    _app, env = shop
    result = conveyor(env, "supervisor-config", "--numprocs", "3", "--queue",
                      "emails_high,emails", "--user", "www-data", "--directory", str(tmp_path))
    assert result.returncode == 0, result.stderr
    block, unit = result.stdout.split("# /etc/systemd/system/")
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(block)
    program = parser["program:conveyor-worker"]
    assert program["numprocs"] == "3" and program["user"] == "www-data"
    assert program["stopasgroup"] == "true" and program["killasgroup"] == "true"
    assert int(program["stopwaitsecs"]) > 600  # longer than the longest job timeout
    assert program["directory"] == str(tmp_path)
    command = program["command"]
    assert "--app shopapp:app work --queue emails_high,emails" in command
    grace = int(command.split("--grace ")[1])
    assert 600 < grace < int(program["stopwaitsecs"])
    assert f"TimeoutStopSec={program['stopwaitsecs']}" in unit
    assert "Restart=always" in unit and "KillSignal=SIGTERM" in unit
    assert f"ExecStart={command}" in unit
