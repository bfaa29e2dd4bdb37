"""The client side of the Redis store: one thread-safe connection pool per backend,
reconnects with backoff, and redis-py errors turned into conveyor's own."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ...errors import StoreError, StoreUnavailable
from ..base import Backend, Capabilities
from .keys import Keys, checked, parse_redis_url
from .scripts import Scripts

#: a command is retried this many times, 50 ms doubling to 1 s between tries (~4 s in
#: all), before StoreUnavailable reaches the caller; the worker then keeps retrying
_RETRIES = 6
_SOCKET_TIMEOUT = 10.0  # above the longest blocking wait (1 s)


class RedisBase(Backend):
    """Connection, keys, scripts and error mapping shared by the store's methods."""

    schemes = ("redis", "rediss")
    capabilities = Capabilities(transactional_enqueue=False, native_notify=True,
                                shared_across_hosts=True, persistent=True)
    def __init__(self, url: str, *, table_prefix: str = "") -> None:
        super().__init__(url, table_prefix=table_prefix)
        self.options = parse_redis_url(url, table_prefix)
        self.keys = Keys(self.options.prefix)
        # on Redis Cluster each script call must cover one queue (one slot); on one server
        # a call covers all the queues it is given (one round trip). See docs/redis.md.
        self.per_queue_calls = self.options.single_slot
        settings: dict[str, Any] = dict(
            decode_responses=True,
            socket_timeout=_SOCKET_TIMEOUT,
            socket_connect_timeout=5.0,
            socket_keepalive=True,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), _RETRIES),
            retry_on_error=[RedisConnectionError, RedisTimeoutError, ConnectionResetError],
        )
        self.client: redis.Redis
        if self.options.cluster:
            # the Cluster client offers the same commands; typed as one client for brevity
            self.client = cast(redis.Redis, RedisCluster.from_url(self.options.client_url,
                                                                  **settings))
        else:
            self.client = redis.Redis.from_url(self.options.client_url,
                                               health_check_interval=30, **settings)
        self.scripts = Scripts(self.client, self.keys)

    # -- errors -----------------------------------------------------------------------
    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreUnavailable(
                f"Redis store {self.display_url} is unreachable during {what}: {exc}; check "
                "that redis-server is running and the URL's host, port and password"
            ) from exc
        except ResponseError as exc:
            text = str(exc)
            if "DUPLICATE" in text:
                detail = text.split("DUPLICATE ", 1)[-1]
                raise StoreError(f"Redis store {self.display_url}: {detail}; job ids must be "
                                 "unique") from exc
            raise StoreError(f"Redis store {self.display_url} refused {what}: {text}") from exc
        except RedisError as exc:
            raise StoreError(f"Redis store {self.display_url} failed {what}: {exc}") from exc
        except UnicodeEncodeError as exc:
            raise StoreError(
                f"Redis store {self.display_url} cannot store the data of {what}: it holds "
                f"text that is not valid Unicode ({exc.reason}: {exc.object[exc.start:exc.end]!a})"
            ) from exc

    def run(self, what: str, script: str, queues: Sequence[str], *args: Any) -> Any:
        with self._errors(what):
            return self.scripts.run(script, queues, *args)

    def groups(self, queues: Sequence[str]) -> list[list[str]]:
        """The queue lists of the script calls that cover ``queues``."""
        unique = [checked(q) for q in dict.fromkeys(queues)]
        if self.per_queue_calls:
            return [[q] for q in unique]
        return [unique] if unique else []

    def pipeline_scripts(self, what: str, commands: list[tuple[str, tuple[Any, ...]]],
                         calls: list[tuple[str, Sequence[str], tuple[Any, ...]]]) -> list[Any]:
        """Plain commands then script calls in one round trip; returns the scripts' results.

        Scripts go by EVALSHA; after a restart or SCRIPT FLUSH they are loaded and the
        whole pipeline is sent again, which the scripts allow (they are idempotent for a
        resend: inserts carry a nonce, transitions check tokens).
        """
        with self._errors(what):
            if self.options.cluster:  # Cluster pipelines refuse EVALSHA: one call each
                for name, args in commands:
                    self.client.execute_command(name, *args)  # type: ignore[no-untyped-call]
                return [self.scripts.run(script, queues, *args)
                        for script, queues, args in calls]
            for attempt in range(2):
                pipe = self.client.pipeline(transaction=False)
                for name, args in commands:
                    pipe.execute_command(name, *args)  # type: ignore[no-untyped-call]
                for script, queues, args in calls:
                    keys = [self.keys.queue(q, "wait") for q in queues] or [self.keys.metrics]
                    pipe.evalsha(self.scripts.sha(script), len(keys), *keys,
                                 self.keys.prefix, len(queues), *queues, *args)
                results = pipe.execute(raise_on_error=False)[len(commands):]
                if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                    self.scripts.load_all(self.client)
                    continue
                for result in results:
                    if isinstance(result, Exception):
                        raise result
                return list(results)
        raise AssertionError("unreachable")

    # -- lifecycle --------------------------------------------------------------------
    def migrate(self) -> list[str]:
        """Redis needs no schema; this records the layout version and loads the scripts."""
        with self._errors("migrate"):
            self.scripts.load_all(self.client)
            if self.client.set(self.keys.schema, "1", nx=True):
                return ["0001_redis_layout"]
        return []

    def ping(self) -> None:
        with self._errors("ping"):
            self.client.ping()

    def close(self) -> None:
        self.client.close()
        pool = getattr(self.client, "connection_pool", None)  # none on a Cluster client
        if pool is not None:
            pool.disconnect()

    def known_queues(self) -> list[str]:
        with self._errors("listing queues"):
            return sorted(str(q) for q in self.client.smembers(self.keys.queues))
