"""Websocket relay: the visitor's websocket (ASGI) <-> the app's websocket (aiohttp client).

Text and binary frames go both ways as they come; close codes and reasons are passed on in both
directions; the subprotocols the visitor offers are offered to the app and the app's choice is
accepted towards the visitor. A connection silent in both directions for ``idle_timeout`` seconds is
closed (1001, going away).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
from yarl import URL

from .activity import SpaceActivity
from .asgi import Receive, Scope, Send

_NO_STATUS = 1005
_ABNORMAL = 1006


async def deny(scope: Scope, send: Send, status: int, body: bytes = b"", content_type: bytes = b"text/plain") -> None:
    """Refuse a websocket handshake with an HTTP status (or a plain close when not supported)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def _asgi_close_code(code: int | None) -> int:
    """A code the server may send: 1005/1006/1015 are reserved for 'no code' and local failures."""
    if code is None or code in (_NO_STATUS, _ABNORMAL, 1015):
        return 1011 if code in (_ABNORMAL, 1015) else 1000
    return code


async def relay(
    session: aiohttp.ClientSession,
    scope: Scope,
    receive: Receive,
    send: Send,
    url: URL,
    headers: list[tuple[str, str]],
    activity: SpaceActivity,
    idle_timeout: float,
) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    try:
        ws = await session.ws_connect(
            url,
            protocols=tuple(scope.get("subprotocols") or ()),
            headers=headers,
            autoclose=False,
            autoping=True,
            compress=0,
            max_msg_size=0,
        )
    except aiohttp.WSServerHandshakeError as exc:
        await deny(scope, send, exc.status if exc.status >= 400 else 502, b"The app refused the websocket.")
        return
    except (aiohttp.ClientError, OSError, TimeoutError):
        await deny(scope, send, 502, b"The app is not reachable.")
        return

    accept: dict[str, Any] = {"type": "websocket.accept"}
    if ws.protocol:
        accept["subprotocol"] = ws.protocol
    await send(accept)
    activity.touch()
    last = [time.monotonic()]
    client_done = [False]  # the visitor's side is closed (by either end)

    async def from_client() -> None:
        while True:
            msg = await receive()
            kind = msg["type"]
            if kind == "websocket.receive":
                last[0] = activity.touch()
                text = msg.get("text")
                if text is not None:
                    await ws.send_str(text)
                else:
                    await ws.send_bytes(msg.get("bytes") or b"")
            elif kind == "websocket.disconnect":
                client_done[0] = True
                code = msg.get("code") or 1000
                reason = msg.get("reason") or ""
                await ws.close(code=_asgi_close_code(code), message=reason.encode())
                return

    async def from_app() -> None:
        while True:
            msg = await ws.receive()
            kind = msg.type
            if kind is aiohttp.WSMsgType.TEXT:
                last[0] = activity.touch()
                await send({"type": "websocket.send", "text": msg.data})
            elif kind is aiohttp.WSMsgType.BINARY:
                last[0] = activity.touch()
                await send({"type": "websocket.send", "bytes": msg.data})
            elif kind is aiohttp.WSMsgType.CLOSE:
                code = _asgi_close_code(msg.data)
                reason = msg.extra or ""
                client_done[0] = True
                await send({"type": "websocket.close", "code": code, "reason": reason})
                await ws.close(code=code)
                return
            else:  # CLOSING, CLOSED, ERROR: the app went away without a close frame
                client_done[0] = True
                await send({"type": "websocket.close", "code": 1011, "reason": "app connection lost"})
                return

    async def watchdog() -> None:
        while True:
            remaining = last[0] + idle_timeout - time.monotonic()
            if remaining <= 0:
                client_done[0] = True
                await send({"type": "websocket.close", "code": 1001, "reason": "idle timeout"})
                await ws.close(code=1001, message=b"idle timeout")
                return
            await asyncio.sleep(remaining)

    tasks = [asyncio.ensure_future(from_client()), asyncio.ensure_future(from_app()), asyncio.ensure_future(watchdog())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if not client_done[0]:  # a pump failed (the app's connection broke while sending...)
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": 1011, "reason": "app connection lost"})
        if not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()
