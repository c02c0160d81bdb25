"""The one wake coalescer: however many requests arrive for a sleeping Space, its :class:`~.routes.Waker`
is called once; every request awaits the same wake, each for at most its own patience."""

from __future__ import annotations

import asyncio
import functools
import logging

from spaceyard_runtime.api import Endpoint

from .routes import RouteSpec, Waker, WakeRefused

log = logging.getLogger("spaceyard.gateway")


class Wakes:
    def __init__(self, waker: Waker | None, wake_timeout: float) -> None:
        self.waker = waker
        self.wake_timeout = wake_timeout
        self._pending: dict[str, asyncio.Future[Endpoint]] = {}

    async def endpoint(self, route: RouteSpec, patience: float | None = None) -> Endpoint:
        """The route's upstream, waking the app first when needed (raises WakeRefused, TimeoutError).

        ``patience`` shortens the wait (the wake itself goes on): a browser navigation gets the
        self-reloading "waking up" page after it instead of a blank wait."""
        upstream = route.upstream
        if upstream is not None:
            return upstream
        if self.waker is None:
            raise WakeRefused(route.reason or "This Space is not running.", 503, route.stage)
        key = route.space_id.lower()
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self.waker.wake(route.space_id))
            self._pending[key] = pending
            pending.add_done_callback(functools.partial(self._done, key))
        try:
            timeout = self.wake_timeout if patience is None else min(patience, self.wake_timeout)
            return await asyncio.wait_for(asyncio.shield(pending), timeout)
        except (WakeRefused, TimeoutError):
            raise
        except Exception as exc:  # a bug in the waker: a clear 503, not a bare 500
            log.error("waking %s failed: %r", route.space_id, exc)
            raise WakeRefused("The Space could not be started.", 503, route.stage) from exc

    def _done(self, key: str, fut: asyncio.Future[Endpoint]) -> None:
        if self._pending.get(key) is fut:
            del self._pending[key]
        if not fut.cancelled():
            fut.exception()  # retrieved: a refusal nobody waits for any more is not an error
