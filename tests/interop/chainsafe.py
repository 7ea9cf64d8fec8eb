"""Drive ChainSafe's TypeScript discv5 (``@chainsafe/discv5`` 11.0.0) from trio-based tests.

The JavaScript side is ``js/harness.mjs``: one Node.js process that runs any number of
ChainSafe discv5 nodes, every one bound to ``127.0.0.1`` only, and answers newline-delimited
JSON commands on stdin/stdout. This module installs its npm packages (from the committed
lockfile), starts it, and wraps each command in a typed ``async`` method.

Typical use, inside a trio test (``trio_mode = true``)::

    async with open_chainsafe_harness() as cs:
        a, b = await cs.start(count=2, with_onion3=[1])
        pong = await cs.ping(a, b.enr)
        records = await cs.find_node(a, b.enr, [0])   # -> [b.enr]

or, in ``tests/interop``, through the ``chainsafe`` fixture of ``conftest.py``.

The methods are coroutines so that a discv5-py node running in the *same* trio event loop keeps
serving packets while the harness talks to it (a blocking call would deadlock such a test).
Several requests may be in flight at once; replies are matched by id.

Nodes are named by their harness index (``int``) or by the :class:`ChainSafeNode` that
:meth:`ChainSafeHarness.start` returned. Records go in as ``enr:`` text or as :class:`enr.ENR`
and come back as ``enr:`` text (parse them with ``ENR.from_text``). The harness refuses records
whose ``ip``/``udp`` is not ``127.0.0.1:<port>`` and drops any packet addressed elsewhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import math
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import trio

from enr import ENR

__all__ = [
    "JS_DIR",
    "ChainSafeHarness",
    "ChainSafeNode",
    "HarnessDied",
    "HarnessError",
    "NpmInstallError",
    "Pong",
    "TalkRequest",
    "ensure_npm_packages",
    "node_executable",
    "open_chainsafe_harness",
]

JS_DIR: Final = Path(__file__).resolve().parent / "js"
"""Folder of ``package.json``, ``package-lock.json``, ``harness.mjs`` and ``bfs_crawl.mjs``."""

_STAMP_NAME: Final = ".discv5-py-install-stamp"
_LOCK_NAME: Final = ".npm-install.lock"
_NPM_TIMEOUT_S: Final = 600.0
_installed_js_dir: Path | None = None


class HarnessError(Exception):
    """The harness answered a request with an error (the harness itself keeps running)."""


class HarnessDied(HarnessError):
    """The harness process exited, or did not start, while a request was outstanding."""


class NpmInstallError(RuntimeError):
    """``npm ci`` failed: the interop tests must fail (not skip) on this."""


@dataclass(frozen=True, slots=True)
class ChainSafeNode:
    """One ChainSafe discv5 node running in the harness, as it was when started."""

    index: int
    """Harness-wide index; pass it (or this object) to the other methods."""
    enr: str
    """The node's signed record, ``enr:...`` (ip=127.0.0.1, udp; tcp and onion3 if onion)."""
    node_id: bytes
    """32-byte node id (keccak256 of the uncompressed secp256k1 public key)."""
    ip: str
    """Always ``127.0.0.1``."""
    udp_port: int
    tcp_port: int | None
    """Set only on onion nodes: the ``tcp`` entry next to ``onion3``."""
    onion3: str | None
    """``<56 lower-case base32 chars>.onion`` for onion nodes, stored in the ENR as ASCII bytes."""
    seq: int
    """The record's sequence number (2 or 3 on ephemeral ports: the port is set after binding)."""

    @property
    def record(self) -> ENR:
        """The record parsed (and signature-checked) by discv5-py's own ``enr`` package."""
        return ENR.from_text(self.enr)


@dataclass(frozen=True, slots=True)
class Pong:
    """A PONG as ChainSafe's ``sendPing`` reports it."""

    enr_seq: int
    """The pinged node's record sequence number."""
    ip: str
    """The address the pinged node saw the PING coming from (dotted IPv4, or hex for IPv6)."""
    port: int


@dataclass(frozen=True, slots=True)
class TalkRequest:
    """A TALKREQ that a harness node received."""

    from_node_id: bytes
    protocol: bytes
    payload: bytes


# ------------------------------------------------------------------------------------ install


