"""A MariaDB server of the test's own (temporary datadir, free port) that the test may kill
and start again: the shared server on 3306 is never restarted."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import IN_CI


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateMariaDB:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.datadir = directory / "data"
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.root_user = ["--user=root"] if os.geteuid() == 0 else []

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/conveyor_test"

    def install(self) -> None:
        binary = shutil.which("mariadb-install-db")
        if binary is None or shutil.which("mariadbd", path="/usr/sbin:/usr/bin") is None:
            message = "mariadb-install-db / mariadbd are not installed"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)
        subprocess.run(
            [binary, "--no-defaults", f"--datadir={self.datadir}", "--skip-test-db",
             "--auth-root-authentication-method=normal", "--skip-name-resolve",
             *self.root_user],
            check=True, capture_output=True, timeout=90)

    def start(self) -> None:
        mariadbd = shutil.which("mariadbd", path="/usr/sbin:/usr/bin")
        assert mariadbd is not None
        log = (self.directory / "server.log").open("ab")
        self.process = subprocess.Popen(
            [mariadbd, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.directory / 'sock'}",
             f"--pid-file={self.directory / 'pid'}", "--skip-log-bin", "--skip-name-resolve",
             "--innodb-buffer-pool-size=32M", "--max-connections=200", *self.root_user],
            stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        import pymysql

        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None and self.process.poll() is None, \
                (self.directory / "server.log").read_text()[-2000:]
            try:
                conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                                       password="", connect_timeout=1)
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
                continue
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE IF NOT EXISTS conveyor_test CHARACTER SET utf8mb4")
            conn.close()
            return

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean shutdown (InnoDB recovers on the next start)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
