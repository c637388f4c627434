"""A TCP proxy on loopback that tests can turn into a network fault.

    with TcpProxy("127.0.0.1", 5432) as proxy:    # point the client at proxy.port
        proxy.black_hole()   # connections stay open, no byte goes through either way
        proxy.forward()      # the held bytes go through, in order, and traffic flows again
        proxy.refuse()       # every connection is closed, new ones are refused
        proxy.forward()      # listening again, on the same port

`black_hole` is a network that drops packets: TCP keeps the connections up and
retransmits, so nothing arrives until the network heals, and then everything does (the
proxy stops reading, so the bytes wait in the kernel's buffers). `refuse` is the server
going away: its connections are reset and its port refuses new ones.

The proxy runs its own event loop in a thread, so it works the same under a test's
loop, a server in this process, or a server in a subprocess.
"""

from __future__ import annotations

import asyncio
import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.port = 0  # chosen when it first listens
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._connections: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    # --- control, from any thread ---------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def forward(self) -> None:
        self._call(self._forward())

    def black_hole(self) -> None:
        self._call(self._black_hole())

    def refuse(self) -> None:
        self._call(self._refuse())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._call(self._refuse())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def url(self, database_url: str) -> str:
        """`database_url` (to the target) pointed at the proxy instead."""
        host, port = self.target
        return database_url.replace(f"@{host}:{port}/", f"@127.0.0.1:{self.port}/", 1)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    # --- in the proxy's loop --------------------------------------------------------

    async def _listen(self) -> None:
        if self._flowing is None:
            self._flowing = asyncio.Event()
            self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _forward(self) -> None:
        if self._server is None:
            await self._listen()
        self._flowing.set()

    async def _black_hole(self) -> None:
        self._flowing.clear()

    async def _refuse(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            _reset(writer)
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        self._writers.add(client_writer)
        server_writer = None
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
            self._writers.add(server_writer)
            await asyncio.gather(self._pump(client_reader, server_writer), self._pump(server_reader, client_writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            for writer in (client_writer, server_writer):
                if writer is not None:
                    self._writers.discard(writer)
                    writer.close()
            self._connections.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await self._flowing.wait()  # black hole: stop reading, so the bytes stay in the kernel
            data = await reader.read(65536)
            if not data:
                writer.close()  # the other side closed: pass it on
                return
            await self._flowing.wait()  # read just before the hole opened: held, not lost
            writer.write(data)
            await writer.drain()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a RST, as a server that went away does (not a polite FIN)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
    writer.transport.abort()
