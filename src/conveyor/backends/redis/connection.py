"""The client side of the Redis store: one thread-safe connection pool per backend,
reconnects with backoff, and redis-py errors turned into conveyor's own.

The scripts of the hot path (dispatch, ack and reserve) go through a *lane*: a connection
the calling thread holds for itself, fed one packed buffer and read reply by reply. That
skips the pool checkout, the pipeline object and the retry wrapper of each call (about
40 µs a call, as much as the round trip itself on loopback). A lane that fails is dropped
and the call goes again through the pool, with its reconnects and backoff: every script
is safe to send twice (inserts carry a nonce, transitions check tokens).

A call in a burst — a dispatch of a few jobs within a millisecond of the lane's previous
reply, a worker's round behind one that filled every free slot — polls the socket for
its reply for up to ``poll_us`` microseconds before it sleeps on it: on a virtual machine
a thread woken from a sleep on a socket takes as long as the round trip itself to run
again. See docs/redis.md ("Reply polling").
"""

from __future__ import annotations

import itertools
import os
import select
import ssl
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Literal, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ...errors import StoreError, StoreUnavailable
from ..base import Backend, Capabilities
from .keys import Keys, parse_redis_url
from .scripts import Scripts

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis comes with the redis extra
    _hiredis_pack = None

#: a command is retried this many times, 50 ms doubling to 1 s between tries (~4 s in
#: all), before StoreUnavailable reaches the caller; the worker then keeps retrying
_RETRIES = 6
_SOCKET_TIMEOUT = 10.0  # above the longest blocking wait (1 s)
_LANE_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)
Call = tuple[str, Sequence[str], tuple[Any, ...]]  # script name, its queues, its arguments
#: a reply awaited within this long of the lane's previous reply is polled for (a burst)
_BURST = 0.001
#: after this many polls in a row ran out of budget (a remote or busy server: replies
#: slower than the budget), no polls for _QUIET seconds: at most 8 budgets of CPU a
#: second go to polls that cannot succeed (1.6 ms at 200 us)
_MISSES = 8
_QUIET = 1.0
_CAN_POLL = hasattr(select, "poll")  # not on Windows


class _Lane:
    """One thread's own connection (see the module's docstring)."""

    __slots__ = ("__weakref__", "_polled", "_poller", "conn", "misses", "pid", "quiet_until",
                 "replied")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.pid = os.getpid()
        self.replied = 0.0  # time.perf_counter() when the last reply was read
        self.quiet_until = 0.0  # no polling before then (time.perf_counter())
        self.misses = 0  # polls in a row that ran out of budget
        self._poller: Any = None
        self._polled: Any = None  # the socket the poller watches

    def poll_reply(self, budget: float) -> None:
        """In a burst, wait for the reply by polling the socket for up to ``budget``
        seconds (then the read sleeps on it as usual); outside a burst, return at once.
        ``_MISSES`` polls in a row that run out of budget stop polling for ``_QUIET``
        seconds. Plain sockets only: TLS may hold a decrypted reply the socket does not
        show."""
        start = time.perf_counter()
        if (budget <= 0 or not _CAN_POLL or start - self.replied > _BURST
                or start < self.quiet_until):
            return
        sock = getattr(self.conn, "_sock", None)  # redis-py's socket, None when closed
        if sock is None or isinstance(sock, ssl.SSLSocket):
            return
        if self._polled is not sock:
            self._poller = select.poll()
            self._poller.register(sock, select.POLLIN)
            self._polled = sock
        poll, deadline = self._poller.poll, start + budget
        while not poll(0):
            if time.perf_counter() >= deadline:
                self.misses += 1
                if self.misses >= _MISSES:
                    # replies take longer than the budget here (a remote or busy server):
                    # polling would only burn CPU, so sleep on them for a while
                    self.misses, self.quiet_until = 0, deadline + _QUIET
                return
        self.misses = 0


