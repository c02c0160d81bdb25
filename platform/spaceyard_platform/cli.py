"""The ``spaceyard`` command: start the server, and talk to one (create Spaces, read logs, make tokens)."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from .settings import Settings

app = typer.Typer(help="Spaceyard: self-hosted Spaces. Push a demo, get a live URL.", no_args_is_help=True)
token_app = typer.Typer(help="Access tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")
console = Console(soft_wrap=True)
err = Console(stderr=True)

UrlOpt = Annotated[str | None, typer.Option("--url", envvar="SPACEYARD_URL", help="Server URL.")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="SPACEYARD_TOKEN", help="Access token.")]


def _client_config(url: str | None, token: str | None) -> tuple[str, str | None]:
    settings = Settings()
    url = (url or f"http://localhost:{settings.port}").rstrip("/")
    token = token or os.environ.get("HF_TOKEN")
    if token is None:
        path = settings.data_dir / "admin.token"
        if path.exists():
            token = path.read_text().strip()
    return url, token


def _fail(resp: httpx.Response) -> None:
    try:
        message = resp.json().get("error", resp.text)
    except (ValueError, AttributeError):
        message = resp.text
    err.print(f"[red]error {resp.status_code}:[/red] {message}")
    raise typer.Exit(1)


@app.command()
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

    if port is not None:
        os.environ["SPACEYARD_PORT"] = str(port)
    if host is not None:
        os.environ["SPACEYARD_HOST"] = host
    settings = Settings()
    prepare_data_dir(settings)
    db = Database(settings.resolved_database_url)
    db.migrate()
    token = bootstrap_admin(db, settings)
    db.engine.dispose()
    console.print(f"[bold]Spaceyard[/bold] on [link]{settings.resolved_public_url}[/link]")
    console.print(f"  data:        {settings.data_dir.resolve()}")
    console.print(f"  admin token: {token}  (user 'admin')")
    console.print(f"  push:        git push http://admin:<token>@localhost:{settings.port}/spaces/admin/NAME main")
    from spaceyard_runtime.factory import runtime_class
    from spaceyard_runtime.settings import RuntimeSettings

    runtime_settings = RuntimeSettings()
    for warning in runtime_class(runtime_settings.runtime).start_warnings(runtime_settings):
        console.print(f"WARNING: {warning}", highlight=False, markup=False, soft_wrap=True)
    sys.stdout.flush()
    uvicorn.run(
        create_app(settings),
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


@app.command()
def create(
    space_id: Annotated[str, typer.Argument(help="OWNER/NAME")],
    sdk: Annotated[str, typer.Option(help="gradio, streamlit, docker or static")] = "gradio",
    private: Annotated[bool, typer.Option(help="Only the owner can see it.")] = False,
    hardware: Annotated[str | None, typer.Option(help="Hardware flavor (cpu-basic, t4-small, ...).")] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Create a Space, then push to it with git."""
    base, tok = _client_config(url, token)
    owner, _, name = space_id.partition("/")
    body: dict[str, Any] = {"name": name, "organization": owner, "type": "space", "sdk": sdk, "private": private}
    if hardware:
        body["hardware"] = hardware
    resp = httpx.post(f"{base}/api/repos/create", json=body, headers=_auth(tok))
    if resp.status_code != 200:
        _fail(resp)
    console.print(f"Created {space_id}: {resp.json()['url']}")
    console.print(f"Push: git push {base}/spaces/{space_id} main   (user: {owner}, password: your token)")


@app.command()
def logs(
    space_id: Annotated[str, typer.Argument(help="OWNER/NAME")],
    build: Annotated[bool, typer.Option("--build", help="The latest build's log.")] = False,
    run: Annotated[bool, typer.Option("--run", help="The app's output (default).")] = False,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep following new lines.")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Print a Space's build log or app output (live with --follow)."""
    base, tok = _client_config(url, token)
    kind = "build" if build and not run else "run"
    timeout = httpx.Timeout(10.0, read=None if follow else 2.0)
    try:
        with httpx.stream("GET", f"{base}/api/spaces/{space_id}/logs/{kind}", headers=_auth(tok), timeout=timeout) as r:
            if r.status_code != 200:
                r.read()
                _fail(r)
            for line in r.iter_lines():
                if line.startswith("data: "):
                    event = json.loads(line[6:])
                    console.print(f"[dim]{event['timestamp']}[/dim] {event['data']}", highlight=False, markup=False)
    except httpx.ReadTimeout:
        pass  # without --follow: everything so far has been printed


@app.command()
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


@app.command("settings")
def settings_reference() -> None:
    """Print every setting (environment variable, default, meaning) as Markdown: docs/settings.md."""
    from .settings_doc import settings_markdown

    print(settings_markdown(), end="")


@token_app.command("create")
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
    from .auth import create_token, ensure_user
    from .db.models import Membership
    from .db.session import Database

    if role not in ("read", "write"):
        err.print("role must be read or write")
        raise typer.Exit(2)
    if org_role not in ("read", "write", "admin"):
        err.print("org-role must be read, write or admin")
        raise typer.Exit(2)
    from sqlalchemy import select

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


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def main() -> None:
    app()


if __name__ == "__main__":
    main()
