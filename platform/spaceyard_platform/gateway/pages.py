"""Small pages the gateway answers itself: unknown Space, Space not running, app unreachable."""

from __future__ import annotations

import html
import json

from .asgi import Send

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>{refresh}
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}}.stage{{display:inline-block;padding:.1rem .5rem;border-radius:.3rem;background:#eee;
font-family:monospace}}</style></head>
<body><h1>{title}</h1>{stage}<p>{message}</p></body></html>
"""


def wants_html(accept: bytes | None) -> bool:
    """Browsers get HTML; API clients (``Accept: application/json``, ``*/*`` or nothing) get JSON."""
    return accept is not None and b"text/html" in accept


async def send_page(
    send: Send,
    status: int,
    title: str,
    message: str,
    *,
    accept: bytes | None,
    stage: str = "",
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    head: bool = False,
    refresh: int | None = None,
) -> None:
    """A small page (HTML for browsers, JSON otherwise); ``refresh`` makes the browser reload after that
    many seconds (the "waking up" page)."""
    if wants_html(accept):
        stage_html = f'<p>Stage: <span class="stage">{html.escape(stage)}</span></p>' if stage else ""
        meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh is not None else ""
        body = _TEMPLATE.format(
            title=html.escape(title), stage=stage_html, message=html.escape(message), refresh=meta
        ).encode()
        content_type = b"text/html; charset=utf-8"
    else:
        payload: dict[str, object] = {"error": message, "status": status}
        if stage:
            payload["stage"] = stage
        body = json.dumps(payload).encode()
        content_type = b"application/json"
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if extra_headers:
        headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def not_found(send: Send, accept: bytes | None, head: bool = False) -> None:
    await send_page(send, 404, "404 - Space not found", "There is no Space at this address.", accept=accept, head=head)
