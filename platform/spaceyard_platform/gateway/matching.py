"""Which Space a request is for: by subdomain (``OWNER-NAME.<apps domain>``, the port may be left out) or
by path (``/apps/OWNER/NAME/...``). Two dict lookups in the route table (and a bounded memo of parsed
``Host`` values); nothing else is read."""

from __future__ import annotations

from .asgi import Scope
from .routes import RouteSpec, RouteTable, subdomain_for

MAX_HOSTS = 4096
"""Host values whose parse is remembered (the memo is emptied when full)."""


class Match:
    __slots__ = ("host", "label", "path", "prefix", "raw_path", "route")

    def __init__(
        self, route: RouteSpec | None, host: str, prefix: str, path: str, raw_path: bytes, label: str = ""
    ) -> None:
        self.route = route
        self.host = host
        self.prefix = prefix
        """``/apps/OWNER/NAME`` on the path form, ``""`` on the app's own origin."""
        self.path = path
        self.raw_path = raw_path
        self.label = label
        """The subdomain label (``owner-name``) of the subdomain form."""


class Matcher:
    """``matcher(scope)`` -> the :class:`Match` of a request for a Space, or ``None`` (the platform's)."""

    def __init__(self, routes: RouteTable, apps_domain: str) -> None:
        self.routes = routes
        domain = apps_domain.lower().strip(".")
        self._suffix = ("." + domain).encode("latin-1")
        bare = domain.rsplit(":", 1)[0] if ":" in domain and not domain.endswith("]") else domain
        self._suffix_bare = ("." + bare).encode("latin-1")
        self._hosts: dict[bytes, tuple[str, str]] = {}
        """``Host`` value -> (as text, its subdomain label or ``""``): the parse of a host seen before."""

    def _host(self, host: bytes) -> tuple[str, str]:
        lower = host.lower()
        label = b""
        if lower.endswith(self._suffix):
            label = lower[: -len(self._suffix)]
        else:
            bare = lower.rsplit(b":", 1)[0] if b":" in lower and not lower.endswith(b"]") else lower
            if bare.endswith(self._suffix_bare):
                label = bare[: -len(self._suffix_bare)]
        known = (host.decode("latin-1"), label.decode("latin-1") if label and b"." not in label else "")
        if len(self._hosts) >= MAX_HOSTS:  # any visitor can send any Host: the memo stays bounded
            self._hosts.clear()
        self._hosts[host] = known
        return known

    def __call__(self, scope: Scope) -> Match | None:
        host = b""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
                break
        if host:
            known = self._hosts.get(host)
            if known is None:
                known = self._host(host)
            text, label = known
            if label:
                route = self.routes.by_subdomain(label)
                return Match(route, text, "", scope["path"], scope.get("raw_path") or b"", label)
        path: str = scope["path"]
        if path.startswith("/apps/"):
            text = host.decode("latin-1")
            parts = path.split("/", 4)
            if len(parts) < 4 or not parts[2] or not parts[3]:
                return None
            owner, name = parts[2], parts[3]
            route = self.routes.by_id(f"{owner}/{name}")
            prefix = f"/apps/{owner}/{name}"
            raw = scope.get("raw_path")
            if raw:
                raw_parts = raw.split(b"?", 1)[0].split(b"/", 4)
                raw_rest = b"/" + raw_parts[4] if len(raw_parts) == 5 else b""
            else:
                raw_rest = b""
            rest = "/" + parts[4] if len(parts) == 5 else ""
            own = route.subdomain if route is not None else subdomain_for(f"{owner}/{name}")
            return Match(route, text, prefix, rest, raw_rest, own)
        return None
