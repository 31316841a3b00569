"""Responses the services share, and how their event streams are cut into events."""

from __future__ import annotations

import re

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

# Where one server-sent event ends (a blank line; servers write either line ending).
EVENT_END = re.compile(rb"\r?\n\r?\n")


class ClosingStreamingResponse(StreamingResponse):
    """Closes its body iterator whatever happens, so a relay's cleanup (closing the backend connection, freeing a
    model slot or a key's stream slot, recording usage) runs when the client leaves, not when the garbage
    collector gets to it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
