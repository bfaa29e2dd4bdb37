"""The stores the chaos suite runs against, as whole processes see them: a URL and a table
prefix the `conveyor work` subprocesses open (``CONVEYOR_URL``, ``CONVEYOR_TABLE_PREFIX``),
plus the faults the store can take (a restart of its own server, a proxy to cut).

Server stores never touch the shared servers' lifecycles: a restart needs a server of the
run's own, started on a free port in a temporary directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor import Conveyor

# read at import: the suite's autouse fixture clears CONVEYOR_* variables before each test
LONG = os.environ.get("CONVEYOR_CHAOS") == "long"


@dataclass
class ChaosTarget:
    name: str
    url: str
    prefix: str = ""
    restart: Callable[[], None] | None = None  # stop and start the store, data kept
    proxy: Any = None  # a conveyor.testing.proxy.FaultProxy between workers and the store
    direct_url: str = ""  # the test process's own way in, around the proxy
    # the store's ids of the workers' live listener connections (LISTEN, blocking pop)
    listeners: Callable[[], set[object]] | None = None

    def env(self) -> dict[str, str]:
        return {"CONVEYOR_TABLE_PREFIX": self.prefix} if self.prefix else {}

    def use(self, app: Conveyor) -> Conveyor:
        """Point the test process's app at this store, with the run's prefix."""
        app.close()
        app.settings = app.settings.with_overrides(url=self.direct_url or self.url,
                                                   table_prefix=self.prefix)
        app.backend.migrate()
        return app


ChaosFactory = Callable[[Path], AbstractContextManager[ChaosTarget]]
CHAOS_STORES: dict[str, ChaosFactory] = {}


def chaos_store(name: str) -> Callable[[ChaosFactory], ChaosFactory]:
    def register(factory: ChaosFactory) -> ChaosFactory:
        CHAOS_STORES[name] = factory
        return factory

    return register


@chaos_store("sqlite")
@contextmanager
def sqlite_target(tmp_path: Path) -> Iterator[ChaosTarget]:
    yield ChaosTarget("sqlite", f"sqlite:///{tmp_path / 'chaos.db'}")


@contextmanager
def proxied_postgres(tmp_path: Path) -> Iterator[ChaosTarget]:
    """A schema of the run's own on the shared server; workers reach it through a proxy."""
    import psycopg

    from conveyor.testing.proxy import FaultProxy
    from tests.backends.store_postgres import postgres_schema

    with postgres_schema() as (url, _schema), FaultProxy("127.0.0.1", 5432) as proxy:
        proxied = url.replace("@127.0.0.1:5432/", f"@127.0.0.1:{proxy.port}/")

        def listeners() -> set[object]:
            with psycopg.connect(url.split("?", 1)[0], autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = "
                    "'conveyor-listener' AND client_port = ANY(%s)",
                    (sorted(proxy.upstream_ports()),)).fetchall()
            return {row[0] for row in rows}

        yield ChaosTarget("postgres", proxied + "&pool_timeout=2", "chaos_", proxy=proxy,
                          direct_url=url, listeners=listeners)


#: server stores behind a fault proxy, for the network-fault tests
PROXIED_STORES: dict[str, ChaosFactory] = {"postgres": proxied_postgres}


@chaos_store("postgres")
@contextmanager
def postgres_target(tmp_path: Path) -> Iterator[ChaosTarget]:
    """Short profile: the shared server behind a fault proxy whose connections the run cuts.
    Long profile: a private server the run restarts."""
    from tests.integration.pg_support import PG_BIN, OwnPostgres

    if LONG and (PG_BIN / "initdb").exists():
        server = OwnPostgres()
        try:
            server.start()
            schema = f"chaos_{os.urandom(4).hex()}"

            def restart() -> None:
                server.stop("fast")
                server.start()

            yield ChaosTarget("postgres", f"{server.dsn}?schema={schema}&pool_timeout=2",
                              "chaos_", restart=restart)
        finally:
            server.close()
        return
    with proxied_postgres(tmp_path) as target:
        yield target


@contextmanager
def proxied_redis(tmp_path: Path) -> Iterator[ChaosTarget]:
    """A key prefix of the run's own on the shared server (database 9, keys deleted after);
    workers reach it through a proxy."""
    import redis

    from conveyor.testing.proxy import FaultProxy
    from tests.backends.store_redis import REDIS_DB, REDIS_HOST, REDIS_PORT, delete_prefix
    from tests.conftest import require_server

    require_server("Redis", REDIS_HOST, REDIS_PORT)
    prefix = f"cvchaos{os.urandom(4).hex()}"
    direct = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    try:
        with FaultProxy(REDIS_HOST, REDIS_PORT) as proxy:

            def listeners() -> set[object]:
                client = redis.Redis.from_url(direct)
                try:
                    ports = proxy.upstream_ports()
                    return {c["id"] for c in client.client_list()
                            if int(c["addr"].rsplit(":", 1)[1]) in ports
                            and c.get("cmd") in ("blpop", "blmpop")}
                finally:
                    client.close()

            yield ChaosTarget(
                "redis", f"redis://{REDIS_HOST}:{proxy.port}/{REDIS_DB}?prefix={prefix}",
                proxy=proxy, direct_url=f"{direct}?prefix={prefix}", listeners=listeners)
    finally:
        delete_prefix(direct, prefix)


PROXIED_STORES["redis"] = proxied_redis


@chaos_store("redis")
@contextmanager
def redis_target(tmp_path: Path) -> Iterator[ChaosTarget]:
    """A private redis-server (AOF, fsync always) that the run SIGKILLs and starts again:
    light enough for the short profile too."""
    from tests.integration.redis_processes import own_redis

    directory = tmp_path / "redis"
    directory.mkdir()
    with own_redis(directory) as server:

        def restart() -> None:
            server.kill()
            server.start()

        yield ChaosTarget("redis", f"{server.url}?prefix=chaos", restart=restart)


@contextmanager
def proxied_mysql(tmp_path: Path) -> Iterator[ChaosTarget]:
    """Tables of the run's own (a prefix) on the shared MariaDB, dropped after; workers
    reach it through a proxy. MySQL has no listener: workers poll."""
    from conveyor.testing.proxy import FaultProxy
    from tests.backends.store_mysql import HOST, PORT, mysql_tables

    with mysql_tables() as (url, prefix), FaultProxy(HOST, PORT) as proxy:
        yield ChaosTarget("mysql", url.replace(f"@{HOST}:{PORT}/", f"@{HOST}:{proxy.port}/"),
                          prefix, proxy=proxy, direct_url=url)


PROXIED_STORES["mysql"] = proxied_mysql
chaos_store("mysql")(proxied_mysql)