class RedisErrors:
    """The context of a store call: redis-py's errors raised as conveyor's own. A class
    rather than a generator-based context manager: it wraps every call of the store, and
    costs a quarter as much (about 0.5 us a call saved)."""

    __slots__ = ("url", "what")

    def __init__(self, url: str, what: str) -> None:
        self.url, self.what = url, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]:
        if exc is None:
            return False
        url, what = self.url, self.what
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            raise StoreUnavailable(
                f"Redis store {url} is unreachable during {what}: {exc}; check "
                "that redis-server is running and the URL's host, port and password"
            ) from exc
        if isinstance(exc, ResponseError):
            text = str(exc)
            if "DUPLICATE" in text:
                detail = text.split("DUPLICATE ", 1)[-1]
                raise StoreError(f"Redis store {url}: {detail}; job ids must be unique") from exc
            raise StoreError(f"Redis store {url} refused {what}: {text}") from exc
        if isinstance(exc, RedisError):
            raise StoreError(f"Redis store {url} failed {what}: {exc}") from exc
        if isinstance(exc, UnicodeEncodeError):
            raise StoreError(
                f"Redis store {url} cannot store the data of {what}: it holds text that is "
                f"not valid Unicode ({exc.reason}: {exc.object[exc.start:exc.end]!a})"
            ) from exc
        return False


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
        # per-thread state: the thread's lane, and what the store's methods keep per thread
        self._local: threading.local = threading.local()
        self._all_lanes: weakref.WeakSet[_Lane] = weakref.WeakSet()

    # -- errors -----------------------------------------------------------------------
    def _errors(self, what: str) -> RedisErrors:
        """``with self._errors("what"):`` turns redis-py's errors into conveyor's own."""
        return RedisErrors(self.display_url, what)

    def run(self, what: str, script: str, queues: Sequence[str], *args: Any,
            burst: bool = False) -> Any:
        """One script call; ``burst``: poll for the reply in a burst (a dispatch)."""
        with self._errors(what):
            if not self.options.cluster:
                results = self._on_lane([(script, queues, args)], burst=burst)
                if results is not None:
                    return _raised(results)[0]
            return self.scripts.run(script, queues, *args)

    def lane_commands(self, lead: Sequence[tuple[Any, ...]], calls: Sequence[Call]
                      ) -> list[Any] | None:
        """Plain commands then script calls in one packet on the lane: their replies (an
        error reply raised), or None when there is no lane (Cluster, no hiredis) or it
        failed, and the caller must take another way."""
        if self.options.cluster:
            return None
        results = self._on_lane(calls, lead)
        return None if results is None else _raised(results)

    def stream_scripts(self, what: str, calls: Iterable[Call], window: int) -> None:
        """Script calls sent one behind the other without waiting for each reply, so the
        server runs one while the caller builds the next (two in flight at most); the
        first error reply is raised once the replies in flight are read, and no call is
        sent after it. Without a lane (Cluster, no hiredis), or when it fails, the calls
        not yet answered go through the pool, ``window`` to a round trip: every script
        is safe to send twice."""
        with self._errors(what):
            rest = self._stream_on_lane(iter(calls))
            while chunk := list(itertools.islice(rest, window)):
                self.pipeline_scripts(what, [], chunk)

    def _stream_on_lane(self, calls: Iterator[Call]) -> Iterator[Call]:
        """The calls the lane could not see answered (none when all went well)."""
        pack = _hiredis_pack
        if pack is None or self.options.cluster:
            return calls
        lane = self._lane()
        in_flight: deque[Call] = deque()
        failed: BaseException | None = None
        try:
            for call in calls:
                try:
                    packed = pack(self._evalsha(*call))
                except TypeError:  # an argument hiredis cannot pack: the pool says which
                    lane.conn.disconnect()
                    return itertools.chain(in_flight, [call], calls)
                lane.conn.send_packed_command([packed], check_health=False)
                in_flight.append(call)
                if len(in_flight) > 1:
                    failed = self._stream_reply(lane, in_flight)
                    if failed is not None:
                        break
            while in_flight:
                error = self._stream_reply(lane, in_flight)
                failed = failed if failed is not None else error
        except _LANE_ERRORS:
            lane.conn.disconnect()
            return itertools.chain(in_flight, calls)
        except NoScriptError:  # after a restart or SCRIPT FLUSH: resend through the pool
            lane.conn.disconnect()
            self.scripts.load_all(self.client)
            return itertools.chain(in_flight, calls)
        if failed is not None:
            raise failed
        return iter(())

    @staticmethod
    def _stream_reply(lane: _Lane, in_flight: deque[Call]) -> BaseException | None:
        """Read the oldest call's reply: its error, if it was one. NOSCRIPT is raised with
        the call still counted in flight."""
        try:
            lane.conn.read_response()
        except NoScriptError:
            raise
        except ResponseError as exc:  # the reply was read whole: the lane is in step
            in_flight.popleft()
            return exc
        in_flight.popleft()
        return None

    # -- the lane ---------------------------------------------------------------------
    def _lane(self) -> _Lane:
        lane: _Lane | None = getattr(self._local, "lane", None)
        if lane is None or lane.pid != os.getpid():  # a forked child makes its own
            pool = self.client.connection_pool
            lane = _Lane(pool.connection_class(**pool.connection_kwargs))
            self._local.lane = lane
            self._all_lanes.add(lane)
        return lane

    def _on_lane(self, calls: Sequence[Call], lead: Sequence[tuple[Any, ...]] = (), *,
                 burst: bool = False) -> list[Any] | None:
        """The replies of ``lead`` (plain commands sent ahead in the same packet) and of
        the calls (an error reply as its exception), or None when the lane failed and the
        caller must go through the pool instead. After NOSCRIPT (a restart or SCRIPT FLUSH)
        the scripts are loaded and the calls alone sent again."""
        pack = _hiredis_pack
        if pack is None:
            return None
        lane = self._lane()
        head: list[Any] = []
        for attempt in range(2):
            try:
                buffer = b"".join([*(pack(command) for command in lead),
                                   *(pack(self._evalsha(*call)) for call in calls)])
            except TypeError:  # an argument hiredis cannot pack: let redis-py say which
                return None
            try:
                lane.conn.send_packed_command([buffer], check_health=False)
                if burst:
                    lane.poll_reply(self.options.poll_us / 1e6)
                results: list[Any] = []
                for _ in range(len(lead) + len(calls)):
                    try:
                        results.append(lane.conn.read_response())
                    except ResponseError as exc:  # the reply was read whole: go on
                        results.append(exc)
                lane.replied = time.perf_counter()
            except _LANE_ERRORS:
                lane.conn.disconnect()
                return None
            head += results[:len(lead)]
            results = results[len(lead):]
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                self.scripts.load_all(self.client)
                lead = ()  # done already: a BLPOP must not wait a second time
                continue
            return head + results
        return None

    def _evalsha(self, script: str, queues: Sequence[str], args: tuple[Any, ...]
                 ) -> tuple[Any, ...]:
        keys = self.scripts.keys_of(queues)
        return ("EVALSHA", self.scripts.sha(script), len(keys), *keys, self.keys.prefix,
                len(queues), *queues, *args)

    def groups(self, queues: Sequence[str]) -> list[list[str]]:
        """The queue lists of the script calls that cover ``queues``."""
        unique = [self.keys.checked(q) for q in dict.fromkeys(queues)]
        if self.per_queue_calls:
            return [[q] for q in unique]
        return [unique] if unique else []

    def pipeline_scripts(self, what: str, commands: list[tuple[str, tuple[Any, ...]]],
                         calls: list[tuple[str, Sequence[str], tuple[Any, ...]]], *,
                         burst: bool = False) -> list[Any]:
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
            if not commands:
                results = self._on_lane(calls, burst=burst)
                if results is not None:
                    return _raised(results)
            for attempt in range(2):
                pipe = self.client.pipeline(transaction=False)
                for name, args in commands:
                    pipe.execute_command(name, *args)  # type: ignore[no-untyped-call]
                for script, queues, args in calls:
                    keys = self.scripts.keys_of(queues)
                    pipe.evalsha(self.scripts.sha(script), len(keys), *keys,
                                 self.keys.prefix, len(queues), *queues, *args)
                results = pipe.execute(raise_on_error=False)[len(commands):]
                if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                    self.scripts.load_all(self.client)
                    continue
                return _raised(list(results))
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
        for lane in list(self._all_lanes):
            lane.conn.disconnect()
        self.client.close()
        pool = getattr(self.client, "connection_pool", None)  # none on a Cluster client
        if pool is not None:
            pool.disconnect()

    def known_queues(self) -> list[str]:
        with self._errors("listing queues"):
            return sorted(str(q) for q in self.client.smembers(self.keys.queues))


def _raised(results: list[Any]) -> list[Any]:
    """The replies, or the first error reply raised."""
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results
