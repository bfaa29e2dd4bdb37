"""``conveyor health``: the exit code and the line of each rule, and alerts sent at most
once per rule per cooldown to a webhook and a mail server on loopback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.backends.sqlite.backend import SQLiteBackend

from .conftest import AppFactory
from .monitoring_store import Clock, populate, run_cli


@pytest.fixture
def app(make_app: AppFactory) -> Conveyor:
    app = make_app()
    populate(app)
    return app


def health(app: Conveyor, *args: str) -> tuple[int, list[str]]:
    result = run_cli(app, "health", *args)
    return result.exit_code, result.output.splitlines()


def risks(app: Conveyor) -> list[str]:
    """Lines of the store's own risks (the shared Redis server may run without
    persistence): every health run reports them too."""
    return [f"store_risk: {r}" for r in app.backend.store_risks()]


def test_healthy_without_thresholds(app: Conveyor) -> None:
    if risks(app):
        assert health(app) == (1, risks(app))
    else:
        assert health(app) == (0, [f"ok: {app.display_url} is healthy"])


@pytest.mark.parametrize(("crossed", "fine", "line"), [
    (["--max-depth", "2"], ["--max-depth", "3"],
     "depth: queue emails has 3 waiting jobs (--max-depth 2)"),
    (["--max-wait", "90s"], ["--max-wait", "2m"],
     "wait: queue emails: the oldest waiting job has waited 100s (--max-wait 90s)"),
    (["--max-failure-rate", "10%", "--window", "5m"], ["--max-failure-rate", "0.25"],
     "failure_rate: queue emails: 2 of 10 attempts failed in the last 300s "
     "(20.0%, --max-failure-rate 10.0%)"),
    (["--no-workers"], [],
     "no_workers: queue images has 1 waiting jobs and no live worker serves it"),
    (["--max-memory", "100"], ["--max-memory", "200"],
     "memory: worker w1 uses 123 MB (--max-memory 100)"),
])
def test_each_rule(app: Conveyor, crossed: list[str], fine: list[str], line: str) -> None:
    assert health(app, *crossed) == (1, [line, *risks(app)])
    assert health(app, *fine) == health(app)


def test_paused_queues_wait_on_purpose(app: Conveyor) -> None:
    code, lines = health(app, "--max-wait", "20s")
    assert (code, [line.split(":")[1].strip() for line in lines if line.startswith("wait")]) \
        == (1, ["queue emails", "queue images"])  # reports waited 30 s too, but is paused


def test_json_and_several_problems(app: Conveyor) -> None:
    result = run_cli(app, "health", "--max-depth", "0", "--no-workers", "--json")
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["healthy"] is False
    assert [(p["rule"], p["subject"]) for p in data["problems"]
            if p["rule"] != "store_risk"] == [
        ("depth", "default"), ("depth", "emails"), ("depth", "images"), ("depth", "reports"),
        ("no_workers", "images")]


def test_store_unreachable(tmp_path: Path) -> None:
    with Conveyor(f"sqlite:///{tmp_path / 'missing' / 'x.db'}") as app:
        code, lines = health(app, "--max-depth", "5")
    assert code == 3 and len(lines) == 1
    assert lines[0].startswith("store: sqlite:///") and "is unreachable: " in lines[0]


class RiskySQLite(SQLiteBackend):
    """A real SQLite store that also answers the optional ``store_risks`` method."""

    def store_risks(self) -> list[str]:
        return ["maxmemory-policy is allkeys-lru: Redis may evict jobs; set noeviction"]


def test_store_risks_are_problems(app: Conveyor) -> None:
    if not app.settings.url.startswith("sqlite"):
        pytest.skip("a SQLite store with the optional method stands in for every store")
    app._backend = RiskySQLite(app.settings.url)
    assert health(app) == (1, [
        "store_risk: maxmemory-policy is allkeys-lru: Redis may evict jobs; set noeviction"])


# -- alerts ------------------------------------------------------------------------------------
class Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.received.append(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", server.received  # type: ignore[attr-defined]
    server.shutdown()
    thread.join(5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rules(posts: list[dict[str, Any]]) -> list[str]:
    """The rules alerted, leaving out the store's own risks (alerted once like any rule)."""
    return sorted(f"{p['conveyor']['rule']}:{p['conveyor']['subject']}" for p in posts
                  if p["conveyor"]["rule"] != "store_risk")


def test_webhook_once_per_rule_per_cooldown(app: Conveyor, clock: Clock, tmp_path: Path,
                                            webhook: tuple[str, list[dict[str, Any]]]) -> None:
    url, posts = webhook
    notify = ["--notify", "--webhook", url, "--cooldown", "60s",
              "--state-file", str(tmp_path / "alerts.json"), "--max-depth", "2",
              "--max-wait", "99s"]
    assert health(app, *notify)[0] == 1
    assert rules(posts) == ["depth:emails", "wait:emails"]
    assert len(posts) == 2 + len(risks(app))  # the store's risks alert once each too
    assert posts[0]["text"].startswith(f":rotating_light: conveyor on {app.display_url}: ")
    first = len(posts)
    for _ in range(3):  # cron runs within the cooldown: nothing new
        clock.now += 1
        assert health(app, *notify)[0] == 1
    assert len(posts) == first
    clock.now += 1  # a new rule crossed within the cooldown alerts at once, alone
    health(app, *notify, "--max-memory", "100")
    assert rules(posts[first:]) == ["memory:w1"] and len(posts) == first + 1
    clock.now += 60  # past the cooldown: one more of each
    health(app, *notify)
    assert rules(posts[first + 1:]) == ["depth:emails", "wait:emails"]

def test_email_alert_through_mail_settings(sqlite_url: str, clock: Clock, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received: list[Any] = []

    class Collect(Message):
        def handle_message(self, message: Any) -> None:
            received.append(message)

    port = free_port()
    controller = Controller(Collect(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        monkeypatch.setenv("MAIL_HOST", "127.0.0.1")
        monkeypatch.setenv("MAIL_PORT", str(port))
        monkeypatch.setenv("MAIL_FROM_ADDRESS", "queues@shop.test")
        monkeypatch.setenv("CONVEYOR_ALERT_EMAIL", "ops@shop.test")
        monkeypatch.setenv("CONVEYOR_ALERT_STATE_FILE", str(tmp_path / "state.json"))
        with Conveyor(sqlite_url, clock=clock) as app:
            populate(app)
            for _ in range(2):
                assert health(app, "--notify", "--max-depth", "2", "--no-workers")[0] == 1
    finally:
        controller.stop()
    (message,) = received
    assert message["To"] == "ops@shop.test" and message["From"] == "queues@shop.test"
    subject = str(make_header(decode_header(message["Subject"])))
    assert subject.startswith("conveyor: 2 problem(s) on sqlite:///")
    body = message.get_payload()
    assert "queue emails has 3 waiting jobs" in body and "queue images has 1 waiting" in body


def test_notify_needs_a_destination(app: Conveyor) -> None:
    result = run_cli(app, "health", "--notify")
    assert result.exit_code == 2 and "--notify needs somewhere to send" in result.output
