"""Network namespaces for the test node, and TCP forwarding between them and the host's loopback.

The node's pods, Services and DNS live in a network namespace the tests create (`NetNS`); the
host keeps only loopback listeners. `Forwarder` moves bytes between a listener in one namespace
and a target in another without any route, NAT or address in the host's namespace: a socket
belongs to the namespace of the thread that created it, so sockets are made by a thread that
has entered the namespace (setns applies to the calling thread only) and then used from one
asyncio loop on the host side.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def enter(path: Path) -> None:
    """Move the calling thread (or a child before exec) into the network namespace at `path`."""
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


@dataclass
class NetNS:
    """A named network namespace (`ip netns add`), deleted by `delete()`."""

    name: str = field(default_factory=lambda: f"slam-{uuid.uuid4().hex[:8]}")

    @property
    def path(self) -> Path:
        return Path("/run/netns") / self.name

    def create(self) -> NetNS:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        self.ip("link", "set", "lo", "up")
        return self

    def ip(self, *args: str) -> str:
        return subprocess.run(["ip", "-n", self.name, *args], check=True, capture_output=True,
                              text=True).stdout

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        """A command in this namespace only (same mount namespace, unlike `ip netns exec`)."""
        return subprocess.run(["nsenter", f"--net={self.path}", *cmd], check=check,
                              capture_output=True, text=True)

    def sysctl(self, values: dict[str, str]) -> None:
        # /proc/sys/net shows the namespace of the process that opens it.
        out = self.run("sysctl", "-w", *(f"{k}={v}" for k, v in values.items()), check=False)
        if out.returncode != 0:
            raise RuntimeError(f"sysctl in {self.name}: {out.stderr.strip()}")

    def delete(self) -> None:
        if self.path.exists():
            subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)


class Forwarder:
    """TCP forwarding between namespaces: listen in one, connect in another (None: the host's)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="netns-forwarder",
                                        daemon=True)
        self._thread.start()
        self._executors: dict[Path, ThreadPoolExecutor] = {}
        self._servers: list[asyncio.AbstractServer] = []
        self.errors: list[str] = []  # connections to a target that failed, for test reports

    def _socket_in(self, ns: Path | None, make: Callable[[], socket.socket]) -> socket.socket:
        if ns is None:
            return make()
        if ns not in self._executors:
            self._executors[ns] = ThreadPoolExecutor(1, f"netns-{ns.name}", enter, (ns,))
        return self._executors[ns].submit(make).result()

    def forward(self, listen: tuple[str, int], target: tuple[str, int], *,
                listen_ns: Path | None = None, target_ns: Path | None = None) -> int:
        """Listen on `listen` (port 0: any free one) and return the port actually bound."""

        def listener() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(listen)
            s.listen(128)
            s.setblocking(False)
            return s

        def dialer() -> socket.socket:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            return s

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
                if writer.can_write_eof():
                    writer.write_eof()
            except (ConnectionError, OSError):
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = self._socket_in(target_ns, dialer)
            try:
                await asyncio.wait_for(self.loop.sock_connect(sock, target), 10)
                up_reader, up_writer = await asyncio.open_connection(sock=sock)
            except (OSError, TimeoutError) as e:
                self.errors.append(f"{target}: {e!r}")
                sock.close()
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
            for w in (writer, up_writer):
                w.close()

        sock = self._socket_in(listen_ns, listener)

        async def serve() -> asyncio.AbstractServer:
            return await asyncio.start_server(handle, sock=sock)

        server = asyncio.run_coroutine_threadsafe(serve(), self.loop).result(10)
        self._servers.append(server)
        return sock.getsockname()[1]

    def close(self) -> None:
        async def shutdown() -> None:
            for s in self._servers:
                s.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        for ex in self._executors.values():
            ex.shutdown(wait=False)
