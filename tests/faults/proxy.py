"""A TCP fault proxy for the fault tests: pass, drop, stall or slow the connections through it, at any moment.

It listens on 127.0.0.1 and forwards to one upstream (the broker, the fake Slack), on an asyncio
loop of its own thread, so a test switches the fault from its own thread while clients run:

    pass   forward both ways
    drop   reset every open connection and refuse new ones (the port stops listening); limited to some
           processes, their new connections are accepted and reset at once instead
    stall  keep every connection open and accept new ones, but forward nothing either way (a black
           hole: requests time out). When the stall ends, the connections it held are reset and what
           they carried is never delivered, as when TCP gives up on a partition; new ones pass.
    slow   forward each chunk `delay_s` late

A fault may be limited to some processes (`pids`): the proxy looks up in /proc (Linux) which process
holds the client end of each connection, so one worker's network can stall while its peers' does not.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from dataclasses import dataclass, field
from typing import Literal

from worker.broker.embedded import free_port

Mode = Literal["pass", "drop", "stall", "slow"]
CHUNK = 64 * 1024


@dataclass(eq=False)  # each connection is its own: kept in a set by identity
class _Conn:
    inode: int  # of the client's socket: which process holds it (see `sockets_of`)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    held: bool = False  # stalled at some point: reset when the stall ends


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", port: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port or free_port()
        self.mode: Mode = "pass"
        self.delay_s = 0.0
        self.pids: frozenset[int] | None = None  # None: the fault hits every connection
        self.accepted = 0  # connections accepted, whatever happened to them
        self._faulty_inodes: set[int] = set()
        self._conns: set[_Conn] = set()
        self._open = asyncio.Event()  # set while the fault lets data through (pass, slow)
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"fault-proxy-{self.port}", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- switching, from the test's thread -------------------------------------------------------

    def set(self, mode: Mode, delay_s: float = 0.0, pids: set[int] | None = None) -> None:
        """Switch to `mode` now (for the connections of `pids` only, if given); returns once it is in force."""
        asyncio.run_coroutine_threadsafe(self._switch(mode, delay_s, pids), self._loop).result(timeout=10)

    def heal(self) -> None:
        self.set("pass")

    def drop(self, pids: set[int] | None = None) -> None:
        self.set("drop", pids=pids)

    def stall(self, pids: set[int] | None = None) -> None:
        self.set("stall", pids=pids)

    def slow(self, delay_s: float, pids: set[int] | None = None) -> None:
        self.set("slow", delay_s, pids)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        self._open.set()
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for conn in list(self._conns):
                self._reset(conn)
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- on the proxy's loop -----------------------------------------------------------------------

    async def _listen(self) -> None:
        """Listen on our port (again, after a drop); a client may hold it briefly as its own end, so retry a while."""
        deadline = self._loop.time() + 10
        while self._server is None:
            try:
                self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
            except OSError:
                if self._loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def _switch(self, mode: Mode, delay_s: float, pids: set[int] | None) -> None:
        if mode == "drop" and pids is None:  # refuse: nobody listens
            if self._server is not None:
                self._server.close()
                self._server = None
        else:
            await self._listen()
        self.mode, self.delay_s = mode, delay_s
        self.pids = None if pids is None else frozenset(pids)
        self._faulty_inodes = set() if pids is None else set().union(*(sockets_of(pid) for pid in pids))
        if mode in ("pass", "slow"):
            for conn in [c for c in self._conns if c.held]:  # what a stall held back is never delivered
                self._reset(conn)
            self._open.set()
        else:
            self._open.clear()
        if mode == "drop":
            for conn in [c for c in self._conns if self._faulty(c)]:
                self._reset(conn)
        elif mode == "stall":
            for conn in self._conns:
                conn.held = conn.held or self._faulty(conn)

    def _faulty(self, conn: _Conn) -> bool:
        if self.pids is None:
            return True
        if conn.inode not in self._faulty_inodes:  # a connection opened since the switch
            self._faulty_inodes |= set().union(*(sockets_of(pid) for pid in self.pids))
        return conn.inode in self._faulty_inodes

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        peer_port = client_writer.get_extra_info("peername")[1]
        conn = _Conn(client_inode(peer_port, self.port), writers=[client_writer])
        self._conns.add(conn)
        try:
            if self.mode == "drop" and self._faulty(conn):
                raise ConnectionRefusedError("dropped")
            conn.held = self.mode == "stall" and self._faulty(conn)
            await self._gate(conn)
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
            conn.writers.append(upstream_writer)
            conn.tasks = [
                asyncio.create_task(self._pump(conn, client_reader, upstream_writer)),
                asyncio.create_task(self._pump(conn, upstream_reader, client_writer)),
            ]
            await asyncio.wait(conn.tasks, return_when=asyncio.FIRST_EXCEPTION)
            if all(t.done() and not t.cancelled() and t.exception() is None for t in conn.tasks):
                self._conns.discard(conn)  # both sides said goodbye: close as they did
                for writer in conn.writers:
                    writer.close()
                return
        except (OSError, asyncio.CancelledError):
            pass
        self._reset(conn)

    async def _gate(self, conn: _Conn) -> None:
        """Wait while this connection's data may not pass; then the slow mode's delay."""
        while self.mode not in ("pass", "slow") and (conn.held or self._faulty(conn)):
            conn.held = True
            self._open.clear()
            await self._open.wait()
            if conn.held:  # the stall ended: _switch reset this connection
                raise ConnectionResetError("stalled connection reset")
        if self.mode == "slow" and self.delay_s and self._faulty(conn):
            await asyncio.sleep(self.delay_s)

    async def _pump(self, conn: _Conn, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(CHUNK):
            await self._gate(conn)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():  # one side is done sending; the other may still answer
            writer.write_eof()

    def _reset(self, conn: _Conn) -> None:
        """Close both ends at once with a reset (SO_LINGER 0), as a dropped network does."""
        self._conns.discard(conn)
        for task in conn.tasks:
            task.cancel()
        for writer in conn.writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                except OSError:
                    pass
            writer.transport.abort()


# -- which process holds a connection (Linux /proc) ------------------------------------------------


def _tcp_table() -> list[tuple[int, int, int]]:
    """(local port, remote port, inode) of every IPv4 TCP socket."""
    rows = []
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            rows.append((int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16), int(fields[9])))
    return rows


def client_inode(client_port: int, server_port: int) -> int:
    """The inode of the client end of a loopback connection (client_port -> server_port); 0 if gone."""
    return next((inode for local, remote, inode in _tcp_table() if local == client_port and remote == server_port), 0)


def sockets_of(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` holds open (empty if it is gone)."""
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def remote_ports(pid: int) -> set[int]:
    """The ports that process `pid`'s TCP connections lead to (to show that none bypasses a proxy)."""
    mine = sockets_of(pid)
    return {remote for _, remote, inode in _tcp_table() if inode in mine and remote}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` (all its threads) so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
