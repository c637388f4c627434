"""An httpx transport for streamable HTTP sessions that tells when the server is gone.

When an HTTP server dies while it streams a tool call's answer, the SDK's transport
drops the broken stream and the request is never answered (it would wait for the
caller's timeout). This transport notices the broken connection itself, so that:

- a failed connect, or a POST's answer cut short, ends the session at once (`on_broken`):
  the pending call becomes an error result and the next one starts a new session;
- the GET stream (server-to-client messages, open while idle) cut short only marks the
  session as stale (`on_stale`): calls already sent finish or fail on their own, new ones
  go to a new session. (Ending the session then could blame a call the server never
  received for the server's death.)

Timeouts are not breakage: a quiet GET stream reaching httpx's read timeout is simply
reopened by the SDK.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx

OnBroken = Callable[[BaseException], None]
OnStale = Callable[[], None]


def _is_breakage(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError) and (
        not isinstance(exc, httpx.TimeoutException) or isinstance(exc, httpx.ConnectTimeout))


class _WatchedBody(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, on_broken: OnBroken):
        self._inner, self._on_broken = inner, on_broken

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except Exception as exc:
            if _is_breakage(exc):
                self._on_broken(exc)
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


class WatchedTransport(httpx.AsyncBaseTransport):
    def __init__(self, on_broken: OnBroken, on_stale: OnStale):
        self._inner = httpx.AsyncHTTPTransport()
        self._on_broken, self._on_stale = on_broken, on_stale

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except Exception as exc:
            if _is_breakage(exc):
                self._on_broken(exc)
            raise
        body = _WatchedBody(response.stream, self._body_broken(request))  # type: ignore[arg-type]
        return httpx.Response(status_code=response.status_code, headers=response.headers, stream=body,
                              extensions=response.extensions)

    def _body_broken(self, request: httpx.Request) -> OnBroken:
        if request.method == "GET":
            return lambda _exc: self._on_stale()
        return self._on_broken

    async def aclose(self) -> None:
        await self._inner.aclose()
