"""ASGI type aliases (Starlette's, so a FastAPI app is an :data:`ASGIApp` as is)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]
