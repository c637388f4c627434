"""The dashboard's /ws connections, routed through Playwright so a test can drop one or
hold back what the server sends: nothing in the page is there for tests."""

from __future__ import annotations

import re

FEED_URL = re.compile(r"/ws(\?|$)")


class Feed:
    """Install before the page opens /ws (before `goto`, or reload after)."""

    def __init__(self, page):
        self.connections: list[tuple[object, object]] = []  # (page side, server side), oldest first
        self.muted = False
        page.route_web_socket(FEED_URL, self._connect)

    def _connect(self, ws) -> None:
        server = ws.connect_to_server()
        self.muted = False  # a new connection hears everything again
        server.on_message(lambda message: None if self.muted else ws.send(message))
        self.connections.append((ws, server))

    def drop(self) -> None:
        """Close the newest connection, as a network failure would."""
        ws, server = self.connections[-1]
        server.close()
        ws.close(code=4001, reason="dropped by the test")

    def mute(self) -> None:
        """From now on the page hears nothing from the server (until the next connection)."""
        self.muted = True
