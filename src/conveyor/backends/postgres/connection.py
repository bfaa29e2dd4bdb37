"""Connections: a psycopg pool per process, psycopg errors turned into conveyor's, and the
dedicated LISTEN connection that wakes idle workers."""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from ...errors import StoreError, StoreUnavailable
from .options import PostgresOptions

T = TypeVar("T")
Conn = psycopg.Connection[tuple[Any, ...]]
#: SQLSTATE classes that mean "the server went away", not "the statement was wrong"
_GONE = ("08", "57P")
#: an idle listener checks its connection this often, to find a silently dead peer
_LISTENER_CHECK = 15.0


def is_disconnect(exc: psycopg.Error) -> bool:
    if not isinstance(exc, psycopg.OperationalError):
        return False
    return exc.sqlstate is None or exc.sqlstate.startswith(_GONE)


def _text(exc: BaseException) -> str:
    """The server's message (without the statement excerpt) or libpq's, on one line,
    ending as a sentence."""
    primary = exc.diag.message_primary if isinstance(exc, psycopg.Error) else None
    text = " ".join((primary or str(exc)).split())
    return text if text.endswith((".", "?", "!")) else f"{text}."


def translate(exc: BaseException, where: str) -> StoreError:
    """A psycopg or pool error as a conveyor error whose message says what to do."""
    if isinstance(exc, PoolTimeout):
        return StoreUnavailable(
            f"PostgreSQL store {where} is unreachable (no connection within the pool timeout): "
            f"{_text(exc)} Check that the server runs and the URL is right"
        )
    if isinstance(exc, psycopg.Error) and is_disconnect(exc):
        return StoreUnavailable(
            f"PostgreSQL store {where} is unreachable: {_text(exc)} Check that the "
            "server runs and accepts connections; workers retry on their own"
        )
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.InvalidSchemaName):
        return StoreError(
            f"PostgreSQL store {where}: {_text(exc)} Create the tables with "
            "`conveyor migrate` (same URL and table prefix)"
        )
    return StoreError(f"PostgreSQL store {where}: {_text(exc)[:-1]}")


def check_idle(conn: Conn) -> None:
    """The pool's check on checkout, without a round trip: an idle connection the server
    has written to (typically "terminating connection" before a restart) is probed, so a
    dead connection is discarded instead of failing the caller's statement."""
    if conn.closed or conn.broken:
        raise psycopg.OperationalError("connection closed")
    readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    if readable:
        conn.execute("SELECT 1")


class Pool:
    """One psycopg pool per process (a pool never crosses ``fork()``)."""

    def __init__(self, options: PostgresOptions, where: str) -> None:
        self.options = options
        self.where = where
        self._pool: ConnectionPool | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._closed = False
        #: the server's synchronous_commit, which durable writes restore for their own
        #: transaction; None (fast_acks off) leaves every commit at the server's level
        self.durable_level: str | None = None

    def _get(self) -> ConnectionPool:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            if self._closed:
                raise StoreError(f"PostgreSQL store {self.where} was closed")
            if self._pool is None or self._pid != os.getpid():
                opts = self.options
                self._pool = ConnectionPool(
                    opts.conninfo, min_size=opts.pool_min, max_size=opts.pool_max,
                    kwargs={"autocommit": True,
                            "prepare_threshold": 5 if opts.prepare else None},
                    configure=self._configure, check=check_idle,
                    timeout=opts.pool_timeout, open=False,
                    name="conveyor", reconnect_timeout=24 * 3600.0,
                )
                self._pool.open(wait=False)
                self._pid = os.getpid()
            return self._pool

    def _configure(self, conn: Conn) -> None:
        # conveyor's statements are index lookups whose plan does not depend on the
        # values; left to choose, the server re-plans the ack statements at every call
        # (their unnest() of a one-element array looks cheaper than the generic estimate),
        # and planning the worker's round costs more than running it
        conn.execute("SET plan_cache_mode TO force_generic_plan")
        if self.options.fast_acks:
            # Claims, acks and lease renewals skip the WAL flush wait: a server crash may
            # forget the last instant of them (a job then runs again, it is never lost).
            # Writes that must survive a crash restore the server's own level for their
            # transaction (``durable_level``, ``run_durable``).
            row = conn.execute("SHOW synchronous_commit").fetchone()
            self.durable_level = str(row[0]) if row else "on"
            conn.execute("SET synchronous_commit TO off")

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        try:
            with self._get().connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise self._diagnose(exc) from exc
        except psycopg.Error as exc:
            raise translate(exc, self.where) from exc

    def _diagnose(self, exc: PoolTimeout) -> StoreError:
        """The pool only says it timed out: one direct attempt tells a server that cannot
        be reached (and why) from a pool that is merely exhausted."""
        try:
            psycopg.connect(self.options.conninfo).close()
        except psycopg.Error as direct:
            return translate(direct, self.where)
        return StoreUnavailable(
            f"PostgreSQL store {self.where}: every pooled connection stayed busy for "
            f"pool_timeout={self.options.pool_timeout:g}s (pool_max="
            f"{self.options.pool_max}); raise pool_max or pool_timeout in the URL"
        )

    def run(self, fn: Callable[[Conn], T], *,
            retry: bool = True) -> T:
        """Run ``fn`` on a pooled connection; once more on a fresh one when the first broke
        (a server restart kills every pooled connection at once). Not for statements that
        must not run twice (inserts): those pass ``retry=False``."""
        try:
            with self.connection() as conn:
                return fn(conn)
        except StoreUnavailable as exc:
            # a broken pooled connection is worth one more go; a pool timeout (the server
            # is down) is not: the caller would only wait twice as long
            if not retry or isinstance(exc.__cause__, PoolTimeout):
                raise
        with self.connection() as conn:
            return fn(conn)

    def run_durable(self, statement: Callable[[Conn], psycopg.Cursor[Any]], *,
                    retry: bool = True) -> psycopg.Cursor[Any]:
        """``statement`` in a transaction that commits only once its WAL is flushed; BEGIN,
        the setting, the statement and COMMIT travel in one pipelined round trip. Returns
        the statement's cursor, its results complete."""
        def durable(conn: Conn) -> psycopg.Cursor[Any]:
            with conn.pipeline(), conn.transaction():
                self.durable_setting(conn)
                cursor = statement(conn)
            return cursor

        return self.run(durable, retry=retry)

    def durable_setting(self, conn: Conn) -> None:
        """Inside a caller's transaction: make its commit wait for the WAL flush."""
        if self.durable_level is not None:
            conn.execute("SELECT set_config('synchronous_commit', %s, true)",
                         (self.durable_level,))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._pool is not None and self._pid == os.getpid():
                self._pool.close(timeout=5.0)
            self._pool = None


