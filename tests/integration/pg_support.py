"""Helpers for PostgreSQL process tests: a schema of the test's own, `conveyor work`
subprocesses running tests.apps.pg_jobs, and a private PostgreSQL server to restart."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
APP = "tests.apps.pg_jobs:app"


@dataclass
class PgSetup:
    dsn: str  # plain libpq URL of the database
    schema: str
    tmp: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.dsn}?schema={self.schema}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CONVEYOR_", "QUEUE_")) and k != "DATABASE_URL"}
        env.update(CONVEYOR_URL=self.url, PGAPP_DSN=self.dsn, PGAPP_SCHEMA=self.schema,
                   PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "src")]))
        return env

    def prepare(self) -> None:
        """Create the store's tables and the jobs' ``runs`` table."""
        from conveyor.backends import open_backend

        backend = open_backend(self.url)
        try:
            backend.migrate()
        finally:
            backend.close()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f'CREATE TABLE "{self.schema}".runs (n integer PRIMARY KEY, '
                         "runs integer NOT NULL, started double precision NOT NULL, "
                         "pid integer NOT NULL)")

    def worker(self, *args: str, name: str = "w") -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "--app", APP, "work", "--quiet", *args],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.tmp.glob("*.log")))

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            return conn.execute(sql.replace("{s}", f'"{self.schema}"'), params).fetchall()

    def runs(self) -> dict[int, int]:
        return dict(self.query("SELECT n, runs FROM {s}.runs"))  # type: ignore[arg-type]

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


def wait_until(condition: Callable[[], Any], timeout: float, what: str,
               interval: float = 0.05) -> Any:
    """Poll ``condition`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


@contextmanager
def pg_setup(tmp: Path, dsn: str) -> Iterator[PgSetup]:
    setup = PgSetup(dsn=dsn, schema=f"conveyor_i_{os.urandom(5).hex()}", tmp=tmp)
    try:
        yield setup
    finally:
        setup.stop_all()
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{setup.schema}" CASCADE')
        except psycopg.OperationalError:
            pass  # a private server that is gone takes the schema with it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnPostgres:
    """A throwaway PostgreSQL server in a temp dir on a free port, which a test may stop and
    start at will (the shared server on 5432 is never touched)."""

    def __init__(self) -> None:
        # its own temp dir: pytest's (mode 0700, owned by the test user) would keep a
        # server running as "postgres" out
        self.root = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
        self.data = self.root / "pgdata"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # the server refuses to run as root
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
        self._run(PG_BIN / "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str | Path) -> None:
        subprocess.run([*self._as_user, *map(str, cmd)], check=True, capture_output=True,
                       timeout=60)

    def start(self) -> None:
        self._run(PG_BIN / "pg_ctl", "-D", str(self.data), "-w", "-t", "30",
                  "-l", str(self.root / "server.log"), "-o",
                  f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(PG_BIN / "pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-m", mode,
                  "stop")

    def close(self) -> None:
        with suppress(subprocess.CalledProcessError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
