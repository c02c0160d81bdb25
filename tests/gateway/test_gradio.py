"""A real Gradio 6.31 app through the gateway: page, config URLs, gradio_client, streaming."""

from __future__ import annotations

import json
import time

import httpx
from gradio_client import Client

from spaceyard_runtime.api import Endpoint

from .conftest import GatewayServer


def test_page_and_config_via_subdomain(gateway: GatewayServer, gradio_app: Endpoint) -> None:
    gateway.add("gradio/hello-sub", gradio_app)
    host = gateway.host("gradio-hello-sub")
    page = httpx.get(f"{gateway.url}/", headers={"Host": host, "Accept": "text/html"}, timeout=30)
    assert page.status_code == 200
    assert "gradio" in page.text.lower()
    config = httpx.get(f"{gateway.url}/config", headers={"Host": host}, timeout=30).json()
    assert config["root"] == f"http://{host}"  # Gradio builds its URLs on the public address


def test_page_and_config_via_path(gateway: GatewayServer, gradio_app: Endpoint) -> None:
    gateway.add("gradio/hello", gradio_app)
    base = f"{gateway.url}/apps/gradio/hello"
    page = httpx.get(base + "/", headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 200
    assert "gradio" in page.text.lower()
    config = httpx.get(base + "/config", timeout=30).json()
    assert config["root"] == base
    # the page's assets load through the prefix too
    info = httpx.get(base + "/gradio_api/info", timeout=30)
    assert info.status_code == 200 and "/greet" in info.json()["named_endpoints"]


def test_gradio_client_through_the_path_url(gateway: GatewayServer, gradio_app: Endpoint) -> None:
    gateway.add("gradio/client", gradio_app)
    client = Client(f"{gateway.url}/apps/gradio/client/", verbose=False)
    assert client.predict("World", api_name="/greet") == "Hello World!"
    # streaming through gradio_client: every yielded value arrives
    job = client.submit(3, api_name="/count")
    job.result()
    assert job.outputs() == ["tick 0", "tick 1", "tick 2"]


def test_generator_chunks_arrive_one_by_one(gateway: GatewayServer, gradio_app: Endpoint) -> None:
    """The app yields every 0.3 s; the visitor sees each event when it is yielded, not all at the end."""
    gateway.add("gradio/stream", gradio_app)
    base = f"{gateway.url}/apps/gradio/stream/gradio_api/call/count"
    event_id = httpx.post(base, json={"data": [5]}, timeout=30).json()["event_id"]
    arrivals: list[tuple[float, str]] = []
    with httpx.stream("GET", f"{base}/{event_id}", timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("generating", "complete"):
                arrivals.append((time.monotonic(), line))
                if event == "complete":
                    break
    values = [json.loads(line[5:]) for _, line in arrivals]
    assert [v[0] for v in values if v][:5] == [f"tick {i}" for i in range(5)]
    times = [t for t, _ in arrivals]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    # spread over time like the generator (5 x 0.3 s), not one burst: most gaps are clearly non-zero
    assert times[-1] - times[0] >= 0.6
    assert sum(1 for g in gaps if g >= 0.1) >= 3
