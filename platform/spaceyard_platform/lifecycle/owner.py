"""The owner's actions and the Space's existence: register, settings refresh, pause, restart, delete."""

from __future__ import annotations

import asyncio
import shutil

from spaceyard_runtime.api import AppHandle

from .. import names
from ..db.models import Space
from .builds import Builds
from .sleeping import SleepWake
from .stages import Stage


class OwnerActions(Builds, SleepWake):
    def register(self, space: Space) -> None:
        """A new Space exists: give it a route (stage only, nothing to serve yet)."""
        self._publish_full(space, self._state(space))

    def refresh_route(self, space: Space) -> None:
        """Apply changed settings (visibility, embedding) to the gateway at once."""
        self._publish_full(space, self._state(space))

    def current_handle(self, pk: str) -> AppHandle | None:
        state = self.states.get(pk)
        return state.handle if state else None

    async def pause(self, pk: str) -> None:
        state = self.states.get(pk)
        if state is not None:
            self._cancel_start(state, wake=True)
            async with state.lock:
                for handle in (state.handle, state.suspended):
                    if handle is not None:
                        await self.runtime.remove(handle)
                state.handle = state.suspended = None
                self._publish(state, upstream=None)
        await self._save_stage(pk, Stage.PAUSED, None, paused=True)

    async def restart(self, pk: str, factory: bool = False) -> None:
        """Restart the serving version (after a pause, or with new secrets); ``factory``: rebuild without cache."""
        space = await asyncio.to_thread(self._get_space, pk)
        await asyncio.to_thread(self._unpause, pk)
        state = self._state(space)
        head = await asyncio.to_thread(self.repos.head, space.owner, space.name)
        if factory or state.serving is None:
            if head:
                await self.request_build(pk, head, no_cache=factory)
            return
        async with state.lock:
            for handle in (state.handle, state.suspended):
                if handle is not None:
                    await self.runtime.remove(handle)
            state.handle = state.suspended = None
        state.latest_build = state.serving.build_id
        space = await asyncio.to_thread(self._get_space, pk)
        await self._deploy(space, state, state.serving)

    def _unpause(self, pk: str) -> None:
        with self.db.session() as s:
            sp = s.get(Space, pk)
            if sp is not None:
                sp.paused = False

    async def delete(self, pk: str) -> None:
        state = self.states.pop(pk)
        if state is None:
            return
        self._cancel_start(state, wake=True)
        async with state.lock:
            for handle in (state.handle, state.suspended):
                if handle is not None:
                    await self.runtime.remove(handle)
            await self.runtime.forget(state.space_id)
            state.latest_build = None
        self.routes.remove_route(state.space_id)
        # its exported commits go with it (environments are shared by content: kept for other Spaces)
        sources = self.settings.data_dir / "sources" / names.space_folder(state.space_id)
        await asyncio.to_thread(shutil.rmtree, sources, True)
