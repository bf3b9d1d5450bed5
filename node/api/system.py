"""Ops about the connection itself rather than about users or rooms."""

from __future__ import annotations

from node.session import Session
from protocol import JsonObject

__all__ = ["ping"]


async def ping(session: Session, params: JsonObject) -> JsonObject:
    """``ping`` on /client and /federation (spec/wire.md §5.3): answers ``{}``.

    Lets either side check that the other is alive and still reading.
    """
    return {}
