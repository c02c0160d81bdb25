"""Static Spaces: files served by the gateway itself, from the Space's checkout.

Starlette's :class:`~starlette.staticfiles.StaticFiles` does the file work (no escaping the root,
content types, ``ETag``/``Last-Modified`` with ``304``, ``Range``, ``HEAD``); this module maps the
Space's index file (``app_file``, e.g. ``index.html`` or ``dist/index.html``) onto ``/``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response
from starlette.staticfiles import StaticFiles

from .asgi import Receive, Scope, Send


class StaticSites:
    """One :class:`StaticFiles` per served directory, created on first use."""

    def __init__(self) -> None:
        self._apps: dict[str, StaticFiles] = {}

    def _app(self, root: Path) -> StaticFiles:
        key = str(root)
        app = self._apps.get(key)
        if app is None:
            if len(self._apps) > 4096:
                self._apps.clear()
            app = StaticFiles(directory=root, html=True, follow_symlink=False)
            self._apps[key] = app
        return app

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, root: Path, index: str, path: str, prefix: str
    ) -> None:
        """Serve ``path`` (relative to the Space, starting with ``/``) from ``root``.

        ``prefix`` is the public path of the Space (``/apps/OWNER/NAME`` or ``""``), used for redirects.
        """
        if path == "/" or path == "":
            path = "/" + index.lstrip("/")
        child = dict(scope)
        child["path"] = prefix + path
        child["raw_path"] = (prefix + path).encode("utf-8")
        child["root_path"] = prefix
        try:
            app = self._app(root)
            response: Response = await app.get_response(app.get_path(child), child)
        except HTTPException as exc:
            response = PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
        except (OSError, RuntimeError):  # root missing or unreadable
            response = PlainTextResponse("Not Found", status_code=404)
        await response(child, receive, send)
