"""Keep Gradio's own front end from calling the Hub: what the gateway does to app pages.

Gradio renders ``space_id`` (``SPACE_ID`` when ``SYSTEM=spaces``) into the page config, and its front
end, on a top-level page only, then asks ``https://huggingface.co/api/spaces/SPACE_ID`` (and the
author's avatar, and Google Fonts) to draw the Hub's badge. On a private network that tells the Hub
the names of the Spaces visited, and a same-named Hub Space's data would be shown. Gradio has no switch
for it, and ``SYSTEM``/``SPACE_ID`` must stay (apps and Gradio's server side read them), so the gateway
changes the one thing the front end reads: in a page *navigation* answered with uncompressed
``text/html`` (one response per page load, never assets, API calls or streams), the config's
``"space_id":"OWNER/NAME"`` becomes ``"space_id":null``. Nothing else is touched: an app that calls out
on its own still does.

:data:`EMBED_PATH` (``/__spaceyard/gradio.js`` on any Gradio app's origin) is the embed snippet's
script: it loads the app's own front end (the ``assets/index-*.js`` its page names, which defines
``<gradio-app>``) instead of Gradio's script on a public CDN.
"""

from __future__ import annotations

from .asgi import Message, Send

MAX_PAGE = 4 * 1024 * 1024
"""A page larger than this is passed on unchanged (no app page is near it; memory stays bounded)."""

EMBED_PATH = "/__spaceyard/gradio.js"
EMBED_SCRIPT = b"""// Spaceyard: Gradio's <gradio-app> web component, from this app's own front end (no CDN).
const root = new URL("/", import.meta.url);
const page = await (await fetch(root)).text();
const found = page.match(/<script[^>]+type="module"[^>]+src="([^"]*assets\\/index-[^"]+\\.js)"/);
if (!found) throw new Error("Spaceyard: this app's page names no Gradio front end");
await import(new URL(found[1], root).href);
"""


async def send_embed_script(send: Send, head: bool) -> None:
    headers = [
        (b"content-type", b"text/javascript; charset=utf-8"),
        (b"content-length", str(len(EMBED_SCRIPT)).encode()),
        (b"cache-control", b"no-cache"),
        (b"access-control-allow-origin", b"*"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else EMBED_SCRIPT})


def without_space_id(send: Send, space_id: str) -> Send:
    """``send`` that clears ``space_id`` in an uncompressed HTML page (see the module docstring)."""
    needle = b'"space_id":"' + space_id.encode("utf-8") + b'"'
    start: Message | None = None
    parts: list[bytes] = []
    size = 0
    passing = False

    async def wrapped(message: Message) -> None:
        nonlocal start, size, passing
        if passing:
            await send(message)
            return
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            kind = next((v for n, v in headers if n.lower() == b"content-type"), b"")
            encoded = any(n.lower() == b"content-encoding" for n, _ in headers)
            if message.get("status") != 200 or not kind.lower().startswith(b"text/html") or encoded:
                passing = True
                await send(message)
                return
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        body = message.get("body", b"")
        parts.append(body)
        size += len(body)
        if size > MAX_PAGE:  # too large to hold: on unchanged
            passing = True
            await send(start)
            await send({"type": "http.response.body", "body": b"".join(parts), "more_body": True})
            if not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b""})
            return
        if message.get("more_body", False):
            return
        page = b"".join(parts).replace(needle, b'"space_id":null')
        headers = [(n, v) for n, v in start.get("headers", []) if n.lower() != b"content-length"]
        headers.append((b"content-length", str(len(page)).encode()))
        passing = True
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": page})

    return wrapped
