"""A TCP proxy that injects network faults between workers and a server store (tests only).

Point workers at the proxy's port instead of the store's; then, while they run:

* ``latency(seconds)`` delays every chunk in both directions;
* ``hold()`` keeps connections open but forwards nothing (a half-open connection: the
  peer is silent, as behind a partition or a dead NAT entry), ``heal()`` lets the
  buffered bytes through again;
* ``cut(refuse_for=…)`` drops every open connection at once and optionally refuses new
  ones for a while (a store restart or failover, as the client sees it).

It listens on loopback only and runs its own event loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

_CHUNK = 65536


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, listen_host: str = "127.0.0.1",
                 listen_port: int = 0) -> None:
        if not ipaddress.ip_address(listen_host).is_loopback:
            raise ValueError(f"the fault proxy listens on loopback only, not {listen_host}")
        self.target = (target_host, target_port)
        self.listen = (listen_host, listen_port)
        self.port = 0
        self.delay = 0.0
        self.connections = 0  # accepted so far
        self._refuse_until = 0.0
        self._open: set[asyncio.StreamWriter] = set()
        self._upstream: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy",
                                        daemon=True)

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._serve, *self.listen)
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        self._drop_all()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- faults -----------------------------------------------------------------------
    def latency(self, seconds: float) -> None:
        self.delay = seconds

    def hold(self) -> None:
        """Stop forwarding; connections stay open and silent until ``heal``."""
        self._loop.call_soon_threadsafe(self._require_flowing().clear)

    def heal(self) -> None:
        self.delay = 0.0
        self._refuse_until = 0.0
        self._loop.call_soon_threadsafe(self._require_flowing().set)

    def cut(self, refuse_for: float = 0.0) -> None:
        """Drop every open connection; refuse new ones for ``refuse_for`` seconds."""
        self._refuse_until = time.monotonic() + refuse_for
        self._call(self._cut())

    async def _cut(self) -> None:
        self._drop_all()

    @property
    def open_connections(self) -> int:
        return len(self._open) // 2

    def upstream_ports(self) -> set[int]:
        """Local ports of the proxy's open connections to the target: the server sees its
        clients by these (e.g. ``pg_stat_activity.client_port``)."""
        return {int(w.get_extra_info("sockname")[1]) for w in list(self._upstream)}

    # -- plumbing ---------------------------------------------------------------------
    def _require_flowing(self) -> asyncio.Event:
        if self._flowing is None:
            raise RuntimeError("start the proxy first")
        return self._flowing

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    def _drop_all(self) -> None:
        for writer in list(self._open):
            transport = writer.transport
            with contextlib.suppress(Exception):
                # a reset, as when a server process dies, rather than a polite FIN
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        self._open.clear()
        self._upstream.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if time.monotonic() < self._refuse_until:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._open.update((writer, up_writer))
        self._upstream.add(up_writer)
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer),
                             return_exceptions=True)
        self._upstream.discard(up_writer)
        for w in (writer, up_writer):
            self._open.discard(w)
            w.transport.abort()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        flowing = self._require_flowing()
        try:
            while True:
                data = await source.read(_CHUNK)
                if not data:
                    break
                if self.delay:
                    await asyncio.sleep(self.delay)
                await flowing.wait()
                if sink.transport.is_closing():
                    break
                sink.write(data)
                await sink.drain()
        finally:
            sink.transport.abort()  # one side gone: the other goes too
