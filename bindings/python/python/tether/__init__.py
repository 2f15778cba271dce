"""Tether: a real-time client with a written reconnection contract (SPEC.md), for asyncio.

    import tether

    async with tether.Client("https://rt.example.com/tether") as client:
        events = client.events()
        await client.subscribe("lobby")
        await client.connect()
        await client.publish("lobby", {"text": "hi"})
        async for ev in events:
            if isinstance(ev.event, tether.Event.MESSAGE):
                print(ev.event.channel, ev.event.data)

Error codes are the SPEC's stable strings (``ErrorCode``, a ``str`` enum); a state change's
``cause.stable_name()`` is one of ``cause_names()`` (``ready``, ``send_timeout``, ...).

The engine, transports and outbox are the Rust ``tether`` client, reached through UniFFI
(``tether._ffi``); this package only adapts them to asyncio.
"""

from ._client import Client, EventStream, PendingPublish, TokenFetcher
from ._codes import ErrorCode
from ._ffi import (
    Ack,
    Cause,
    ClientEvent,
    DropPolicy,
    DropReason,
    Event,
    FallbackReason,
    Network,
    PolicyClamp,
    PolicyOverrides,
    ResetReason,
    State,
    TetherError,
    TokenError,
    TransportKind,
    cause_names,
    error_codes,
    version,
)

__version__: str = version()

__all__ = [
    "Ack",
    "Cause",
    "Client",
    "ClientEvent",
    "DropPolicy",
    "DropReason",
    "ErrorCode",
    "Event",
    "EventStream",
    "FallbackReason",
    "Network",
    "PendingPublish",
    "PolicyClamp",
    "PolicyOverrides",
    "ResetReason",
    "State",
    "TetherError",
    "TokenError",
    "TokenFetcher",
    "TransportKind",
    "cause_names",
    "error_codes",
    "version",
]