class Listener:
    """A dedicated connection LISTENing on the store's channel; notification payloads are
    queue names. A (re)established connection reports a wake-up once, because anything
    sent while it was not listening is lost."""

    def __init__(self, options: PostgresOptions, channel: str, where: str) -> None:
        self.options = options
        self.channel = channel
        self.where = where
        self._conn: Conn | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._fresh = False
        self._closed = False
        self._checked = 0.0

    def _connect(self) -> None:
        self._pid = os.getpid()
        try:
            conn = psycopg.connect(self.options.conninfo, autocommit=True,
                                   keepalives=1, keepalives_idle=10, keepalives_interval=5,
                                   keepalives_count=3, application_name="conveyor-listener")
            conn.execute(f"LISTEN {self.channel}")
        except psycopg.Error as exc:
            raise translate(exc, self.where) from exc
        self._conn, self._fresh = conn, True
        self._checked = time.monotonic()

    def _drop(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            with suppress(psycopg.Error):
                self._conn.close()
        self._conn = None

    def ensure(self) -> None:
        """Start listening now if never tried in this process (never blocks behind a
        waiting thread; after a failure, reconnecting is the waiting thread's job)."""
        if self._pid == os.getpid() or self._closed:
            return
        if self._lock.acquire(blocking=False):
            try:
                if self._conn is None or self._pid != os.getpid():
                    self._connect()
            except StoreError:
                pass  # the waiter will report it
            finally:
                self._lock.release()

    def wait(self, queues: Sequence[str], timeout: float) -> bool:
        if not self._lock.acquire(timeout=max(timeout, 0.0)):
            return False
        try:
            if self._closed:
                return False
            if self._conn is None or self._pid != os.getpid() or self._conn.closed:
                self._connect()
            if self._fresh:
                self._fresh = False
                return True
            return self._wait_locked(set(queues), timeout)
        finally:
            self._lock.release()

    def _wait_locked(self, queues: set[str], timeout: float) -> bool:
        conn = self._conn
        assert conn is not None
        deadline = time.monotonic() + timeout
        try:
            if time.monotonic() - self._checked > _LISTENER_CHECK:
                conn.execute("SELECT 1")  # a peer that vanished silently shows up here
                self._checked = time.monotonic()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                woken = False
                for notify in conn.notifies(timeout=remaining):
                    if notify.payload in queues or notify.payload == "*":
                        woken = True
                        break
                if woken:
                    # swallow what else is already queued: one wake-up covers it all
                    for _ in conn.notifies(timeout=0.0):
                        pass
                    self._checked = time.monotonic()
                    return True
        except psycopg.Error as exc:
            if self._closed:
                return False
            self._drop()
            if not is_disconnect(exc) and not conn.closed:
                raise translate(exc, self.where) from exc
        # the connection dropped: listen again at once, and report a wake-up since
        # notifications sent meanwhile are gone (raises StoreUnavailable while down)
        self._connect()
        self._fresh = False
        return True

    def close(self) -> None:
        self._closed = True
        with self._lock:
            self._drop()
