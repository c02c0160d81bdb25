"""Which Gradio state a request names (event ids, upload paths, queue sessions), and holding back the small
body of a ``queue/join`` to read its session, with hostile inputs: huge, chunked, not JSON, not a dict."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from dataclasses import replace
from typing import Any

from spaceyard_platform.gateway import gradiostate as gs
from spaceyard_platform.gateway import versions
from spaceyard_platform.gateway.activity import SpaceActivity
from spaceyard_platform.gateway.routes import RouteSpec
from spaceyard_runtime.api import Endpoint


def test_state_named_by_each_follow_up() -> None:
    assert gs.state_key("GET", "/gradio_api/call/greet/abc") == "abc"
    assert gs.state_key("GET", "/gradio_api/file=/tmp/x.png") == "/tmp/x.png"
    assert gs.state_key("GET", "/gradio_api/queue/data", b"session_hash=s1&x=2") == "session:s1"
    assert gs.state_key("GET", "/queue/data", b"") is None
    assert gs.state_key("GET", "/gradio_api/heartbeat/s2") == "session:s2"
    assert gs.state_key("GET", "/gradio_api/stream/s3/run/1/playlist.m3u8") == "session:s3"
    join = json.dumps({"fn_index": 0, "session_hash": "s4"}).encode()
    assert gs.state_key("POST", "/gradio_api/queue/join", b"", join) == "session:s4"
    assert gs.state_key("POST", "/gradio_api/cancel", b"", join) == "session:s4"
    assert gs.asked_keys("POST", "/gradio_api/queue/join", join) == ["session:s4"]
    for bad in (b"not json", b"[1, 2]", b'{"session_hash": 5}', b'{"session_hash": ""}'):
        assert gs.state_key("POST", "/gradio_api/queue/join", b"", bad) is None
        assert gs.asked_keys("POST", "/gradio_api/queue/join", bad) == []
    assert gs.state_key("POST", "/gradio_api/upload", b"", join) is None  # not a session POST
    assert gs.state_key("DELETE", "/gradio_api/call/greet/abc") is None


def _receiver(chunks: list[bytes]) -> Any:
    messages: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]

    async def receive() -> MutableMapping[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return receive


def test_held_body_is_replayed_whole_and_only_small_declared_bodies_are_held() -> None:
    async def run() -> None:
        body = b'{"session_hash": "s5", "data": ["x"]}'
        headers = [(b"content-length", str(len(body)).encode())]
        held, receive = await gs.held_body("POST", "/gradio_api/queue/join", headers, _receiver([body[:10], body[10:]]))
        assert held == body
        replayed = [await receive(), await receive()]
        assert b"".join(m["body"] for m in replayed) == body and replayed[-1]["more_body"] is False
        big = [(b"content-length", str(gs.MAX_ANSWER + 1).encode())]
        original = _receiver([b"x"])
        assert await gs.held_body("POST", "/gradio_api/queue/join", big, original) == (None, original)
        assert (await gs.held_body("POST", "/gradio_api/queue/join", [], original))[0] is None  # chunked
        assert (await gs.held_body("GET", "/gradio_api/queue/join", headers, original))[0] is None
        assert (await gs.held_body("POST", "/gradio_api/call/greet", headers, original))[0] is None

    asyncio.run(run())


def test_a_draining_version_gets_follow_ups_of_its_state_but_no_new_work() -> None:
    """Retiring a replaced version: a session's new ``queue/join`` goes to the serving version (and the session
    with it), while the event stream of a join the old version took just before still reaches the old one."""
    old, new = Endpoint("old", 80), Endpoint("new", 80)
    pinned = RouteSpec("a/b", "RUNNING", upstream=new, version="v2", previous=old, previous_version="v1")
    activity = SpaceActivity(lambda: 0.0)
    activity.gradio_state.remember("session:s1", "v1")
    join = json.dumps({"session_hash": "s1"}).encode()
    post: Any = {"method": "POST", "headers": [(b"cookie", b"spaceyard_version=v1")], "query_string": b""}
    stream: Any = {"method": "GET", "headers": [], "query_string": b"session_hash=s1"}
    assert versions.pin_version(post, pinned, activity, new, "", "")[0] == old
    assert versions.follow_state(post, pinned, activity, new, "/gradio_api/queue/join", join) == old
    draining = replace(pinned, previous_draining=True)
    assert versions.follow_state(stream, draining, activity, new, "/gradio_api/queue/data") == old, "its stream"
    endpoint, stamp = versions.pin_version(post, draining, activity, new, "", "")
    assert endpoint == new and stamp is not None and b"spaceyard_version=v2" in stamp[1]
    assert versions.follow_state(post, draining, activity, new, "/gradio_api/queue/join", join) == new
    assert activity.gradio_state.version_of("session:s1") == "v2"
    assert versions.follow_state(stream, draining, activity, new, "/gradio_api/queue/data") == new, "follows the join"
