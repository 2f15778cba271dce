"""Tests of the Python binding (asyncio) against the reference server on loopback."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Callable, List

import pytest

import tether
from tether import Cause, DropPolicy, DropReason, Event, Network, PolicyOverrides, State, TetherError, TransportKind

from conftest import RefServer

FAST = dict(floor_ms=5.0, base_ms=50.0, cap_ms=300.0, heartbeat_grace_ms=1000.0)


def client(endpoint: str, **kw) -> tether.Client:
    kw.setdefault("policy", PolicyOverrides(**FAST))
    return tether.Client(endpoint, **kw)


class Recorder:
    """Collects a stream's events in a task; ``wait_for`` polls them."""

    def __init__(self, stream: tether.EventStream) -> None:
        self.seen: List[Event] = []
        self.stream = stream
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        async for ev in self.stream:
            self.seen.append(ev.event)

    async def wait_for(self, what: str, pred: Callable[[Event], bool], timeout: float = 10, start: int = 0) -> Event:
        async def poll() -> Event:
            while True:
                for e in self.seen[start:]:
                    if pred(e):
                        return e
                await asyncio.sleep(0.005)

        try:
            return await asyncio.wait_for(poll(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; saw {self.seen}") from None

    async def stop(self) -> None:
        self.stream.close()
        await asyncio.wait_for(self.task, 5)


async def wait_state(c: tether.Client, pred: Callable[[State], bool], timeout: float = 10) -> State:
    async def go() -> State:
        async for s in c.states():
            if pred(s):
                return s
        raise AssertionError("state watcher ended")

    return await asyncio.wait_for(go(), timeout)


async def test_conn_2_connect_reaches_connected_and_events_follow(server: RefServer) -> None:
    c = client(server.endpoint, transports=[TransportKind.WEB_SOCKET])
    assert isinstance(c.state, State.IDLE)
    rec = Recorder(c.events())
    await c.connect()
    up = await wait_state(c, lambda s: isinstance(s, State.CONNECTED))
    assert up == State.CONNECTED(transport=TransportKind.WEB_SOCKET)
    assert up.stable_name() == "connected"
    first = await rec.wait_for("first transition", lambda e: isinstance(e, Event.STATE_CHANGED))
    assert first.cause.stable_name() == "user_connect"
    hello = await rec.wait_for("hello", lambda e: isinstance(e, Event.STATE_CHANGED) and isinstance(e.to, State.CONNECTED))
    assert hello.cause == Cause.HELLO()
    await rec.stop()
    await c.close()


async def test_outbox_3_publish_resolves_with_the_ack_and_the_message_arrives_once(server: RefServer) -> None:
    async with client(server.endpoint) as c:
        rec = Recorder(c.events())
        await c.subscribe("lobby")
        await c.connect()
        ack = await c.publish("lobby", {"text": "hi", "n": 1})
        assert ack.seq is not None
        pending = await c.enqueue("lobby", {"n": 2}, id="app-key-2")
        assert pending.id == "app-key-2"
        assert (await pending).id == "app-key-2"
        assert await pending.ack() == await pending, "awaitable again"
        m = await rec.wait_for("message 2", lambda e: isinstance(e, Event.MESSAGE) and e.data == {"n": 2})
        assert m.channel == "lobby" and m.seq == ack.seq + 1
        assert [e.data for e in rec.seen if isinstance(e, Event.MESSAGE)] == [{"text": "hi", "n": 1}, {"n": 2}]
        await rec.wait_for("acked", lambda e: isinstance(e, Event.ACKED) and e.id == "app-key-2")
        await rec.stop()


def test_err_1_the_layer_names_exactly_the_engine_error_codes() -> None:
    # error_codes() comes from the engine (tether::ErrorCode::ALL) through the FFI.
    assert [c.value for c in tether.ErrorCode] == tether.error_codes()
    assert tether.ErrorCode.of("send_timeout") is tether.ErrorCode.SEND_TIMEOUT
    assert tether.ErrorCode.of("no_such_code") is None
    assert tether.ErrorCode.SEND_TIMEOUT == "send_timeout"


def test_state_2_the_generated_cause_names_exactly_the_engine_causes() -> None:
    # cause_names() comes from the engine (tether::Cause::KINDS) through the FFI; the variants
    # of the generated Cause come from tether-ffi's own list.
    kinds = {
        name: k
        for name, k in vars(Cause).items()
        if isinstance(k, type) and issubclass(k, Cause) and name != "OTHER"
    }
    assert sorted(n.lower() for n in kinds) == sorted(tether.cause_names())
    for name, k in kinds.items():
        if name not in ("TRANSPORT_CLOSED", "TERMINAL"):
            assert k().stable_name() == name.lower()
    assert Cause.READY().stable_name() == "ready"
    assert Cause.SEND_TIMEOUT().stable_name() == "send_timeout"


async def test_err_1_refused_calls_carry_their_spec_codes() -> None:
    with pytest.raises(TetherError.Invalid) as bad:
        tether.Client("ftp://example.com/x")
    assert bad.value.code == "bad_request"
    c = client("http://127.0.0.1:9/tether")
    with pytest.raises(TetherError.Refused) as e:
        await c.subscribe("not a channel!")
    assert e.value.code == "invalid_channel"
    assert tether.ErrorCode.of(e.value.code) is tether.ErrorCode.INVALID_CHANNEL
    with pytest.raises(TetherError.Refused) as e:
        await c.enqueue("c", "x" * (2 * 1024 * 1024))
    assert e.value.code == "message_too_large"
    assert e.value.code in tether.error_codes()
    c.release()


async def test_auth_2_an_expired_token_is_fetched_again_with_forced(servers: List[RefServer]) -> None:
    s = RefServer("--token", "good-token")
    servers.append(s)
    asked: List[bool] = []

    async def tokens(forced: bool) -> str:
        asked.append(forced)
        await asyncio.sleep(0.001)  # a real await inside the provider
        return "good-token" if forced else "stale-token"

    c = client(s.endpoint, token_provider=tokens)
    await c.connect()
    await wait_state(c, lambda st: isinstance(st, State.CONNECTED))
    assert asked[:2] == [False, True], "stale, then a forced fetch"
    await c.close()


async def test_auth_1_a_fatal_provider_error_fails_the_client(servers: List[RefServer]) -> None:
    s = RefServer("--token", "good-token")
    servers.append(s)

    async def tokens(forced: bool) -> str:
        raise tether.TokenError.Failed("account locked", True)

    c = client(s.endpoint, token_provider=tokens)
    await c.connect()
    failed = await wait_state(c, lambda st: isinstance(st, State.FAILED))
    assert failed == State.FAILED(reason="auth_failed")


async def test_outbox_6_full_outbox_rejects_or_drops_with_codes() -> None:
    small = PolicyOverrides(**FAST, outbox_max_count=1.0)
    reject = client("http://127.0.0.1:9/tether", policy=small, drop_policy=DropPolicy.REJECT_NEW)
    await reject.enqueue("c", 1)
    with pytest.raises(TetherError.Refused) as e:
        await reject.enqueue("c", 2)
    assert e.value.code == "outbox_full"
    oldest = client("http://127.0.0.1:9/tether", policy=small)
    first = await oldest.enqueue("c", 1)
    await oldest.enqueue("c", 2)
    with pytest.raises(TetherError.Dropped) as d:
        await first
    assert d.value.code == "outbox_full"
    assert d.value.reason == DropReason.OVERFLOW()
    assert d.value.id == first.id


async def test_outbox_8_a_file_store_keeps_publishes_for_the_next_client(servers: List[RefServer]) -> None:
    store = tempfile.mkdtemp(prefix="tether-python-test-")
    s = RefServer()
    port = s.port
    s.stop()
    a = client(f"http://127.0.0.1:{port}/tether", store=store)
    pending = await a.enqueue("c", {"kept": True})
    await a.connect()
    await a.close()
    tail = a.events()
    a.release()  # its driver ends; wait for that before another client opens the store
    async for _ in tail:
        pass
    again = RefServer(port=port)
    servers.append(again)
    b = client(again.endpoint, store=store)
    rec = Recorder(b.events())
    await b.connect()
    acked = await rec.wait_for("the stored publish is sent and acked", lambda e: isinstance(e, Event.ACKED))
    assert acked.id == pending.id
    await rec.stop()
    await b.close()


async def test_resume_5_a_server_restart_reconnects_and_reports_the_reset(servers: List[RefServer]) -> None:
    s = RefServer("--tick", "t:20")
    servers.append(s)
    c = client(s.endpoint, transports=[TransportKind.WEB_SOCKET])
    rec = Recorder(c.events())
    await c.subscribe("t")
    await c.connect()
    await rec.wait_for("ticks", lambda e: isinstance(e, Event.MESSAGE))
    s.stop()
    await wait_state(c, lambda st: isinstance(st, State.RECONNECTING))
    s.start()  # same port, new process: a new epoch, so the channel is reset
    await rec.wait_for("reset", lambda e: isinstance(e, Event.RESET) and e.channel == "t", timeout=15)
    await wait_state(c, lambda st: isinstance(st, State.CONNECTED), timeout=15)
    await rec.wait_for("ticks after the restart", lambda e: isinstance(e, Event.MESSAGE), start=len(rec.seen))
    await rec.stop()
    await c.close()


async def test_net_1_offline_waits_without_a_delay_and_online_reconnects(server: RefServer) -> None:
    c = client(server.endpoint)
    await c.connect()
    await wait_state(c, lambda s: isinstance(s, State.CONNECTED))
    c.set_network(Network.OFFLINE)
    waiting = await wait_state(c, lambda s: isinstance(s, State.RECONNECTING))
    assert waiting.delay_ms is None
    assert waiting.cause == Cause.NETWORK_OFFLINE()
    c.set_network(Network.ONLINE)
    await wait_state(c, lambda s: isinstance(s, State.CONNECTED))
    await c.close()


async def test_conn_3_close_ends_in_closed_and_streams_stop(server: RefServer) -> None:
    c = client(server.endpoint)
    stream = c.events()
    await c.connect()
    await wait_state(c, lambda s: isinstance(s, State.CONNECTED))
    await c.close()
    assert isinstance(await wait_state(c, lambda s: isinstance(s, State.CLOSED)), State.CLOSED)
    names = []
    async for ev in stream:
        if isinstance(ev.event, Event.STATE_CHANGED):
            names.append(ev.event.to.stable_name())
            if names[-1] == "closed":
                break
    assert names[-1] == "closed" and "connected" in names
    # close() ends a pending iteration.
    other = c.events()
    task = asyncio.ensure_future(other.__anext__())
    await asyncio.sleep(0.05)
    other.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(task, 5)
    assert other.closed
    # Releasing the client ends every stream.
    tail = c.events()
    c.release()
    async def drain() -> int:
        return len([e async for e in tail])
    await asyncio.wait_for(drain(), 5)
    with pytest.raises(TetherError.Closed):
        await c.connect()
