"""The fault proxy does what the fault tests rely on: pass, drop, stall and slow, for everyone or for one process."""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import wait_for
from tests.faults.proxy import FaultProxy, cpu_seconds, remote_ports


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with FaultProxy(server.server_address[1]) as proxy:
        yield proxy
    server.shutdown()
    server.server_close()


def connect(proxy: FaultProxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=2)


def echo(sock: socket.socket, data: bytes = b"ping") -> bytes:
    sock.sendall(data)
    return sock.recv(100)


def test_pass_forwards_both_ways(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert echo(sock) == b"ping"
        assert proxy.port in remote_ports(os.getpid())


def test_drop_resets_open_connections_and_refuses_new_ones(proxy: FaultProxy) -> None:
    with connect(proxy) as sock:
        assert echo(sock) == b"ping"
        proxy.drop()
        with pytest.raises(ConnectionResetError):
            echo(sock)
    with pytest.raises(ConnectionRefusedError):
        connect(proxy)
    proxy.drop(pids={os.getpid()})  # for one process: accepted and reset at once
    with connect(proxy) as sock, pytest.raises((ConnectionResetError, BrokenPipeError)):
        echo(sock)
    proxy.heal()
    with connect(proxy) as sock:
        assert echo(sock) == b"ping"


def test_stall_forwards_nothing_and_resets_what_it_held_when_it_ends(proxy: FaultProxy) -> None:
    with connect(proxy) as before:
        assert echo(before) == b"ping"
        proxy.stall()
        with connect(proxy) as during:  # accepted, never answered
            for sock in (before, during):
                sock.settimeout(0.5)
                with pytest.raises(TimeoutError):
                    echo(sock)
            proxy.heal()
            for sock in (before, during):
                sock.settimeout(2)
                with pytest.raises(ConnectionResetError):
                    sock.recv(100)
    with connect(proxy) as after:
        assert echo(after) == b"ping"


def test_slow_delays_each_chunk(proxy: FaultProxy) -> None:
    proxy.slow(0.3)
    with connect(proxy) as sock:
        began = time.monotonic()
        assert echo(sock) == b"ping"
        assert time.monotonic() - began >= 0.6  # there and back


def test_a_fault_for_one_process_leaves_the_others_alone(proxy: FaultProxy) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with connect(proxy) as mine:
            proxy.stall(pids={other.pid})
            assert echo(mine) == b"ping"
            proxy.stall(pids={os.getpid()})
            mine.settimeout(0.5)
            with pytest.raises(TimeoutError):
                echo(mine)
    finally:
        other.kill()
        other.wait()


def test_cpu_seconds_tells_a_spinning_process_from_a_sleeping_one() -> None:
    spinning = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.monotonic()"])
    sleeping = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        wait_for(lambda: cpu_seconds(spinning.pid) >= 0.5, 20, "the spinning process to use half a second of CPU")
        assert cpu_seconds(sleeping.pid) < 0.3
    finally:
        for process in (spinning, sleeping):
            process.kill()
            process.wait()
