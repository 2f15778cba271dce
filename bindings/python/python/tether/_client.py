"""The asyncio client: a thin layer over the generated UniFFI module (``tether._ffi``).

It adapts names and types only (Python values in and out, ``async for`` over events); every
decision is the Rust engine's (SPEC.md).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, AsyncIterator, Awaitable, Callable, Generator, Optional, Sequence, Union, cast

from . import _ffi
from ._ffi.tether_ffi import uniffi_set_event_loop

TokenFetcher = Callable[[bool], Awaitable[str]]
"""``async def provider(forced: bool) -> str``; raise :class:`TokenError` to fail."""


_bound_loop: Optional[asyncio.AbstractEventLoop] = None


def _bind_loop() -> None:
    """Point the generated module at the running loop before each call into it.

    UniFFI keeps one process-wide loop override, needed for the token provider (its
    coroutines are started from the client's own threads) and then used by every async call.
    Binding it to the caller's loop on each call keeps both right, also when an app (or a test
    suite) runs successive loops."""
    global _bound_loop
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if loop is not _bound_loop:
        uniffi_set_event_loop(loop)  # type: ignore[arg-type]
        _bound_loop = loop


class _Tokens(_ffi.TokenProvider):
    def __init__(self, fetch: TokenFetcher) -> None:
        self._fetch = fetch

    async def token(self, forced: bool) -> str:
        return await self._fetch(forced)


class PendingPublish:
    """A queued publish, durable in the store already (OUTBOX-2). ``await`` it for the
    :class:`Ack`; it raises ``TetherError.Dropped`` when the outbox drops it."""

    def __init__(self, ffi: _ffi.PendingPublish) -> None:
        self._ffi = ffi

    @property
    def id(self) -> str:
        """The idempotency key (OUTBOX-1)."""
        return self._ffi.id()

    async def ack(self) -> _ffi.Ack:
        """The server's ack; may be awaited any number of times."""
        _bind_loop()
        return await self._ffi.ack()

    def __await__(self) -> Generator[Any, None, _ffi.Ack]:
        return self.ack().__await__()

    def __repr__(self) -> str:
        return f"PendingPublish(id={self.id!r})"


class EventStream:
    """The client's events from the moment :meth:`Client.events` was called, in order:
    ``async for event in stream``. One consumer per stream; :meth:`close` (or leaving
    ``async with``) stops it, and it ends when the client is released."""

    def __init__(self, sub: _ffi.EventSubscription) -> None:
        self._sub = sub

    def __aiter__(self) -> "EventStream":
        return self

    async def __anext__(self) -> _ffi.ClientEvent:
        _bind_loop()
        event = await self._sub.next()
        if event is None:
            raise StopAsyncIteration
        return event

    async def ready(self) -> bool:
        """Wait until :meth:`try_next` has an event (True) or the stream ended (False)."""
        _bind_loop()
        return await self._sub.ready()

    def try_next(self) -> Optional[_ffi.ClientEvent]:
        """An event already reported, if any; never waits."""
        return self._sub.try_next()

    def close(self) -> None:
        """Stop the stream: a pending ``__anext__`` ends the iteration."""
        self._sub.close()

    @property
    def closed(self) -> bool:
        return self._sub.is_closed()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "EventStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Client:
    """A Tether client. Build it inside your event loop::

        client = tether.Client("https://rt.example.com/tether", store="/var/lib/app/tether")
        events = client.events()             # subscribe first: nothing is missed
        await client.subscribe("lobby")
        await client.connect()
        ack = await client.publish("lobby", {"text": "hi"})
        async for ev in events:
            ...

    Payloads are any JSON-serialisable value; messages arrive parsed.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        transports: Optional[Sequence[_ffi.TransportKind]] = None,
        policy: Optional[_ffi.PolicyOverrides] = None,
        store: Union[None, str, "os.PathLike[str]"] = None,
        token_provider: Optional[TokenFetcher] = None,
        seed: Optional[int] = None,
        drop_policy: Optional[_ffi.DropPolicy] = None,
        max_frame_bytes: Optional[int] = None,
    ) -> None:
        """``store``: a directory for the crash-safe file store, or None for memory.
        ``policy``: the app's overrides (BACKOFF-9), e.g. ``PolicyOverrides(base_ms=500)``.
        Raises ``TetherError.Invalid`` (``bad_request``) or ``TetherError.Store``."""
        b = _ffi.ClientBuilder(endpoint)
        if transports is not None:
            b = b.transports(list(transports))
        if policy is not None:
            b = b.policy(policy)
        if store is not None:
            # Variants subclass their enum at run time (UniFFI patches them in), not statically.
            b = b.store(cast(_ffi.StoreConfig, _ffi.StoreConfig.FILE(os.fspath(store))))
        if token_provider is not None:
            _bind_loop()
            b = b.token_provider(_Tokens(token_provider))
        if seed is not None:
            b = b.seed(seed)
        if drop_policy is not None:
            b = b.drop_policy(drop_policy)
        if max_frame_bytes is not None:
            b = b.max_frame_bytes(max_frame_bytes)
        self._ffi: Optional[_ffi.Client] = b.build()

    @property
    def _client(self) -> _ffi.Client:
        if self._ffi is None:
            raise cast(Any, _ffi.TetherError).Closed("closed", "the client was released")
        return self._ffi

    async def connect(self) -> None:
        """Start connecting (CONN-1)."""
        _bind_loop()
        await self._client.connect()

    async def close(self) -> None:
        """Close for good (CONN-3): the state ends in ``Closed``; queued publishes stay in
        the store."""
        _bind_loop()
        await self._client.close()

    async def subscribe(self, channel: str) -> None:
        """Subscribe to ``channel`` (WIRE-8 names); raises ``invalid_channel``."""
        _bind_loop()
        await self._client.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        _bind_loop()
        await self._client.unsubscribe(channel)

    async def publish(self, channel: str, data: Any) -> _ffi.Ack:
        """Publish ``data`` and wait for the ack; raises ``TetherError.Dropped``."""
        _bind_loop()
        return await self._client.publish(channel, data)

    async def enqueue(self, channel: str, data: Any, *, id: Optional[str] = None) -> PendingPublish:
        """Queue a publish and return once it is in the store (OUTBOX-2), with the app's own
        idempotency key ``id`` or a generated one (OUTBOX-1)."""
        _bind_loop()
        return PendingPublish(await self._client.enqueue(channel, data, id))

    def set_network(self, network: _ffi.Network) -> None:
        """Tell the client about connectivity (NET-1..3)."""
        self._client.set_network(network)

    @property
    def state(self) -> _ffi.State:
        """The current state (STATE-1)."""
        return self._client.state()

    def events(self) -> EventStream:
        """A new, independent stream of events from now on."""
        return EventStream(self._client.events())

    async def states(self) -> AsyncIterator[_ffi.State]:
        """The current state, then each new one (conflated: a slow reader sees the latest)."""
        watcher = self._client.state_watcher()
        yield watcher.current()
        while True:
            _bind_loop()
            state = await watcher.changed()
            if state is None:
                return
            yield state

    def release(self) -> None:
        """Release the native client: its driver ends (closing the connection like a process
        exit). Call :meth:`close` first for a clean close."""
        self._ffi = None

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ffi is not None:
            await self.close()
            self.release()
