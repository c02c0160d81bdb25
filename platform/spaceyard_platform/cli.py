"""The ``spaceyard`` command: start the server, and talk to one (create Spaces, push, read logs, make tokens).

``spaceyard up`` records where it listens and the admin token in ``DATA_DIR/cli.json``; the client
commands find them there (``clientconfig``), so ``spaceyard up --port 19500`` then ``spaceyard create``
just works. A failure is one line saying what went wrong and what to do, never a traceback.
"""

from __future__ import annotations

import base64
import errno
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.text import Text

from . import clientconfig
from .clientconfig import ClientConfig
from .cliprogress import ERROR_STAGES, BuildFollower, log_line, sse_lines
from .settings import Settings

app = typer.Typer(
    help="Spaceyard: self-hosted Spaces. Push a demo, get a live URL.",
    epilog="Example: spaceyard up --port 8000, then spaceyard create admin/hello --sdk gradio",
    no_args_is_help=True,
)
token_app = typer.Typer(
    help="Access tokens.", epilog="Example: spaceyard token create --user alice", no_args_is_help=True
)
app.add_typer(token_app, name="token")
console = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="SPACEYARD_URL", help="Server URL (default: the one `spaceyard up` recorded)."),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="SPACEYARD_TOKEN", help="Access token (default: the recorded admin token)."),
]
TOKEN_HELP = (
    "the admin token is printed by `spaceyard up` (and by `spaceyard token show`), "
    "`spaceyard token create --user NAME` makes others"
)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(Text.assemble(("error: ", "bold red"), message))
    raise typer.Exit(code)


def _message(resp: httpx.Response) -> str:
    message = resp.headers.get("x-error-message")
    if not message:
        try:
            body = resp.json()
            message = body.get("error") or body.get("detail") if isinstance(body, dict) else None
        except ValueError:
            message = None
    return str(message or resp.reason_phrase or resp.status_code).strip().splitlines()[0]


def explain(cfg: ClientConfig, resp: httpx.Response, what: str = "") -> str:
    """One line for an error response: what the server said, and what to do about it."""
    message = _message(resp)
    status = resp.status_code
    if status == 401:
        if cfg.token is None:
            return f"{cfg.url} needs a token (401): pass --token or set SPACEYARD_TOKEN; {TOKEN_HELP}"
        return (
            f"{cfg.url} rejected the {cfg.token_hint()} (401: {message}): "
            f"pass a valid --token or set SPACEYARD_TOKEN; {TOKEN_HELP}"
        )
    if status == 403:
        return f"{message} (403, {cfg.token_hint()}): use a token with write access{what}"
    if status == 404:
        return f"{message} (404): check the Space id OWNER/NAME{what} and that the {cfg.token_hint()} can see it"
    return f"{message} ({status})"


def _unreachable(cfg: ClientConfig, exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return f"no Spaceyard at {cfg.url} (from {cfg.url_source}): start it with `spaceyard up` or pass --url"
    return f"Spaceyard at {cfg.url} did not answer ({type(exc).__name__}): retry, or pass --url"


class Client:
    """The resolved server and token, and requests that turn transport errors into one-line failures."""

    def __init__(self, url: str | None, token: str | None) -> None:
        self.cfg = clientconfig.resolve(url, token)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.cfg.token}"} if self.cfg.token else {}

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return httpx.request(method, self.cfg.url + path, headers=self.headers, timeout=30, **kw)
        except httpx.TransportError as exc:
            fail(_unreachable(self.cfg, exc))

    def ok(self, method: str, path: str, what: str = "", **kw: Any) -> httpx.Response:
        resp = self.request(method, path, **kw)
        if resp.status_code >= 400:
            fail(explain(self.cfg, resp, what))
        return resp

    @contextmanager
    def stream(self, path: str, read_timeout: float | None) -> Iterator[httpx.Response]:
        timeout = httpx.Timeout(10.0, read=read_timeout)
        try:
            with httpx.stream("GET", self.cfg.url + path, headers=self.headers, timeout=timeout) as resp:
                yield resp
        except httpx.ConnectError as exc:
            fail(_unreachable(self.cfg, exc))

    def runtime(self, space_id: str) -> dict[str, Any]:
        return dict(self.ok("GET", f"/api/spaces/{space_id}/runtime", f" ({space_id})").json())


