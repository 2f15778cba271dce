"""The Python conformance adapter: speaks the adapter protocol (conformance/ADAPTERS.md) on
stdin/stdout and drives the Python binding (the installed ``tether`` package), never the
Rust API underneath. It only translates: every decision stays in the client.

Everything runs on one asyncio loop. Events are taken from the binding's stream only
synchronously (``ready()`` waits without taking, ``try_next()`` takes), so a barrier flushes
exactly what the client reported before it, in order.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

import tether
from tether import Cause, DropPolicy, DropReason, Event, Network, PolicyOverrides, State, TetherError, TransportKind

CAPABILITIES = [
    "websocket", "sse", "long_poll", "outbox", "auth", "network", "drain",
    "ready_probe", "persistence", "retry_after", "seed",
]
POLICY_FIELDS = [
    "floor_ms", "base_ms", "cap_ms", "multiplier", "max_attempts", "max_elapsed_ms",
    "heartbeat_ms", "heartbeat_grace_ms", "open_timeout_ms", "poll_hold_ms",
    "probe_interval_ms", "upgrade_after_ms", "outbox_max_count", "outbox_max_bytes",
    "outbox_max_age_ms",
]
TRANSPORTS = {"websocket": TransportKind.WEB_SOCKET, "sse": TransportKind.SSE, "long_poll": TransportKind.LONG_POLL}
START = time.monotonic()
OUT = sys.stdout.buffer


def now_ms() -> float:
    return (time.monotonic() - START) * 1000.0


_last_stamp = 0.0


def stamp(t: float) -> float:
    """Event stamps: the client's own clock (build time + ``at_ms``) for its events, the
    adapter's for ``token_requested``. The two differ by the moment between the stamp
    taken before the client is built and its clock origin, so written stamps stay monotonic."""
    global _last_stamp
    _last_stamp = max(_last_stamp, t)
    return _last_stamp


def write(frame: Dict[str, Any]) -> None:
    body = json.dumps(frame, separators=(",", ":")).encode()
    OUT.write(struct.pack(">I", len(body)) + body)
    OUT.flush()


class Refusal(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class Setup:
    def __init__(self, cmd: Dict[str, Any]) -> None:
        try:
            self.transports = [TRANSPORTS[t] for t in cmd["transports"]]
        except (KeyError, TypeError) as e:
            raise Refusal("bad_request", f"transports: {e}") from None
        policy = cmd.get("policy") or {}
        self.policy = PolicyOverrides(
            **{f: float(v) for f, v in policy.items() if f in POLICY_FIELDS and isinstance(v, (int, float))}
        )
        self.endpoint: str = cmd["endpoint"]
        self.seed: Optional[int] = cmd.get("seed")
        self.tokens: Optional[List[Any]] = (cmd.get("auth") or {}).get("tokens")
        drop = cmd.get("drop_policy")
        if drop in (None, "drop_oldest"):
            self.drop_policy = DropPolicy.DROP_OLDEST
        elif drop == "reject_new":
            self.drop_policy = DropPolicy.REJECT_NEW
        else:
            raise Refusal("bad_request", f"drop_policy {drop}")
        self.max_frame_bytes: Optional[int] = cmd.get("max_frame_bytes")


class Session:
    def __init__(self, setup: Setup, store: str, client: tether.Client, stream: tether.EventStream, built_ms: float) -> None:
        self.setup = setup
        self.store = store
        self.client = client
        self.stream = stream
        self.built_ms = built_ms
        self.pump: Optional[asyncio.Task] = None


def state_json(s: State) -> Dict[str, Any]:
    m: Dict[str, Any] = {"name": s.stable_name()}
    if isinstance(s, State.CONNECTING):
        m["attempt"] = s.attempt
        m["transport"] = s.transport.stable_name()
    elif isinstance(s, State.CONNECTED):
        m["transport"] = s.transport.stable_name()
    elif isinstance(s, State.DEGRADED):
        m["transport"] = s.transport.stable_name()
        m["reason"] = s.reason
    elif isinstance(s, State.RECONNECTING):
        m["attempt"] = s.attempt
        m["delay_ms"] = s.delay_ms
        m["cause"] = s.cause.stable_name()
    elif isinstance(s, State.FAILED):
        m["reason"] = s.reason
    return m


def event_json(t_ms: float, e: Event) -> Dict[str, Any]:
    m: Dict[str, Any]
    if isinstance(e, Event.STATE_CHANGED):
        m = {"type": "state", "from": e._from.stable_name(), "to": e.to.stable_name(), "cause": e.cause.stable_name()}
        if isinstance(e.cause, Cause.TRANSPORT_CLOSED):
            m["cause_code"] = e.cause.code
        elif isinstance(e.cause, Cause.TERMINAL):
            m["cause_code"] = e.cause.code
        for k, v in state_json(e.to).items():
            if k not in ("name", "cause"):
                m[k] = v
    elif isinstance(e, Event.RECONNECT_SCHEDULED):
        m = {"type": "reconnect_scheduled", "attempt": e.attempt, "delay_ms": e.delay_ms, "cause": e.cause.stable_name()}
    elif isinstance(e, Event.TRANSPORT_SELECTED):
        m = {"type": "transport_selected", "transport": e.transport.stable_name()}
    elif isinstance(e, Event.MESSAGE):
        m = {"type": "message", "channel": e.channel, "seq": e.seq, "data": e.data}
    elif isinstance(e, Event.RESET):
        m = {"type": "reset", "channel": e.channel, "reason": e.reason.stable_name()}
    elif isinstance(e, Event.ACKED):
        m = {"type": "acked", "id": e.id, "seq": e.seq}
    elif isinstance(e, Event.DROPPED):
        m = {"type": "dropped", "id": e.id, "reason": e.reason.stable_name()}
        if isinstance(e.reason, DropReason.REJECTED):
            m["code"] = e.reason.code
    elif isinstance(e, Event.FALLBACK):
        m = {"type": "fallback", "from": e._from.stable_name(), "to": e.to.stable_name(), "reason": e.reason.stable_name()}
    elif isinstance(e, Event.POLICY_APPLIED):
        m = {"type": "policy_applied", "clamped": [
            {"field": c.field, "requested": c.requested, "applied": c.applied} for c in e.clamped
        ]}
    elif isinstance(e, Event.ERROR):
        m = {"type": "error", "code": e.code, "detail": e.detail}
    else:
        m = {"type": "x_python_unknown_event", "name": e.stable_name(), "repr": repr(e)}
    m["t_ms"] = t_ms
    return m


class Adapter:
    def __init__(self) -> None:
        self.session: Optional[Session] = None
        self.tmp = tempfile.mkdtemp(prefix="tether-python-adapter-")

    def drain(self, s: Optional[Session] = None) -> None:
        """Write every event the session's stream holds now (never awaits)."""
        s = s or self.session
        if s is None:
            return
        while True:
            ev = s.stream.try_next()
            if ev is None:
                return
            write(event_json(stamp(s.built_ms + ev.at_ms), ev.event))

    async def pump(self, s: Session) -> None:
        while await s.stream.ready():
            self.drain(s)

    def client(self) -> tether.Client:
        if self.session is None:
            raise Refusal("closed", "send `configure` first")
        return self.session.client

    def build(self, setup: Setup, store: str) -> Session:
        provider = None
        if setup.tokens is not None:
            script = setup.tokens
            calls = [0]

            async def provider(forced: bool) -> str:
                write({"type": "token_requested", "t_ms": stamp(now_ms()), "forced": forced})
                n = calls[0]
                calls[0] += 1
                step = script[n] if n < len(script) else (script[-1] if script else None)
                if isinstance(step, str):
                    return step
                if isinstance(step, dict):
                    raise tether.TokenError.Failed(str(step.get("error", "token error")), bool(step.get("fatal", False)))
                raise tether.TokenError.Failed("empty token script", True)

        # The client's clock starts inside the constructor: stamp before it, so t_ms never
        # runs ahead of real time and stays monotonic across restarts.
        built_ms = now_ms()
        client = tether.Client(
            setup.endpoint,
            transports=setup.transports,
            policy=setup.policy,
            store=store,
            token_provider=provider,
            seed=setup.seed,
            drop_policy=setup.drop_policy,
            max_frame_bytes=setup.max_frame_bytes,
        )
        s = Session(setup, store, client, client.events(), built_ms)
        s.pump = asyncio.ensure_future(self.pump(s))
        return s

    async def teardown(self, close: bool) -> None:
        s, self.session = self.session, None
        if s is None:
            return
        if close:
            try:
                await asyncio.wait_for(s.client.close(), 2)
            except (TetherError, asyncio.TimeoutError):
                pass
        # Release the client and let its driver end (its last events are still forwarded)
        # before its store directory goes.
        s.client.release()
        await self.wait_pump(s)
        self.drain(s)
        s.stream.close()
        shutil.rmtree(s.store, ignore_errors=True)

    @staticmethod
    async def wait_pump(s: Session) -> None:
        """Wait (at most 3 s) for a released client's stream to end."""
        if s.pump is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(s.pump), 3)
        except asyncio.TimeoutError:
            s.pump.cancel()

    async def execute(self, t: Optional[str], cmd: Dict[str, Any]) -> Dict[str, Any]:
        if t == "configure":
            await self.teardown(close=True)
            self.session = self.build(Setup(cmd), tempfile.mkdtemp(prefix="store-", dir=self.tmp))
        elif t == "connect":
            await self.client().connect()
        elif t == "subscribe":
            await self.client().subscribe(cmd["channel"])
        elif t == "unsubscribe":
            await self.client().unsubscribe(cmd["channel"])
        elif t == "publish":
            pending = await self.client().enqueue(cmd["channel"], cmd.get("data"), id=cmd.get("key"))
            return {"key": pending.id}
        elif t == "set_network":
            n = {"online": Network.ONLINE, "offline": Network.OFFLINE, "changed": Network.CHANGED}.get(cmd.get("state"))
            if n is None:
                raise Refusal("bad_request", f"network {cmd.get('state')}")
            self.client().set_network(n)
        elif t == "close":
            await self.client().close()
        elif t == "barrier":
            self.drain()
        elif t == "state":
            st = self.client().state
            self.drain()
            return {"state": state_json(st)}
        elif t == "restart":
            old = self.session
            if old is None:
                raise Refusal("closed", "not configured")
            self.session = None
            # A crash, not a close: release the client and let its driver end on its own
            # (its last events are still forwarded), then a new client on the same store.
            old.client.release()
            await self.wait_pump(old)
            self.drain(old)
            old.stream.close()
            self.session = self.build(old.setup, old.store)
        elif t == "shutdown":
            await self.teardown(close=True)
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            raise Refusal("bad_command", f"unknown command {t}")
        return {}

    async def handle(self, cmd: Dict[str, Any]) -> bool:
        cid = cmd.get("id", 0)
        t = cmd.get("type")
        try:
            result = await self.execute(t, cmd)
            self.drain()
            write({"type": "ok", "id": cid, **result})
        except TetherError as e:
            self.drain()
            write({"type": "error", "id": cid, "code": e.code, "message": str(e)})
        except Refusal as e:
            write({"type": "error", "id": cid, "code": e.code, "message": str(e)})
        except Exception as e:  # a malformed command
            write({"type": "error", "id": cid, "code": "bad_command", "message": repr(e)})
        return t != "shutdown"