def node_executable() -> str | None:
    """Path of ``node`` on PATH, or None (the only condition under which the tests skip)."""
    return shutil.which("node")


def _lockfile_digest(js_dir: Path) -> str:
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        h.update((js_dir / name).read_bytes())
    return h.hexdigest()


def ensure_npm_packages(js_dir: Path = JS_DIR) -> Path:
    """Install the harness's npm packages with ``npm ci`` unless they already match the lockfile.

    Runs at most once per process; an exclusive ``flock`` on ``js/.npm-install.lock`` makes
    parallel pytest-xdist workers wait for the first one instead of racing (``npm ci`` deletes
    ``node_modules`` first). A stamp file holding the hash of ``package.json`` and
    ``package-lock.json`` records a finished install.

    Returns:
        ``js_dir``.

    Raises:
        NpmInstallError: ``npm`` is missing or ``npm ci`` failed or timed out.
    """
    global _installed_js_dir
    if _installed_js_dir == js_dir:
        return js_dir
    stamp = js_dir / "node_modules" / _STAMP_NAME
    digest = _lockfile_digest(js_dir)
    with open(js_dir / _LOCK_NAME, "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if not (stamp.is_file() and stamp.read_text().strip() == digest):
                npm = shutil.which("npm")
                if npm is None:
                    raise NpmInstallError("`node` is on PATH but `npm` is not: cannot install")
                cmd = [npm, "ci", "--no-audit", "--no-fund"]
                try:
                    done = subprocess.run(
                        cmd,
                        cwd=js_dir,
                        stdin=subprocess.DEVNULL,
                        capture_output=True,
                        text=True,
                        timeout=_NPM_TIMEOUT_S,
                        check=False,
                    )
                except subprocess.TimeoutExpired as e:
                    raise NpmInstallError(f"`npm ci` timed out after {_NPM_TIMEOUT_S:.0f} s") from e
                if done.returncode != 0:
                    raise NpmInstallError(
                        f"`{' '.join(cmd)}` in {js_dir} exited {done.returncode}:\n"
                        f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
                    )
                stamp.write_text(digest + "\n")
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    _installed_js_dir = js_dir
    return js_dir


# ------------------------------------------------------------------------------------ harness


class _Pending:
    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.reply: dict[str, Any] | None = None


def _ref(node: int | ChainSafeNode) -> int:
    return node.index if isinstance(node, ChainSafeNode) else node


def _text(record: str | ENR) -> str:
    return record if isinstance(record, str) else record.to_text()


def _node_from_json(d: dict[str, Any]) -> ChainSafeNode:
    return ChainSafeNode(
        index=int(d["index"]),
        enr=str(d["enr"]),
        node_id=bytes.fromhex(d["node_id"]),
        ip=str(d["ip"]),
        udp_port=int(d["udp_port"]),
        tcp_port=None if d["tcp_port"] is None else int(d["tcp_port"]),
        onion3=d["onion3"],
        seq=int(d["seq"]),
    )


class ChainSafeHarness:
    """A running ``harness.mjs`` process; get one from :func:`open_chainsafe_harness`.

    Every method sends one command and waits for its reply (at most ``request_timeout``
    seconds unless the method takes a ``time_limit``). Errors reported by the harness raise
    :class:`HarnessError`; a dead harness raises :class:`HarnessDied`; a timeout raises
    :class:`trio.TooSlowError`.
    """

    def __init__(self, process: trio.Process, request_timeout: float) -> None:
        self._process = process
        self._request_timeout = request_timeout
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._send_lock = trio.Lock()
        self._dead: str | None = None
        self._ready = trio.Event()
        self.nodes: list[ChainSafeNode] = []
        """Every node started so far, by index."""

    # -- plumbing

    async def _read_replies(self) -> None:
        assert self._process.stdout is not None
        buffer = b""
        try:
            async for chunk in self._process.stdout:
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._dispatch(line)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        self._mark_dead("harness closed its stdout (exited?)")

    def _dispatch(self, line: bytes) -> None:
        try:
            msg = json.loads(line)
        except ValueError:
            return  # not ours; the harness only logs to stderr, but be lenient
        if not isinstance(msg, dict):
            return
        if msg.get("ready") is True:
            self._ready.set()
            return
        rid = msg.get("id")
        pending = self._pending.pop(rid, None) if isinstance(rid, int) else None
        if pending is not None:
            pending.reply = msg
            pending.event.set()

    def _mark_dead(self, why: str) -> None:
        if self._dead is None:
            self._dead = why
        self._ready.set()
        for pending in self._pending.values():
            pending.event.set()
        self._pending.clear()

    async def _wait_ready(self, time_limit: float) -> None:
        with trio.fail_after(time_limit):
            await self._ready.wait()
        if self._dead is not None:
            raise HarnessDied(f"harness did not start: {self._dead}")

    async def request(self, cmd: str, *, time_limit: float | None = None, **args: Any) -> Any:
        """Send one raw command (see ``harness.mjs``) and return its ``result`` object.

        ``time_limit`` (seconds) defaults to the harness's ``request_timeout``.
        """
        if self._dead is not None:
            raise HarnessDied(self._dead)
        rid = next(self._ids)
        pending = _Pending()
        self._pending[rid] = pending
        line = json.dumps({"id": rid, "cmd": cmd, **args}).encode() + b"\n"
        try:
            assert self._process.stdin is not None
            async with self._send_lock:
                await self._process.stdin.send_all(line)
            with trio.fail_after(self._request_timeout if time_limit is None else time_limit):
                await pending.event.wait()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            raise HarnessDied(f"cannot write to the harness: {e}") from e
        finally:
            self._pending.pop(rid, None)
        reply = pending.reply
        if reply is None:
            raise HarnessDied(self._dead or "harness gave no reply")
        if "error" in reply:
            raise HarnessError(f"{cmd}: {reply['error']}")
        return reply["result"]

    # -- commands

    async def start(
        self,
        count: int = 1,
        *,
        base_port: int | None = None,
        with_onion3: Sequence[int] | float | bool = (),
        tcp_port: int | Sequence[int] | None = None,
        bootnodes: Sequence[str | ENR] = (),
        private_keys: Sequence[bytes] | None = None,
        config: dict[str, Any] | None = None,
        time_limit: float | None = None,
    ) -> list[ChainSafeNode]:
        """Start ``count`` new ChainSafe nodes on 127.0.0.1 and return them (indexes continue).

        Args:
            base_port: bind ports ``base_port .. base_port+count-1``; default: ephemeral ports.
            with_onion3: which of the new nodes get ``tcp`` and ``onion3`` entries: positions
                within this batch, a fraction in [0, 1] (evenly spread), or True for all. Each
                gets a fresh ed25519 key's valid Tor v3 address, set before the node starts.
            tcp_port: the ``tcp`` port of onion nodes (one for all, or one per new node);
                default: the node's own UDP port number.
            bootnodes: records added to every new node's table before it is used.
            private_keys: 32-byte secp256k1 keys, one per new node; default: random.
            config: ChainSafe ``IDiscv5Config`` overrides (e.g. ``{"requestTimeout": 500}``);
                the harness sets ``enrUpdate: false`` so records never change under a test.
        """
        args: dict[str, Any] = {"count": count, "bootnodes": [_text(b) for b in bootnodes]}
        if base_port is not None:
            args["base_port"] = base_port
        if isinstance(with_onion3, bool | float | int):
            args["with_onion3"] = with_onion3
        else:
            args["with_onion3"] = list(with_onion3)
        if tcp_port is not None:
            args["tcp_port"] = tcp_port if isinstance(tcp_port, int) else list(tcp_port)
        if private_keys is not None:
            args["private_keys"] = [k.hex() for k in private_keys]
        if config:
            args["config"] = config
        if time_limit is None:
            time_limit = max(self._request_timeout, 30.0 + 0.1 * count)
        result = await self.request("start", time_limit=time_limit, **args)
        started = [_node_from_json(d) for d in result["nodes"]]
        for node in started:
            while len(self.nodes) <= node.index:
                self.nodes.append(node)
            self.nodes[node.index] = node
        return started

    async def enr(self, node: int | ChainSafeNode) -> str:
        """The node's current record."""
        result = await self.request("enr", node=_ref(node))
        return str(result["enr"])

    async def add_enr(self, node: int | ChainSafeNode, record: str | ENR) -> bool:
        """Put ``record`` into the node's table (ChainSafe ``addEnr``, as "disconnected").

        Returns whether the record is in the table afterwards (False e.g. if its bucket is full).
        """
        result = await self.request("add_enr", node=_ref(node), enr=_text(record))
        return bool(result["in_table"])

    async def ping(self, node: int | ChainSafeNode, record: str | ENR) -> Pong:
        """PING the node of ``record`` from ``node`` (a handshake first if there is no session)."""
        result = await self.request("ping", node=_ref(node), enr=_text(record))
        return Pong(enr_seq=int(result["enr_seq"]), ip=str(result["ip"]), port=int(result["port"]))

    async def find_node(
        self, node: int | ChainSafeNode, record: str | ENR, distances: Sequence[int]
    ) -> list[str]:
        """Send one FINDNODE for ``distances`` and return the records of all NODES replies.

        ChainSafe keeps only records at one of the requested distances from the responder
        (distance 0 is the responder's own record) and reads at most 5 NODES packets.
        """
        result = await self.request(
            "find_node", node=_ref(node), enr=_text(record), distances=list(distances)
        )
        return [str(e) for e in result["enrs"]]

    async def lookup(
        self,
        node: int | ChainSafeNode,
        target: bytes,
        *,
        limit: int = 16,
        time_limit: float | None = None,
    ) -> list[str]:
        """Run ChainSafe's iterative lookup (``findNode``) for the 32-byte ``target`` id.

        Returns the ``limit`` closest records among the peers that answered, closest to
        ``target`` first (the harness sorts: ChainSafe's own order is reverse discovery order);
        never the node's own record. ChainSafe's lookup queries *every* peer it learns of (its
        early exit never fires), so in a big network a lookup is close to a crawl. From an
        empty table the harness answers ``[]`` at once (ChainSafe would wait ``lookupTimeout``).
        """
        if len(target) != 32:
            raise ValueError("target must be a 32-byte node id")
        result = await self.request(
            "lookup",
            node=_ref(node),
            target_node_id=target.hex(),
            limit=limit,
            time_limit=time_limit,
        )
        return [str(e) for e in result["enrs"]]

    async def talk(
        self, node: int | ChainSafeNode, record: str | ENR, protocol: bytes, payload: bytes
    ) -> bytes:
        """Send TALKREQ(``protocol``, ``payload``) and return the TALKRESP payload."""
        result = await self.request(
            "talk",
            node=_ref(node),
            enr=_text(record),
            protocol_hex=protocol.hex(),
            payload=payload.hex(),
        )
        return bytes.fromhex(result["response"])

    async def register_talk(
        self,
        node: int | ChainSafeNode | Sequence[int | ChainSafeNode] | None,
        protocol: bytes,
        response: bytes | None,
    ) -> None:
        """Make ``node`` (a list of nodes, or every running node for None) answer ``protocol``.

        Every TALKREQ for ``protocol`` then gets ``response``. ``response=None`` makes those
        nodes stay silent for it, which is what bare ChainSafe does for *every* TALKREQ. Without
        a registration the harness answers an empty TALKRESP, as discv5.1 prescribes for an
        unknown protocol.
        """
        args: dict[str, Any] = {
            "protocol_hex": protocol.hex(),
            "response": None if response is None else response.hex(),
        }
        if node is None:
            args["nodes"] = "all"
        elif isinstance(node, int | ChainSafeNode):
            args["node"] = _ref(node)
        else:
            args["nodes"] = [_ref(n) for n in node]
        await self.request("register_talk", **args)

    async def talk_requests(self, node: int | ChainSafeNode) -> list[TalkRequest]:
        """The TALKREQs ``node`` has received so far (the last 1000), oldest first."""
        result = await self.request("talk_requests", node=_ref(node))
        return [
            TalkRequest(
                from_node_id=bytes.fromhex(r["from_node_id"]),
                protocol=bytes.fromhex(r["protocol"]),
                payload=bytes.fromhex(r["payload"]),
            )
            for r in result["requests"]
        ]

    async def known_enrs(self, node: int | ChainSafeNode) -> list[str]:
        """Every record in the node's routing table (connected or not)."""
        result = await self.request("known_enrs", node=_ref(node))
        return [str(e) for e in result["enrs"]]

    async def seed_tables(
        self,
        nodes: Sequence[int | ChainSafeNode] | None = None,
        *,
        sources: Sequence[int | ChainSafeNode] | None = None,
    ) -> list[int]:
        """Add the records of ``sources`` (default: all nodes) to the tables of ``nodes`` (all).

        Uses ChainSafe's ``addEnr`` ("disconnected" entries), so no packet is sent and the
        result is deterministic: each bucket keeps the first 16 records offered. This is the
        fast way to build a big, fully discoverable ChainSafe network. Returns table sizes.
        """
        args: dict[str, Any] = {}
        if nodes is not None:
            args["nodes"] = [_ref(n) for n in nodes]
        if sources is not None:
            args["from"] = [_ref(n) for n in sources]
        result = await self.request("seed_tables", **args)
        return [int(n) for n in result["table_sizes"]]

    async def bootstrap(
        self,
        nodes: Sequence[int | ChainSafeNode] | None = None,
        *,
        concurrency: int = 1,
        time_limit: float | None = None,
    ) -> list[int]:
        """Run a lookup for its own id on each of ``nodes`` (default: all) to fill their tables.

        Sequential by default: two ChainSafe nodes that make first contact with each other at
        the same moment both end up with a broken session (crossed handshakes), and their
        requests time out; concurrent bootstraps therefore run into 1-2 s timeouts.
        Returns the table size of each node afterwards, in the order given.
        """
        args: dict[str, Any] = {"concurrency": concurrency}
        if nodes is not None:
            args["nodes"] = [_ref(n) for n in nodes]
        if time_limit is None:
            count = len(self.nodes) if nodes is None else len(nodes)
            time_limit = max(self._request_timeout, 30.0 + 5.0 * math.ceil(count / concurrency))
        result = await self.request("bootstrap", time_limit=time_limit, **args)
        return [int(n) for n in result["table_sizes"]]

    async def stop_nodes(self, nodes: Sequence[int | ChainSafeNode]) -> None:
        """Stop some nodes (their sockets close; the harness keeps running)."""
        await self.request("stop", nodes=[_ref(n) for n in nodes])

    async def aclose(self, time_limit: float = 10.0) -> None:
        """Stop every node and end the harness process (kills it if it does not exit in time)."""
        with trio.move_on_after(time_limit):
            if self._dead is None:
                with contextlib.suppress(HarnessError, trio.TooSlowError):
                    await self.request("stop", time_limit=time_limit)
            if self._process.stdin is not None:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._process.stdin.aclose()
            await self._process.wait()
        if self._process.returncode is None:
            self._process.kill()
            with trio.CancelScope(shield=True):
                await self._process.wait()


@contextlib.asynccontextmanager
async def open_chainsafe_harness(
    *,
    js_dir: Path = JS_DIR,
    request_timeout: float = 30.0,
    start_timeout: float = 30.0,
    stderr: IO[Any] | int | None = None,
    debug: bool = False,
) -> AsyncIterator[ChainSafeHarness]:
    """Start ``harness.mjs`` (installing its npm packages first if needed) and yield a handle.

    On exit every ChainSafe node is stopped and the process ends.

    Args:
        request_timeout: default limit for one request, in seconds.
        start_timeout: how long to wait for the harness's ``{"ready": true}`` line.
        stderr: where the harness's stderr goes (default: inherited, so pytest captures it).
        debug: set ``DEBUG=discv5*`` so ChainSafe logs every packet to stderr (very verbose).

    Raises:
        HarnessDied: ``node`` is missing or the harness did not come up.
        NpmInstallError: the npm packages could not be installed.
    """
    node = node_executable()
    if node is None:
        raise HarnessDied("`node` (Node.js) is not on PATH")
    ensure_npm_packages(js_dir)
    env = dict(os.environ)
    if debug:
        env["DEBUG"] = "discv5*"
    process = await trio.lowlevel.open_process(
        [node, str(js_dir / "harness.mjs")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        cwd=str(js_dir),
        env=env,
    )
    harness = ChainSafeHarness(process, request_timeout)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(harness._read_replies)
            try:
                await harness._wait_ready(start_timeout)
                yield harness
            finally:
                with trio.CancelScope(shield=True):
                    await harness.aclose()
                nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
        if process.stdout is not None:
            with trio.CancelScope(shield=True):
                await process.stdout.aclose()
