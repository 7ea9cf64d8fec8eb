"""Fixtures for the sidecar tests: short IPC paths, a trio loop in a background thread, keys.

The command-line tests call :func:`discv5._cli.main` in-process; it runs its own ``trio.run``,
so whatever it talks to (the test network, the fake relay RPC) runs in a second trio loop on
a background thread (:class:`BackgroundTrio`). Everything listens on 127.0.0.1 or a UNIX
socket path; nothing is sent anywhere else.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

from discv5._testnet import Testnet, open_testnet
from enr import PrivateKey

from .rpcserver import FakeGeth

T = TypeVar("T")

TESTNET_SIZE = 12
TESTNET_SEED = 20240611
THREAD_GUARD = 60.0
"""Seconds after which the background loop is considered hung (a guard, not a timing)."""


class BackgroundTrio:
    """A trio loop on a thread: start things in it, call into it, hold async contexts open."""

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="background-trio", daemon=True)
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._error: BaseException | None = None

    def __enter__(self) -> BackgroundTrio:
        self._thread.start()
        if not self._ready.wait(THREAD_GUARD):
            raise RuntimeError("background trio loop did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None and self._nursery is not None:
            nursery = self._nursery
            try:
                trio.from_thread.run_sync(nursery.cancel_scope.cancel, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        self._thread.join(THREAD_GUARD)
        assert not self._thread.is_alive(), "background trio loop did not stop"
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        async def main() -> None:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()
                await trio.sleep_forever()

        try:
            trio.run(main)
        except BaseException as exc:  # reported by __exit__
            self._error = exc
        finally:
            self._ready.set()

    @property
    def nursery(self) -> trio.Nursery:
        """The loop's nursery (use it only from inside the loop)."""
        assert self._nursery is not None
        return self._nursery

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await fn(*args)`` in the loop and return its result."""
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def start_soon(self, fn: Callable[[], Awaitable[object]]) -> None:
        """Start ``fn()`` as a task in the loop (it ends with the loop at the latest)."""
        trio.from_thread.run_sync(self.nursery.start_soon, fn, trio_token=self._token)

    def hold(self, cm: AbstractAsyncContextManager[T]) -> T:
        """Enter ``cm`` in the loop and keep it entered until the loop stops."""

        async def holder(task_status: trio.TaskStatus[T] = trio.TASK_STATUS_IGNORED) -> None:
            async with cm as value:
                task_status.started(value)
                await trio.sleep_forever()

        async def start() -> T:
            value: T = await self.nursery.start(holder)
            return value

        return self.run(start)


@pytest.fixture
def short_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for UNIX sockets: ``tmp_path`` when its paths fit the 107-byte limit."""
    if len(str(tmp_path / "geth.ipc")) < 100:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="sc-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def ipc_path(short_dir: Path) -> Path:
    """Where the fake relay puts its IPC socket."""
    return short_dir / "geth.ipc"


@pytest.fixture
async def geth(nursery: trio.Nursery, ipc_path: Path) -> AsyncIterator[FakeGeth]:
    """A running fake relay RPC in the test's own trio loop."""
    server = FakeGeth(ipc_path)
    await server.start(nursery)
    yield server
    if server.running:
        await server.stop()


@pytest.fixture
def background() -> Iterator[BackgroundTrio]:
    """A trio loop on a thread, stopped (and everything in it closed) after the test."""
    with BackgroundTrio() as bg:
        yield bg


@pytest.fixture
def bg_testnet(background: BackgroundTrio) -> Testnet:
    """A loopback test network of our own nodes running in the background loop."""
    return background.hold(open_testnet(TESTNET_SIZE, seed=TESTNET_SEED))


@pytest.fixture
def bg_geth(background: BackgroundTrio, ipc_path: Path) -> FakeGeth:
    """A running fake relay RPC in the background loop."""
    server = FakeGeth(ipc_path)
    background.run(server.start, background.nursery)
    return server


def sidecar_key() -> PrivateKey:
    """The fixed key the sidecar under test runs with."""
    return PrivateKey(bytes(31) + b"\x5c")
