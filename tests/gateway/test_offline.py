"""Unit tests of the page change that keeps Gradio's front end off the Hub (gateway/offline.py).

The browser test (tests/web/test_no_outbound.py) proves it end to end; these pin what is *not* changed:
other responses, compressed pages, other Spaces' ids, pages too large to hold, and streamed pages.
"""

from __future__ import annotations

from typing import Any

from spaceyard_platform.gateway import offline
from spaceyard_platform.gateway.asgi import Message

SPACE = "alice/demo"
CONFIG = b'<script>window.gradio_config = {"version":"6.31.0","space_id":"alice/demo","x":1};</script>'


async def run(headers: list[tuple[bytes, bytes]], chunks: list[bytes], status: int = 200) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: Message) -> None:
        sent.append(dict(message))

    wrapped = offline.without_space_id(send, SPACE)
    await wrapped({"type": "http.response.start", "status": status, "headers": headers})
    for i, chunk in enumerate(chunks):
        await wrapped({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})
    return sent


def body(sent: list[dict[str, Any]]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def length(sent: list[dict[str, Any]]) -> bytes | None:
    return next((v for n, v in sent[0]["headers"] if n == b"content-length"), None)


async def test_the_page_config_loses_its_space_id_and_the_length_follows() -> None:
    sent = await run(
        [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(CONFIG)).encode())],
        [CONFIG[:30], CONFIG[30:]],  # split inside the config: the page is held whole
    )
    page = body(sent)
    assert b'"space_id":null' in page and b"alice/demo" not in page
    assert length(sent) == str(len(page)).encode()
    assert sent[0]["status"] == 200


async def test_other_responses_pass_unchanged() -> None:
    for headers, status in [
        ([(b"content-type", b"application/json")], 200),  # /config: the app's server side as it is
        ([(b"content-type", b"text/html"), (b"content-encoding", b"gzip")], 200),  # cannot be read
        ([(b"content-type", b"text/html")], 404),
    ]:
        sent = await run(headers, [CONFIG], status)
        assert body(sent) == CONFIG, headers


async def test_only_this_spaces_own_id_is_cleared() -> None:
    other = CONFIG.replace(b"alice/demo", b"alice/demo2") + b'"space_id": "alice/demo"'
    sent = await run([(b"content-type", b"text/html")], [other])
    assert body(sent) == other


async def test_a_page_too_large_to_hold_streams_on_unchanged() -> None:
    big = b"x" * (offline.MAX_PAGE + 1)
    sent = await run([(b"content-type", b"text/html")], [CONFIG, big, CONFIG])
    assert body(sent) == CONFIG + big + CONFIG
    assert sent[-1].get("more_body", False) is False


async def test_embed_script_loads_the_apps_own_front_end() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: Message) -> None:
        sent.append(dict(message))

    await offline.send_embed_script(send, head=False)
    assert dict(sent[0]["headers"])[b"content-type"].startswith(b"text/javascript")
    script = sent[1]["body"].decode()
    assert "https://" not in script and 'new URL("/", import.meta.url)' in script
