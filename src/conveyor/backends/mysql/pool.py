"""Connections for one process: a small pool, one unit of work per checkout.

A unit (``Pool.run``) is one short transaction or one autocommit statement. It is retried
whole, transparently, when InnoDB chose it as a deadlock victim (1213) or a lock wait
timed out (1205), and once on a fresh connection when the link broke before COMMIT was
sent (the server rolled the transaction back, so running it again is safe): that is how
a worker rides over a server restart. Connections never cross ``fork()``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pymysql
from pymysql.cursors import Cursor

from ...errors import ConfigurationError, StoreError, StoreUnavailable
from .options import MySQLOptions, check_server_version

T = TypeVar("T")
log = logging.getLogger("conveyor.mysql")

DEADLOCK, LOCK_WAIT_TIMEOUT = 1213, 1205
_CONTENTION = {DEADLOCK, LOCK_WAIT_TIMEOUT}
# the link is gone: can't connect, server gone away, lost during query, server shutdown
_LINK_LOST = {2003, 2006, 2013, 2055, 1053, 1927, 4031}
_ACCESS_DENIED, _NO_DATABASE, _NO_TABLE = 1045, 1049, 1146


def error_code(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else 0


def link_lost(exc: BaseException) -> bool:
    if isinstance(exc, pymysql.err.InterfaceError):
        return True  # PyMySQL's "(0, '')": the socket is already closed
    if isinstance(exc, (OSError, RuntimeError)):
        return True  # socket errors PyMySQL did not wrap, a garbled packet
    return isinstance(exc, pymysql.err.OperationalError) and error_code(exc) in _LINK_LOST


class CommitUnknown(StoreUnavailable):
    """The link broke while COMMIT was in flight: the work may or may not have been saved."""


class Pool:
    """Idle connections of this process, handed to one thread at a time."""

    def __init__(self, options: MySQLOptions) -> None:
        self.options = options
        self._idle: list[pymysql.connections.Connection[Cursor]] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._checked_version = False
        self._closed = False
        #: transparent retries so far, by cause: "deadlock", "lock_wait", "reconnect"
        self.retries: dict[str, int] = {"deadlock": 0, "lock_wait": 0, "reconnect": 0}

    # -- connections -------------------------------------------------------------------
    def connect(self) -> pymysql.connections.Connection[Cursor]:
        opts = self.options
        try:
            conn: pymysql.connections.Connection[Cursor] = pymysql.connect(
                **opts.connect_kwargs())
            with conn.cursor() as cur:
                # READ COMMITTED: claims take no gap locks, so inserts never wait on them
                cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                cur.execute("SET SESSION innodb_lock_wait_timeout = %s",
                            (opts.lock_wait_timeout,))
        except pymysql.err.MySQLError as exc:
            raise self.translate(exc, "connect") from exc
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot reach the MySQL server at {opts.where}: {exc}") from exc
        if not self._checked_version:
            try:
                check_server_version(str(conn.get_server_info()), opts.where)
            except StoreUnavailable:
                self.discard(conn)
                raise
            self._checked_version = True
        return conn

    def checkout(self) -> pymysql.connections.Connection[Cursor]:
        if self._closed:
            raise StoreError(f"the MySQL store {self.options.where} was closed")
        with self._lock:
            if self._pid != os.getpid():
                # a forked child: the parent's sockets are not ours to use or to close
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        return self.connect()

    def checkin(self, conn: pymysql.connections.Connection[Cursor]) -> None:
        with self._lock:
            if (not self._closed and self._pid == os.getpid()
                    and len(self._idle) < self.options.pool_size):
                self._idle.append(conn)
                return
        self.discard(conn)

    @staticmethod
    def discard(conn: pymysql.connections.Connection[Cursor]) -> None:
        # a broken link may fail to say goodbye
        with contextlib.suppress(Exception):
            conn.close()

    def drop_idle(self) -> None:
        """After a broken link every idle connection is suspect (the server restarted)."""
        with self._lock:
            idle, self._idle = self._idle, []
        if self._pid == os.getpid():
            for conn in idle:
                self.discard(conn)

    def close(self) -> None:
        self._closed = True
        self.drop_idle()

    # -- units of work ---------------------------------------------------------------------
    def run(self, work: Callable[[Cursor], T], *, what: str, transaction: bool = True,
            idempotent: bool = True) -> T:
        """Run ``work`` on a pooled connection; see the module docstring for retries.

        ``idempotent=False`` (inserts): a link lost *during* COMMIT leaves the outcome
        unknown, so that case is reported instead of run again.
        """
        contention = 0
        reconnected = False
        while True:
            conn = self.checkout()
            committing = False
            try:
                if transaction:
                    conn.begin()
                with conn.cursor() as cur:
                    result = work(cur)
                if transaction:
                    committing = True
                    conn.commit()
            except (pymysql.err.MySQLError, OSError, RuntimeError) as exc:
                code = error_code(exc)
                if code in _CONTENTION:
                    self._rollback(conn)
                    contention += 1
                    self.retries["deadlock" if code == DEADLOCK else "lock_wait"] += 1
                    if contention > self.options.retries:
                        raise StoreError(
                            f"MySQL store {self.options.where}: {what} kept meeting lock "
                            f"contention ({exc.args[-1]}) after {contention - 1} retries; "
                            "raise the URL option retries= or reduce concurrent workers"
                        ) from exc
                    log.debug("%s: %s, retry %d", what, exc.args[-1], contention)
                    time.sleep(random.uniform(0, 0.002 * contention))
                    continue
                if not link_lost(exc):
                    self._rollback(conn)
                    raise self.translate(exc, what) from exc
                self.discard(conn)
                self.drop_idle()
                if committing and not idempotent:
                    raise CommitUnknown(
                        f"MySQL store {self.options.where}: the connection broke while "
                        f"committing {what}; it may or may not have been saved ({exc})"
                    ) from exc
                if reconnected:
                    raise self.translate(exc, what) from exc
                reconnected = True
                self.retries["reconnect"] += 1
            except BaseException:
                self._rollback(conn)
                raise
            else:
                self.checkin(conn)
                return result

    def _rollback(self, conn: pymysql.connections.Connection[Cursor]) -> None:
        try:
            conn.rollback()
        except Exception:  # the link is gone: the server rolled back for us
            self.discard(conn)
        else:
            self.checkin(conn)

    def translate(self, exc: BaseException, what: str) -> StoreError | ConfigurationError:
        """A driver error as conveyor's own, saying what to do about it."""
        where, code = self.options.where, error_code(exc)
        detail = exc.args[-1] if getattr(exc, "args", None) else exc
        if code == _ACCESS_DENIED:
            return ConfigurationError(
                f"MySQL server at {where} refused the user {self.options.user!r}: {detail}; "
                "check the user and password in the URL")
        if code == _NO_DATABASE:
            return ConfigurationError(
                f"MySQL database {self.options.database!r} does not exist at {where}: create "
                f"it (CREATE DATABASE `{self.options.database}` CHARACTER SET utf8mb4), "
                "then run `conveyor migrate`")
        if code == _NO_TABLE:
            return StoreError(
                f"MySQL store {where}: {detail}; run `conveyor migrate` to create the tables")
        if link_lost(exc):
            return StoreUnavailable(
                f"cannot reach the MySQL server at {where} during {what}: {detail}")
        return StoreError(f"MySQL store {where}: {what} failed: {detail}")
