"""A fake geth admin JSON-RPC endpoint for the sidecar tests, on trio.

It serves the same JSON-RPC handler two ways, as geth does: HTTP on ``127.0.0.1`` (port 0 the
first time, the same port after a restart) and the IPC UNIX socket (one JSON value after
another on a stream, each answer one JSON value and a newline). It answers the four methods the
sidecar uses the way geth's ``admin`` API does:

* ``admin_addPeer`` / ``admin_addTrustedPeer``: ``true`` for a URL geth can parse (an
  ``enode://`` URL or an ``enr:`` record), else the error ``{"code": -32000, "message":
  "invalid enode: <why>"}``;
* ``admin_peers``: a list of geth ``PeerInfo`` objects, one per peer added so far;
* ``admin_nodeInfo``: geth's ``NodeInfo`` of a fixed node key.

Every call is recorded (transport, method, params, answer). The server can be stopped and
started again on the same HTTP port and socket path to play a relay that goes down and comes
back, and it can misbehave on purpose (reset connections, never answer, answer garbage or an
HTTP error, send its answer a few bytes at a time, answer HTTP with chunked encoding).

Nothing here listens anywhere but 127.0.0.1 and a path under the test's ``tmp_path``.
"""

from __future__ import annotations

import json
import math
import os
import socket as stdsocket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import trio
import trio.lowlevel

from enr import ENR, Enode, ENRError, PrivateKey, enode_from_enr, parse_enode

__all__ = ["Call", "FakeGeth", "Fault", "geth_parse"]

Transport = Literal["http", "ipc"]
Fault = Literal["none", "reset", "hang", "garbage", "http-500", "drip"]
"""How the server misbehaves: ``reset`` closes each connection with a TCP RST (IPC: closes it
without reading the request); ``hang`` reads the request and never answers; ``garbage``
answers text that is not JSON; ``http-500`` answers HTTP 500 with a text body (IPC: as
``garbage``); ``drip`` sends the (correct) answer three bytes at a time."""

GETH_NAME = "Geth/v1.13.15-stable/linux-amd64/go1.21.9"
_HEADER_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class Call:
    """One JSON-RPC request the server answered."""

    transport: Transport
    method: str
    params: Any
    result: Any
    error: dict[str, Any] | None


def geth_parse(url: str) -> Enode:
    """What geth's ``enode.Parse(enode.ValidSchemes, url)`` accepts: an enode URL or an
    ``enr:`` record (which must give a host and a TCP port to be dialled).

    Raises:
        ENRError: geth would answer "invalid enode: ...".
    """
    if url.startswith("enr:"):
        return enode_from_enr(ENR.from_text(url))
    return parse_enode(url)