def _space_id(value: str) -> str:
    owner, sep, name = value.partition("/")
    if not sep or not owner or not name or "/" in name:
        fail(f"{value!r} is not a Space id: write OWNER/NAME, e.g. admin/hello", code=2)
    return value


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno != errno.EADDRINUSE
    return True


@app.command(epilog="Example: spaceyard up --port 19500   (then `spaceyard create admin/hello` finds it)")
def up(
    port: Annotated[int | None, typer.Option(help="Port (default 8000, or SPACEYARD_PORT).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
) -> None:
    """Start Spaceyard: API, git server, pages, gateway and an embedded build worker."""
    import uvicorn

    from .app import bootstrap_admin, create_app
    from .db.session import Database
    from .limits import http_protocol
    from .private import prepare_data_dir
    from .serving import tune_gc

    if port is not None:
        os.environ["SPACEYARD_PORT"] = str(port)
    if host is not None:
        os.environ["SPACEYARD_HOST"] = host
    settings = Settings()
    if not _port_free(settings.host, settings.port):
        fail(f"port {settings.port} on {settings.host} is in use: stop what runs there, or pass --port N")
    prepare_data_dir(settings)
    db = Database(settings.resolved_database_url)
    db.migrate()
    token = bootstrap_admin(db, settings)
    db.engine.dispose()
    local = clientconfig.local_url(settings.host, settings.port)
    clientconfig.record(settings.data_dir, local, token)
    public = settings.resolved_public_url
    console.print(Text.assemble(("Spaceyard", "bold"), " on ", (public, f"link {public}")))
    console.print(f"  data:        {settings.data_dir.resolve()}", markup=False)
    console.print(f"  admin token: {token}  (user 'admin'; `spaceyard token show` prints it)", markup=False)
    console.print(f"  create:      spaceyard create admin/NAME   (finds this server: {local})", markup=False)
    console.print(
        f"  push:        git push http://admin:$TOKEN@localhost:{settings.port}/spaces/admin/NAME main", markup=False
    )
    from spaceyard_runtime.factory import runtime_class

    runtime_settings = settings.runtime()
    for warning in runtime_class(runtime_settings.runtime).start_warnings(runtime_settings):
        console.print(f"WARNING: {warning}", highlight=False, markup=False, soft_wrap=True)
    sys.stdout.flush()
    served = create_app(settings)
    tune_gc()  # after the app is built: its objects frozen out of collections (serving.py)
    uvicorn.run(
        served,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=http_protocol(settings),  # httptools, with limits on request heads (limits.py)
        ws="websockets-sansio",
        log_level="info",
        access_log=False,  # ~30% of gateway throughput; requests are counted per Space at /metrics
        proxy_headers=settings.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.keep_alive_timeout,
        limit_concurrency=settings.max_connections,
        h11_max_incomplete_event_size=settings.max_header_bytes,
    )


@app.command(epilog="Example: spaceyard create admin/hello --sdk gradio --hardware cpu-basic")
def create(
    space_id: Annotated[str, typer.Argument(help="OWNER/NAME")],
    sdk: Annotated[str, typer.Option(help="gradio, streamlit, docker or static")] = "gradio",
    private: Annotated[bool, typer.Option(help="Only the owner can see it.")] = False,
    hardware: Annotated[str | None, typer.Option(help="Hardware flavor (cpu-basic, t4-small, ...).")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create a Space, then push to it with git (or `spaceyard push`)."""
    client = Client(url, token)
    owner, _, name = _space_id(space_id).partition("/")
    body: dict[str, Any] = {"name": name, "organization": owner, "type": "space", "sdk": sdk, "private": private}
    if hardware:
        body["hardware"] = hardware
    resp = client.ok("POST", "/api/repos/create", f" (to create {space_id})", json=body)
    base = client.cfg.url
    console.print(f"Created {space_id}: {resp.json()['url']}", markup=False)
    console.print(f"Push:   spaceyard push {space_id}   (or: git push {base}/spaces/{space_id} main", markup=False)
    console.print(f"        with user {owner} and your token as the password)", markup=False)


@app.command(
    epilog="Example: cd sample_spaces/hello-gradio && git init -b main && git add -A "
    "&& git commit -m hello && spaceyard push admin/hello"
)
def push(
    space_id: Annotated[str, typer.Argument(help="OWNER/NAME")],
    path: Annotated[Path, typer.Argument(help="A git working copy (default: here).")] = Path("."),
    wait: Annotated[bool, typer.Option(help="Follow the build until the Space runs or fails.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the build and start.")] = 1800,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Push the working copy's HEAD to the Space's main branch, then show the build until it runs."""
    client = Client(url, token)
    _space_id(space_id)
    git_dir = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    if git_dir.returncode != 0:
        fail(f"{path} is not a git working copy with a commit: run `git init -b main && git add -A && git commit`")
    sha = git_dir.stdout.strip()
    client.runtime(space_id)  # one clear error (no server, bad token, no such Space) before git speaks
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0")
    if client.cfg.token:
        basic = base64.b64encode(f"{space_id.split('/')[0]}:{client.cfg.token}".encode()).decode()
        # in the environment, not the command line: other users see argv in `ps`, not the environment
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="http.extraHeader",
            GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}",
        )
    remote = f"{client.cfg.url}/spaces/{space_id}"
    console.print(f"Pushing {sha[:12]} to {remote} ...", markup=False)
    proc = subprocess.run(
        ["git", "-C", str(path), "push", "--force", remote, "HEAD:main"], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        fail(f"git push failed: {lines[-1] if lines else proc.returncode}")
    if wait:
        _follow_build(client, space_id, sha, timeout)


@app.command(epilog="Example: spaceyard status admin/hello --wait")
def status(
    space_id: Annotated[str, typer.Argument(help="OWNER/NAME")],
    wait: Annotated[bool, typer.Option(help="Follow the current build until the Space runs or fails.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 1800,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Print a Space's stage (and the reason when it failed)."""
    client = Client(url, token)
    _space_id(space_id)
    if wait:
        _follow_build(client, space_id, None, timeout)
        return
    _print_result(client, space_id, client.runtime(space_id))


def _follow_build(client: Client, space_id: str, sha: str | None, timeout: float, with_log: bool = True) -> None:
    follower = BuildFollower(
        console,
        runtime=lambda: client.runtime(space_id),
        open_log=(lambda: client.stream(f"/api/spaces/{space_id}/logs/build", read_timeout=None)) if with_log else None,
        sha=sha,
        timeout=timeout,
    )
    try:
        rt = follower.run()
    except TimeoutError as exc:
        fail(f"{space_id} is {exc}: see `spaceyard logs {space_id} --build -f`")
    _print_result(client, space_id, rt)


def _print_result(client: Client, space_id: str, rt: dict[str, Any]) -> None:
    stage = str(rt.get("stage"))
    if stage in ERROR_STAGES:
        reason = str(rt.get("errorMessage") or "").strip().splitlines()
        which = "--run" if stage == "RUNTIME_ERROR" else "--build"
        fail(
            f"{space_id} is {stage}: {reason[0] if reason else 'no reason given'} "
            f"(the log: `spaceyard logs {space_id} {which}`)"
        )
    page = f"{client.cfg.url}/spaces/{space_id}"
    console.print(Text.assemble((stage, "bold green" if stage == "RUNNING" else "bold"), f"  {page}"))


@app.command(epilog="Example: spaceyard logs admin/hello --build -f")
def logs(
    space_id: Annotated[str, typer.Argument(help="OWNER/NAME")],
    build: Annotated[bool, typer.Option("--build", help="The latest build's log.")] = False,
    run: Annotated[bool, typer.Option("--run", help="The app's output (default).")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep following new lines.")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Print a Space's build log or app output (live with --follow; Ctrl-C stops)."""
    client = Client(url, token)
    _space_id(space_id)
    kind = "build" if build and not run else "run"
    try:
        with client.stream(f"/api/spaces/{space_id}/logs/{kind}", read_timeout=None if follow else 2.0) as r:
            if r.status_code != 200:
                r.read()
                fail(explain(client.cfg, r, f" ({space_id})"))
            for timestamp, line in sse_lines(r):
                console.print(log_line(timestamp, line), soft_wrap=True)
        if follow and kind == "build":  # the build is over: say how it ended, once the app has started
            _follow_build(client, space_id, None, timeout=1800, with_log=False)
    except httpx.ReadTimeout:
        pass  # without --follow: everything so far has been printed
    except httpx.TransportError as exc:
        fail(_unreachable(client.cfg, exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command(epilog="Example: SPACEYARD_REDIS_URL=redis://host:6379/0 spaceyard worker --concurrency 2")
def worker(
    concurrency: Annotated[int, typer.Option(help="Builds at once.")] = 1,
) -> None:
    """Run a build worker (for setups where `up` does not start one: SPACEYARD_EMBEDDED_WORKER=false)."""
    from spaceyard_builder.worker import app as celery_app

    celery_app.worker_main(
        [
            "worker",
            "--pool=solo" if concurrency == 1 else "--pool=prefork",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
        ]
    )


@app.command()
def gc(
    envs: Annotated[
        bool, typer.Option("--envs", help="Also environments in a shared SPACEYARD_ENV_DIR (no other platform uses).")
    ] = False,
) -> None:
    """Remove exported commits and environments no Space uses; print disk use per area."""
    from .db.session import Database
    from .diskgc import collect

    settings = Settings()
    builder = settings.builder()
    db = Database(settings.resolved_database_url)
    out = collect(
        db, settings.data_dir, builder.envs_root, envs=envs or builder.env_dir is None, keep_recent=settings.gc_grace
    )
    for path in out.removed:
        console.print(f"removed {path}")
    console.print(f"freed {out.freed / 2**20:.1f} MiB")
    for area, used in out.usage.items():
        console.print(f"  {area:8} {used / 2**20:10.1f} MiB")


@app.command("settings", epilog="Example: spaceyard settings > docs/settings.md")
def settings_reference() -> None:
    """Print every setting (environment variable, default, meaning) as Markdown: docs/settings.md."""
    from .settings_doc import settings_markdown

    print(settings_markdown(), end="")


@token_app.command("show", epilog="Example: export TOKEN=$(spaceyard token show)")
def token_show() -> None:
    """Print the admin token that `spaceyard up` recorded (DATA_DIR/cli.json)."""
    path = clientconfig.find_record()
    cfg = clientconfig.resolve(None, None)
    if path is None or cfg.token_source != str(path) or cfg.token is None:
        fail("no recorded admin token: start the server with `spaceyard up` here (or set SPACEYARD_DATA_DIR)")
    print(cfg.token)


@token_app.command("create", epilog="Example: spaceyard token create --user alice --role write --org acme")
def token_create(
    user: Annotated[str, typer.Option(help="User name (created if missing).")],
    role: Annotated[str, typer.Option(help="read or write")] = "write",
    name: Annotated[str, typer.Option(help="A label for the token.")] = "cli",
    org: Annotated[list[str] | None, typer.Option(help="Add the user to this organization (repeatable).")] = None,
    org_role: Annotated[
        str, typer.Option(help="The user's role in those organizations: read, write or admin.")
    ] = "write",
) -> None:
    """Create a user's access token directly in the database (run on the server machine)."""
    from sqlalchemy import select

    from .auth import create_token, ensure_user
    from .db.models import Membership
    from .db.session import Database

    if role not in ("read", "write"):
        fail("--role must be read or write", code=2)
    if org_role not in ("read", "write", "admin"):
        fail("--org-role must be read, write or admin", code=2)
    settings = Settings()
    db = Database(settings.resolved_database_url)
    db.migrate()
    with db.session() as s:
        u = ensure_user(s, user)
        value = create_token(s, u, name=name, role=role)
        for org_name in org or []:
            o = ensure_user(s, org_name, kind="org")
            member = s.scalar(select(Membership).where(Membership.org_id == o.id, Membership.user_id == u.id))
            if member is None:
                s.add(Membership(org_id=o.id, user_id=u.id, role=org_role))
            else:
                member.role = org_role
    print(value)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
