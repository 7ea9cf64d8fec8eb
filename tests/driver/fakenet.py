"""An in-memory datagram network for driver tests on trio's autojump clock.

Each :class:`FakeSocket` satisfies ``discv5.DatagramSocket``. Delivery is immediate (the
autojump clock makes timeouts instant), optionally lossy with a seeded generator, and a socket
may present a different *public* address than the one it is bound to, as a NAT would.
"""

from __future__ import annotations

import errno
import random
from collections.abc import Callable
from typing import Any

import trio

from enr import PrivateKey

Address = tuple[str, int]


class FakeSocket:
    def __init__(self, net: FakeNetwork, address: Address, public: Address | None) -> None:
        self.net = net
        self.address = address
        self.public = public or address
        self._send, self._receive = trio.open_memory_channel[tuple[bytes, Address] | OSError](
            1024
        )
        self.closed = False
        self.sent = 0

    async def sendto(self, data: bytes, address: Any, /) -> int:
        await trio.lowlevel.checkpoint()
        if self.closed:
            raise OSError("socket closed")
        if (str(address[0]), int(address[1])) in self.net.refuse:
            raise OSError(errno.EHOSTUNREACH, "refused by FakeNetwork.refuse")
        self.sent += 1
        self.net.deliver(bytes(data), self.public, (str(address[0]), int(address[1])))
        return len(data)

    async def recvfrom(self, bufsize: int, /) -> tuple[bytes, Any]:
        item = await self._receive.receive()
        if isinstance(item, OSError):
            raise item
        data, src = item
        return data[:bufsize], src

    def getsockname(self) -> Any:
        return self.address

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.net.sockets.pop(self.public, None)
            self._send.close()

    def fail_next_receive(self, error: OSError) -> None:
        """Make a pending or the next ``recvfrom`` raise ``error`` (an ICMP error, say)."""
        self._send.send_nowait(error)

    def put(self, data: bytes, src: Address) -> None:
        try:
            self._send.send_nowait((data, src))
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.net.dropped += 1


class FakeNetwork:
    def __init__(self, seed: int = 0, loss: float = 0.0) -> None:
        self.sockets: dict[Address, FakeSocket] = {}
        self.random = random.Random(seed)
        self.loss = loss
        self.dropped = 0
        self.delivered = 0
        self.refuse: set[Address] = set()
        """Destinations whose ``sendto`` fails with OSError (as an unreachable host does)."""
        self._next_port = 40000

    def socket(self, ip: str = "127.0.0.1", port: int | None = None,
               public: Address | None = None) -> FakeSocket:
        if port is None:
            self._next_port += 1
            port = self._next_port
        sock = FakeSocket(self, (ip, port), public)
        self.sockets[sock.public] = sock
        return sock

    def deliver(self, data: bytes, src: Address, dst: Address) -> None:
        target = self.sockets.get(dst)
        if target is None or (self.loss and self.random.random() < self.loss):
            self.dropped += 1
            return
        self.delivered += 1
        target.put(data, src)


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    """A deterministic ``rng(n) -> n bytes`` for keys, nodes and the protocol core."""
    return random.Random(seed).randbytes


def make_key(seed: int) -> PrivateKey:
    """A deterministic secp256k1 key."""
    return PrivateKey.generate(seeded_rng(seed))
