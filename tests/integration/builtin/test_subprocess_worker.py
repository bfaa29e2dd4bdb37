"""The built-ins configured from MAIL_*/FCM_* settings, run by a real `conveyor work`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conveyor import Conveyor
from conveyor.builtin import email, notifications
from conveyor.builtin.config import FcmSettings, MailSettings
from conveyor.testing.fcm_server import FcmServer

from .smtp_server import smtp_server

PASSWORD = "subprocess-pa55-never-logged"

APP = textwrap.dedent("""
    from conveyor import Conveyor
    from conveyor.builtin import email, notifications

    app = Conveyor()
    email.install(app)
    notifications.install(app, on_invalid_tokens=lambda tokens: print("REMOVED", tokens))
""")


def test_worker_process_sends_mail_and_push_from_settings(tmp_path: Path) -> None:
    (tmp_path / "shopapp.py").write_text(APP)
    url = f"sqlite:///{tmp_path / 'q.db'}"
    with smtp_server(username="shop", password=PASSWORD) as (handler, port), \
            FcmServer(project_id="shop") as fcm:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MAIL_", "FCM_", "CONVEYOR_", "QUEUE_"))}
        env.update(fcm.env())
        env.update(CONVEYOR_URL=url, MAIL_HOST="127.0.0.1", MAIL_PORT=str(port),
                   MAIL_USERNAME="shop", MAIL_PASSWORD=PASSWORD, MAIL_RETRY_BASE="0",
                   MAIL_FROM_ADDRESS="shop@grofresh.test", PYTHONPATH=str(tmp_path))
        app = Conveyor(url)  # the web side only dispatches: same job names, no secrets
        mail = email.install(app, settings=MailSettings(mailer="log"))
        push = notifications.install(app, settings=FcmSettings())
        handler.rcpt_script["ann@example.com"] = ["451 4.7.1 try again"]
        mail.send({"subject": "Order 1", "to": ["ann@example.com"], "text": "thanks"},
                  type="order_confirmation")
        fcm.unregistered.add("old")
        push.send({"title": "On its way"}, ["new", "old"], type="delivery_alert")
        done = subprocess.run(
            [sys.executable, "-m", "conveyor", "--app", "shopapp:app", "work",
             "--stop-when-empty", "--sleep", "0.1"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [m.rcpt_tos for m in handler.messages] == [["ann@example.com"]]
    assert fcm.delivered("new") == 1 and "REMOVED ['old']" in done.stdout
    assert "released" in done.stderr  # the 451 was retried by the worker
    assert PASSWORD not in done.stdout + done.stderr
    assert app.backend.failed_list() == []
