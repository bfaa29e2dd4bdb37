"""The fault proxy itself, against a loopback echo server: it forwards, delays, holds a
connection half-open, and cuts."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from conveyor.testing.proxy import FaultProxy


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(ConnectionError):  # the proxy resets on a cut
            while data := self.request.recv(4096):
                self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with FaultProxy("127.0.0.1", server.server_address[1]) as fault_proxy:
        yield fault_proxy
    server.shutdown()
    server.server_close()


def client(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def roundtrip(sock: socket.socket, data: bytes = b"ping") -> bytes:
    sock.sendall(data)
    return sock.recv(4096)


def test_it_forwards_and_delays(proxy: FaultProxy) -> None:
    with client(proxy) as sock:
        assert roundtrip(sock) == b"ping"
        proxy.latency(0.2)
        started = time.monotonic()
        assert roundtrip(sock) == b"ping"
        assert time.monotonic() - started >= 0.4  # both directions
        proxy.heal()


def test_a_held_connection_is_silent_until_healed(proxy: FaultProxy) -> None:
    with client(proxy) as sock:
        assert roundtrip(sock) == b"ping"
        proxy.hold()
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            roundtrip(sock, b"held")  # open, accepted, and no answer: half-open
        proxy.heal()
        sock.settimeout(5)
        assert sock.recv(4096) == b"held"


def test_cut_drops_connections_and_refuses_for_a_while(proxy: FaultProxy) -> None:
    with client(proxy) as sock:
        assert roundtrip(sock) == b"ping"
        proxy.cut(refuse_for=0.5)
        with pytest.raises(OSError):
            roundtrip(sock)
            roundtrip(sock)  # the reset may surface on the second call
    def answers() -> bool:
        try:
            with client(proxy) as sock:
                return roundtrip(sock) == b"ping"
        except OSError:
            return False

    assert not answers()  # refused: closed at once
    deadline = time.monotonic() + 5
    while not answers():
        assert time.monotonic() < deadline, "the proxy never accepted again"
        time.sleep(0.05)


def test_it_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback only"):
        FaultProxy("127.0.0.1", 1, listen_host="0.0.0.0")
