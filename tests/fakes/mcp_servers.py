"""Real MCP servers written with the SDK's FastMCP, for the tests of app/runtime/mcp/.

    python tests/fakes/mcp_servers.py stdio <variant>
    python tests/fakes/mcp_servers.py http <variant> <fd>    # serves on an inherited listening socket

Every variant has `add`, `echo`, `env` (one of its environment variables) and `pid` (its
process id, to check that it is stopped); each adds the one thing it is there for:

- normal: `image`, a 1x1 PNG (the log must keep a reference, not the bytes);
- hang:   `hang`, which never returns (and `slow_echo`, which takes its time);
- crash:  `crash`, which kills its own process in the middle of the call;
- error:  `fail`, which raises (FastMCP answers a result with isError).

`HttpMcpServer(variant)` runs one over streamable HTTP on a loopback port, in a
subprocess (so `crash` can take the whole server down and `restart` can bring it back).
`silent_url()` is the opposite: a port that accepts connections and never answers.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
from mcp.server.fastmcp import FastMCP, Image

ROOT = Path(__file__).resolve().parents[2]
VARIANTS = ("normal", "hang", "crash", "error", "odd_names")
# A 1x1 transparent PNG.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000005000106a3c5bd0000000049454e44ae426082")


def build(variant: str) -> FastMCP:
    server = FastMCP(f"fake-{variant}", log_level="WARNING")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Say the text back."""
        return text

    @server.tool()
    def pid() -> int:
        """This server's process id."""
        return os.getpid()

    @server.tool()
    def env(name: str) -> str:
        """An environment variable of this server's process ("" when unset)."""
        return os.environ.get(name, "")

    if variant == "normal":
        @server.tool()
        def image() -> Image:
            """A tiny picture."""
            return Image(data=PNG, format="png")

    elif variant == "hang":
        @server.tool()
        async def hang() -> str:
            """Never answers."""
            await anyio.sleep_forever()
            return "unreachable"

        @server.tool()
        async def slow_echo(text: str, seconds: float) -> str:
            """Says the text back after a while."""
            await anyio.sleep(seconds)
            return text

    elif variant == "crash":
        @server.tool()
        async def crash() -> str:
            """Kills this server mid-call."""
            os._exit(3)

    elif variant == "error":
        @server.tool()
        def fail(reason: str = "boom") -> str:
            """Always fails."""
            raise ValueError(f"it failed: {reason}")

    elif variant == "odd_names":
        @server.tool(name="look up")
        def look_up(text: str) -> str:
            """A tool whose name has a space in it (MCP allows any name)."""
            return text

    return server


def stdio_command(variant: str) -> tuple[str, list[str]]:
    """What an McpServer row runs for this variant over stdio."""
    return sys.executable, [str(Path(__file__).resolve()), "stdio", variant]


def listening_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


@contextmanager
def silent_url() -> Iterator[str]:
    """An MCP URL whose port accepts connections (the kernel completes them into the
    backlog) and never answers a byte: a hung server, or one behind a black hole."""
    with listening_socket() as sock:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"


class HttpMcpServer:
    """A variant over streamable HTTP at `.url`, in a subprocess; `stop`, `restart`."""

    def __init__(self, variant: str):
        self.variant = variant
        self.port = 0
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> HttpMcpServer:
        # Bound here and handed over, so the port accepts connections on return.
        sock = listening_socket(self.port)
        self.port = sock.getsockname()[1]
        try:
            self.process = subprocess.Popen(
                [sys.executable, __file__, "http", self.variant, str(sock.fileno())],
                pass_fds=(sock.fileno(),), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        finally:
            sock.close()  # the child holds it now: when the child dies, connections are refused
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        time.sleep(0.05)
        self.start()

    def __enter__(self) -> HttpMcpServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _serve_http(variant: str, fd: int) -> None:
    import uvicorn

    app = build(variant).streamable_http_app()
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    anyio.run(uvicorn.Server(config).serve, [socket.socket(fileno=fd)])


if __name__ == "__main__":
    transport, variant = sys.argv[1], sys.argv[2]
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    if transport == "stdio":
        build(variant).run("stdio")
    else:
        _serve_http(variant, int(sys.argv[3]))
