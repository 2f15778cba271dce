"""Fixtures: the reference server (target/release/tether-server) on loopback, and coroutine
tests run on a fresh event loop each (no plugin needed)."""

from __future__ import annotations

import asyncio
import inspect
import re
import subprocess
import threading
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[3]
SERVER = ROOT / "target" / "release" / "tether-server"


class RefServer:
    """One tether-server process; ``restart()`` starts a new process on the same port."""

    def __init__(self, *flags: str, port: int = 0) -> None:
        self.flags = list(flags)
        self.proc: Optional[subprocess.Popen] = None
        self.port = port
        self.endpoint = ""
        self.start()

    def start(self) -> None:
        cmd = [str(SERVER), "--listen", f"127.0.0.1:{self.port}", "--heartbeat-ms", "1000", *self.flags]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        assert m, f"unexpected tether-server output: {line!r}"
        self.endpoint = m.group(1)
        self.port = int(re.search(r":(\d+)/", self.endpoint).group(1))  # type: ignore[union-attr]
        out = self.proc.stdout
        threading.Thread(target=out.read, daemon=True).start()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def servers() -> Iterator[List[RefServer]]:
    started: List[RefServer] = []
    yield started
    for s in started:
        s.stop()


@pytest.fixture
def server(servers: List[RefServer]) -> RefServer:
    s = RefServer()
    servers.append(s)
    return s


def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Optional[bool]:
    """Run ``async def`` tests on a new event loop, with a 60 s budget."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        names = pyfuncitem._fixtureinfo.argnames  # type: ignore[attr-defined]
        kwargs = {n: pyfuncitem.funcargs[n] for n in names}
        asyncio.run(asyncio.wait_for(pyfuncitem.obj(**kwargs), 60))
        return True
    return None