@dataclass
class FakeGeth:
    """The fake relay's admin API.

    Args:
        ipc_path: where the IPC socket is created (inside the test's tmp_path).
        key: the relay's node key (``admin_nodeInfo``); fixed by default.
        chunked: answer HTTP with ``Transfer-Encoding: chunked`` instead of a Content-Length.
        fault: see :data:`Fault`.
        reject: enode URL -> message: answered with a -32000 error even though the URL is
            valid (geth does this e.g. for its own node: "cannot add self as peer").
    """

    ipc_path: Path
    key: PrivateKey = field(default_factory=lambda: PrivateKey(b"\x01" * 32))
    chunked: bool = False
    fault: Fault = "none"
    reject: dict[str, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    connections: int = 0
    """Connections accepted (both transports, every run)."""
    http_port: int | None = None
    """The HTTP port, fixed by the first start and reused by later ones."""
    _peers: dict[bytes, tuple[str, bool]] = field(default_factory=dict, init=False, repr=False)
    _scope: trio.CancelScope | None = field(default=None, init=False, repr=False)
    _stopped: trio.Event | None = field(default=None, init=False, repr=False)
    _changed: trio.Event = field(default_factory=trio.Event, init=False, repr=False)

    # --- control -------------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        """``http://127.0.0.1:<port>/`` (valid once started)."""
        assert self.http_port is not None, "start the server first"
        return f"http://127.0.0.1:{self.http_port}/"

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._scope is not None

    async def start(self, nursery: trio.Nursery) -> None:
        """Listen on HTTP and IPC; the serving tasks run in ``nursery`` until :meth:`stop`.

        Raises:
            OSError: the port or the socket path cannot be bound.
        """
        assert self._scope is None, "already running"
        tcp = trio.socket.socket(stdsocket.AF_INET, stdsocket.SOCK_STREAM)
        tcp.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_REUSEADDR, 1)
        await tcp.bind(("127.0.0.1", self.http_port or 0))
        tcp.listen(64)
        self.http_port = tcp.getsockname()[1]
        if self.ipc_path.exists() or self.ipc_path.is_symlink():
            self.ipc_path.unlink()  # a stale socket of an earlier run (geth does the same)
        unix = trio.socket.socket(stdsocket.AF_UNIX, stdsocket.SOCK_STREAM)
        await unix.bind(os.fspath(self.ipc_path))
        unix.listen(64)
        listeners = {
            "http": trio.SocketListener(tcp),
            "ipc": trio.SocketListener(unix),
        }
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()
        await nursery.start(self._serve, listeners, self._scope, self._stopped)

    async def stop(self, *, remove_socket: bool = True) -> None:
        """Stop listening and drop every open connection.

        Args:
            remove_socket: remove the IPC socket file as geth does on shutdown; False leaves
                it behind as after a crash (connecting then fails with "connection refused").
        """
        assert self._scope is not None, "not running"
        assert self._stopped is not None
        self._scope.cancel()
        await self._stopped.wait()
        self._scope = None
        self._stopped = None
        if remove_socket:
            try:
                self.ipc_path.unlink()
            except FileNotFoundError:
                pass

    # --- what it saw ---------------------------------------------------------------------------

    def calls_of(self, method: str) -> list[Call]:
        """The calls of ``method``, in order."""
        return [c for c in self.calls if c.method == method]

    def added(self, method: str = "admin_addPeer") -> list[str]:
        """The first parameter of every successful ``method`` call, in order."""
        return [c.params[0] for c in self.calls_of(method) if c.error is None]

    async def wait_until(self, predicate: Callable[[], bool], within: float) -> None:
        """Wait (on the trio clock) until ``predicate()`` holds after some call.

        Raises:
            trio.TooSlowError: it did not within ``within`` seconds.
        """
        with trio.fail_after(within):
            while not predicate():
                await self._changed.wait()

    def _record(self, call: Call) -> None:
        self.calls.append(call)
        self._changed.set()
        self._changed = trio.Event()

    # --- JSON-RPC ------------------------------------------------------------------------------

    def handle(self, transport: Transport, request: Any) -> Any:
        """The answer to one decoded request (or batch); None for a notification."""
        if isinstance(request, list):
            if not request:
                return _error(None, -32600, "empty batch")
            answers = [self.handle(transport, r) for r in request]
            return [a for a in answers if a is not None]
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return _error(None, -32600, "invalid request")
        method: str = request["method"]
        params = request.get("params", [])
        ident = request.get("id")
        result: Any = None
        error: dict[str, Any] | None = None
        try:
            result = self._dispatch(method, params)
        except _RPCFailure as exc:
            error = {"code": exc.code, "message": exc.message}
        self._record(Call(transport, method, params, result, error))
        if "id" not in request:
            return None
        if error is not None:
            return {"jsonrpc": "2.0", "id": ident, "error": error}
        return {"jsonrpc": "2.0", "id": ident, "result": result}

    def _dispatch(self, method: str, params: Any) -> Any:
        if not isinstance(params, list):
            raise _RPCFailure(-32602, "non-array args")
        if method in ("admin_addPeer", "admin_addTrustedPeer"):
            _want_args(params, 1)
            url = params[0]
            if not isinstance(url, str):
                raise _RPCFailure(
                    -32602, "invalid argument 0: json: cannot unmarshal into Go value of type"
                    " string"
                )
            try:
                enode = geth_parse(url)
            except ENRError as exc:
                raise _RPCFailure(-32000, f"invalid enode: {exc}") from None
            if url in self.reject:
                raise _RPCFailure(-32000, self.reject[url])
            trusted = method == "admin_addTrustedPeer"
            _, was_trusted = self._peers.get(enode.node_id, (url, False))
            self._peers[enode.node_id] = (str(enode), trusted or was_trusted)
            return True
        if method == "admin_peers":
            _want_args(params, 0)
            return [self._peer_info(url, trusted) for url, trusted in self._peers.values()]
        if method == "admin_nodeInfo":
            _want_args(params, 0)
            return self._node_info()
        raise _RPCFailure(-32601, f"the method {method} does not exist/is not available")

    def _peer_info(self, url: str, trusted: bool) -> dict[str, Any]:
        enode = parse_enode(url)
        host = f"[{enode.host}]" if enode.host_kind == "ipv6" else enode.host
        return {
            "enode": url,
            "id": enode.node_id.hex(),
            "name": GETH_NAME,
            "caps": ["eth/68", "snap/1"],
            "network": {
                "localAddress": "127.0.0.1:30303",
                "remoteAddress": f"{host}:{enode.tcp}",
                "inbound": False,
                "trusted": trusted,
                "static": True,
            },
            "protocols": {"eth": {"version": 68}, "snap": {"version": 1}},
        }

    @property
    def enode(self) -> str:
        """The relay's own enode URL (as ``admin_nodeInfo`` reports it)."""
        return f"enode://{self.key.public_key.uncompressed.hex()}@127.0.0.1:30303"

    def _node_info(self) -> dict[str, Any]:
        record = ENR.build(self.key, 1, ip="127.0.0.1", tcp=30303, udp=30303)
        return {
            "id": self.key.public_key.node_id.hex(),
            "name": GETH_NAME,
            "enode": self.enode,
            "enr": record.to_text(),
            "ip": "127.0.0.1",
            "ports": {"discovery": 30303, "listener": 30303},
            "listenAddr": "[::]:30303",
            "protocols": {"eth": {"network": 1337}, "snap": {}},
        }

    # --- transports ----------------------------------------------------------------------------

    async def _serve(
        self,
        listeners: dict[Transport, trio.SocketListener],
        scope: trio.CancelScope,
        stopped: trio.Event,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            with scope:
                async with trio.open_nursery() as nursery:
                    for transport, listener in listeners.items():
                        nursery.start_soon(self._accept_loop, transport, listener, nursery)
                    task_status.started()
        finally:
            for listener in listeners.values():
                listener.socket.close()
            stopped.set()

    async def _accept_loop(
        self, transport: Transport, listener: trio.SocketListener, nursery: trio.Nursery
    ) -> None:
        while True:
            stream = await listener.accept()
            self.connections += 1
            handler = self._http_connection if transport == "http" else self._ipc_connection
            nursery.start_soon(self._guard, handler, stream)

    async def _guard(
        self,
        handler: Callable[[trio.SocketStream], Any],
        stream: trio.SocketStream,
    ) -> None:
        async with stream:
            try:
                await handler(stream)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client went away

    async def _send(self, stream: trio.SocketStream, data: bytes) -> None:
        if self.fault == "drip":
            for i in range(0, len(data), 3):
                await stream.send_all(data[i : i + 3])
                await trio.lowlevel.checkpoint()
        else:
            await stream.send_all(data)

    async def _reset(self, stream: trio.SocketStream) -> None:
        if stream.socket.family == stdsocket.AF_INET:
            stream.socket.setsockopt(
                stdsocket.SOL_SOCKET, stdsocket.SO_LINGER, struct.pack("ii", 1, 0)
            )
        stream.socket.close()
        await trio.lowlevel.checkpoint()

    async def _http_connection(self, stream: trio.SocketStream) -> None:
        data = bytearray()
        while b"\r\n\r\n" not in data:
            chunk = await stream.receive_some(65536)
            if not chunk or len(data) > _HEADER_LIMIT:
                return
            data += chunk
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        verb = lines[0].split(" ")[0]
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:])
        }
        length = int(headers.get("content-length", "0") or 0)
        while len(body) < length:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            body += chunk
        body = body[:length]
        if self.fault == "reset":
            await self._reset(stream)
            return
        if self.fault == "hang":
            await trio.sleep(math.inf)
        if self.fault == "garbage":
            await self._http_reply(stream, 200, b"<html>not json</html>", "text/html")
            return
        if self.fault == "http-500":
            await self._http_reply(stream, 500, b"internal server error\n", "text/plain")
            return
        if verb != "POST":
            await self._http_reply(stream, 405, b"method not allowed\n", "text/plain")
            return
        if not headers.get("content-type", "").startswith("application/json"):
            text = b"invalid content type, only application/json is supported\n"
            await self._http_reply(stream, 415, text, "text/plain")
            return
        try:
            request = json.loads(body)
        except ValueError:
            answer: Any = _error(None, -32700, "parse error")
        else:
            answer = self.handle("http", request)
        payload = b"" if answer is None else json.dumps(answer).encode() + b"\n"
        await self._http_reply(stream, 200, payload, "application/json")

    async def _http_reply(
        self, stream: trio.SocketStream, status: int, body: bytes, content_type: str
    ) -> None:
        reason = {200: "OK", 405: "Method Not Allowed", 415: "Unsupported Media Type",
                  500: "Internal Server Error"}[status]
        head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nVary: Origin\r\n"
        if self.chunked:
            head += "Transfer-Encoding: chunked\r\n\r\n"
            out = bytearray(head.encode())
            for i in range(0, len(body), 7):
                piece = body[i : i + 7]
                out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
            out += b"0\r\n\r\n"
            await self._send(stream, bytes(out))
        else:
            head += f"Content-Length: {len(body)}\r\n\r\n"
            await self._send(stream, head.encode() + body)

    async def _ipc_connection(self, stream: trio.SocketStream) -> None:
        if self.fault == "reset":
            await self._reset(stream)
            return
        decoder = json.JSONDecoder()
        buffer = ""
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            buffer += chunk.decode("utf-8", "replace")
            while buffer.strip():
                text = buffer.lstrip()
                try:
                    request, end = decoder.raw_decode(text)
                except ValueError:
                    if text[:1] not in "{[":
                        await self._send(stream, json.dumps(
                            _error(None, -32700, "parse error")).encode() + b"\n")
                        return
                    break  # incomplete: wait for more
                buffer = text[end:]
                if self.fault == "hang":
                    await trio.sleep(math.inf)
                if self.fault in ("garbage", "http-500"):
                    await self._send(stream, b"this is not json\n")
                    return
                answer = self.handle("ipc", request)
                if answer is not None:
                    await self._send(stream, json.dumps(answer).encode() + b"\n")


class _RPCFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _want_args(params: list[Any], count: int) -> None:
    if len(params) > count:
        raise _RPCFailure(-32602, f"too many arguments, want at most {count}")
    if len(params) < count:
        raise _RPCFailure(-32602, f"missing value for required argument {len(params)}")


def _error(ident: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}
