"""A small client for the relay's admin JSON-RPC: over HTTP, or geth's IPC UNIX socket.

Only what the sidecar needs: ``admin_addPeer``, ``admin_addTrustedPeer``, ``admin_peers`` and
``admin_nodeInfo``. HTTP is plain HTTP/1.1 with ``Connection: close`` (geth's HTTP server
answers with a Content-Length; chunked answers are understood too). IPC is geth's: one JSON
request written to the socket, one JSON value read back.
"""

from __future__ import annotations

import itertools
import json
from typing import Any
from urllib.parse import urlsplit

import trio

__all__ = ["AdminRPC", "RPCError", "RPCUnavailable"]

_MAX_RESPONSE = 16 * 1024 * 1024


class RPCUnavailable(Exception):
    """The endpoint could not be reached or answered something that is not JSON-RPC."""


class RPCError(Exception):
    """The node answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message


class AdminRPC:
    """The relay's admin API at ``endpoint``: ``http://host:port[/path]`` or an IPC path.

    Args:
        endpoint: URL or UNIX socket path (e.g. ``/data/geth.ipc``).
        timeout: seconds one call may take.

    Raises:
        ValueError: an ``https://`` or other unsupported URL.
    """

    def __init__(self, endpoint: str, *, timeout: float = 10.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._ids = itertools.count(1)
        if "://" in endpoint:
            url = urlsplit(endpoint)
            if url.scheme != "http" or not url.hostname:
                raise ValueError(
                    f"unsupported RPC endpoint {endpoint!r}: use http://host:port or an IPC path"
                )
            http = (url.hostname, url.port or 80, url.path or "/")
            self._http: tuple[str, int, str] | None = http
        else:
            self._http = None

    async def call(self, method: str, params: list[Any]) -> Any:
        """Call ``method``; returns its result.

        Raises:
            RPCUnavailable: connection refused, timeout, not a JSON-RPC answer.
            RPCError: the node answered with an error.
        """
        request = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        body = json.dumps(request).encode()
        try:
            with trio.fail_after(self.timeout):
                raw = await (self._post(body) if self._http else self._ipc(body))
        except trio.TooSlowError:
            raise RPCUnavailable(f"{self.endpoint}: no answer within {self.timeout:g}s") from None
        except OSError as exc:
            raise RPCUnavailable(f"{self.endpoint}: {exc.strerror or exc}") from None
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            # trio's name for a connection reset or closed mid-call (the relay restarting).
            reason = exc.__cause__ or exc
            raise RPCUnavailable(f"{self.endpoint}: connection lost ({reason})") from None
        try:
            reply = json.loads(raw)
        except ValueError:
            raise RPCUnavailable(f"{self.endpoint}: answer is not JSON") from None
        if not isinstance(reply, dict):
            raise RPCUnavailable(f"{self.endpoint}: answer is not a JSON-RPC object")
        error = reply.get("error")
        if error is not None:
            if isinstance(error, dict):
                raise RPCError(int(error.get("code", 0)), str(error.get("message", error)))
            raise RPCError(0, str(error))
        return reply.get("result")

    async def add_peer(self, enode: str, *, trusted: bool = False) -> bool:
        """``admin_addPeer`` (or ``admin_addTrustedPeer``); geth answers true on success."""
        method = "admin_addTrustedPeer" if trusted else "admin_addPeer"
        return bool(await self.call(method, [enode]))

    async def peers(self) -> list[Any]:
        """``admin_peers``."""
        result = await self.call("admin_peers", [])
        return list(result or [])

    async def node_info(self) -> dict[str, Any]:
        """``admin_nodeInfo``."""
        result = await self.call("admin_nodeInfo", [])
        return dict(result or {})

    async def _post(self, body: bytes) -> bytes:
        assert self._http is not None
        host, port, path = self._http
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Content-Type: application/json\r\nAccept: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            await stream.send_all(head + body)
            data = bytearray()
            while chunk := await stream.receive_some(65536):
                data += chunk
                if len(data) > _MAX_RESPONSE:
                    raise RPCUnavailable(f"{self.endpoint}: answer too large")
        return _parse_http(bytes(data), self.endpoint)

    async def _ipc(self, body: bytes) -> bytes:
        stream = await trio.open_unix_socket(self.endpoint)
        async with stream:
            await stream.send_all(body + b"\n")
            decoder = json.JSONDecoder()
            data = bytearray()
            while chunk := await stream.receive_some(65536):
                data += chunk
                text = data.decode("utf-8", "replace").lstrip()
                try:
                    decoder.raw_decode(text)
                except ValueError:
                    if len(data) > _MAX_RESPONSE:
                        raise RPCUnavailable(f"{self.endpoint}: answer too large") from None
                    continue
                return bytes(data)
        raise RPCUnavailable(f"{self.endpoint}: connection closed before an answer")


def _parse_http(data: bytes, endpoint: str) -> bytes:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise RPCUnavailable(f"{endpoint}: incomplete HTTP answer")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise RPCUnavailable(f"{endpoint}: not an HTTP answer")
    status = int(parts[1]) if parts[1].isdigit() else 0
    headers = {
        k.strip().lower(): v.strip()
        for k, _, v in (line.partition(":") for line in lines[1:])
    }
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    elif "content-length" in headers and headers["content-length"].isdigit():
        body = body[: int(headers["content-length"])]
    if status != 200 and not body.strip().startswith(b"{"):
        raise RPCUnavailable(f"{endpoint}: HTTP {status}")
    return body


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return bytes(out)