def read_exact(fd: int, n: int) -> bytes:
    """``n`` bytes from ``fd`` (fewer at end of input)."""
    out = bytearray()
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            break
        out += chunk
    return bytes(out)


def read_stdin(loop: asyncio.AbstractEventLoop, q: "asyncio.Queue[Any]") -> None:
    # Raw reads on the descriptor, not ``sys.stdin.buffer``: this daemon thread is blocked in a
    # read when the process exits, and a buffered reader's lock held there makes the
    # interpreter's shutdown wait 1 s for it and then abort ("could not acquire lock for
    # <_io.BufferedReader name='<stdin>'>"), a second lost per adapter process.
    fd = sys.stdin.fileno()
    while True:
        head = read_exact(fd, 4)
        if len(head) < 4:
            break
        (n,) = struct.unpack(">I", head)
        body = read_exact(fd, n)
        if len(body) < n:
            break
        try:
            item: Any = json.loads(body)
        except ValueError as e:
            item = e
        loop.call_soon_threadsafe(q.put_nowait, item)
    loop.call_soon_threadsafe(q.put_nowait, None)


async def main() -> None:
    write({"type": "hello", "adapter": "tether-python", "version": tether.__version__,
           "protocol": 1, "capabilities": CAPABILITIES})
    q: "asyncio.Queue[Any]" = asyncio.Queue()
    threading.Thread(target=read_stdin, args=(asyncio.get_running_loop(), q), daemon=True).start()
    adapter = Adapter()
    while True:
        cmd = await q.get()
        if cmd is None:
            break
        if not isinstance(cmd, dict):
            write({"type": "error", "id": 0, "code": "bad_command", "message": str(cmd)})
            continue
        if not await adapter.handle(cmd):
            break
    await adapter.teardown(close=True)


if __name__ == "__main__":
    asyncio.run(main())
