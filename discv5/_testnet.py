"""A local discv5 network of our own nodes, in one process, on loopback.

Used by ``discv5 testnet`` and ``python -m discv5.crawl --local-net N``: N nodes on 127.0.0.1
(or another loopback address), joined into one DHT by real lookups through the first node. A
fraction of them advertise a Tor v3 address (``onion3``, from a real ed25519 key) and a TCP
port, like the relays this project serves, so a crawl has onion enodes to find. The manifest
lists every node and the enode a crawler is expected to emit for it.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from enr import ENR, OnionServiceKey, PrivateKey, enode_from_enr

from ._config import Config
from ._node import Node, open_node

__all__ = ["Testnet", "TestnetNode", "open_testnet"]

#: Testnet nodes revalidate slowly: hundreds of nodes in one process would otherwise spend
#: their time pinging each other.
TESTNET_CONFIG = Config(
    revalidation_interval=20.0, slow_revalidation_interval=60.0, request_timeout=2.0
)


@dataclass(frozen=True, slots=True)
class TestnetNode:
    """One node of the test network."""

    index: int
    """Position in the network (0 is the bootnode)."""
    node: Node
    """The running node."""
    onion: OnionServiceKey | None
    """Its Tor v3 key when it advertises onion3."""
    tcp: int | None
    """The TCP port its record advertises (onion nodes only)."""

    @property
    def enr(self) -> ENR:
        """The node's current record."""
        return self.node.local_enr

    @property
    def expected_enode(self) -> str | None:
        """The enode a crawler must emit for this node (onion nodes), else None."""
        return str(enode_from_enr(self.enr)) if self.onion is not None else None

    def manifest_entry(self) -> dict[str, Any]:
        """JSON-ready description."""
        ip, udp, _ = self.enr.endpoint()
        return {
            "index": self.index,
            "node_id": self.enr.node_id.hex(),
            "enr": self.enr.to_text(),
            "ip": str(ip),
            "udp": udp,
            "tcp": self.tcp,
            "onion3": self.enr.onion3,
            "enode": self.expected_enode,
        }


@dataclass(frozen=True, slots=True)
class Testnet:
    """A running local network."""

    nodes: tuple[TestnetNode, ...]
    """All nodes, the bootnode first."""

    @property
    def bootnode(self) -> ENR:
        """The first node's record: give it to a crawler as its bootnode."""
        return self.nodes[0].enr

    @property
    def expected_enodes(self) -> set[str]:
        """Every onion enode a complete crawl must find."""
        return {n.expected_enode for n in self.nodes if n.expected_enode is not None}

    def manifest(self) -> dict[str, Any]:
        """The manifest: bootnode and every node with its expected enode."""
        return {
            "bootnode": self.bootnode.to_text(),
            "nodes": [n.manifest_entry() for n in self.nodes],
        }

    def write_manifest(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`manifest` as JSON (atomically)."""
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.manifest(), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)


@asynccontextmanager
async def open_testnet(
    count: int,
    *,
    onion_fraction: float = 0.5,
    host: str = "127.0.0.1",
    base_port: int = 0,
    base_tcp_port: int = 30303,
    seed: int | None = None,
    config: Config | None = None,
    progress: Callable[[str], None] | None = None,
) -> AsyncIterator[Testnet]:
    """Start ``count`` nodes on ``host`` and join them into one DHT.

    Args:
        count: number of nodes (at least 1).
        onion_fraction: share of nodes that advertise onion3 and tcp (0..1). The onion nodes
            are spread evenly over the network.
        host: a loopback address; nothing is ever sent elsewhere.
        base_port: first UDP port (node i uses base_port + i); 0 lets the system choose.
        base_tcp_port: TCP port advertised by onion node i is base_tcp_port + i.
        seed: makes keys and all protocol randomness reproducible.
        config: node configuration (default: :data:`TESTNET_CONFIG`).
        progress: called with short status lines while the network forms.

    Raises:
        ValueError: bad arguments (count < 1, fraction outside 0..1, a non-loopback host).
        OSError: a port could not be bound.
    """
    import ipaddress

    if count < 1:
        raise ValueError("a test network needs at least one node")
    if not 0.0 <= onion_fraction <= 1.0:
        raise ValueError("onion fraction must be between 0 and 1")
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"test networks run on loopback only, not {host}")
    gen = random.Random(seed) if seed is not None else random.SystemRandom()
    rng: Callable[[int], bytes] = (
        (lambda n: gen.getrandbits(8 * n).to_bytes(n, "big")) if seed is not None else os.urandom
    )
    config = config or TESTNET_CONFIG
    say = progress or (lambda _line: None)
    onion_count = round(count * onion_fraction)
    onion_indexes = (
        {int(i * count / onion_count) for i in range(onion_count)} if onion_count else set()
    )
    members: list[TestnetNode] = []

    async def serve(
        index: int, fields: dict[str, Any], key: PrivateKey,
        task_status: trio.TaskStatus[Node] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        async with open_node(
            key,
            listen=(host, base_port + index if base_port else 0),
            config=config,
            enr_fields=fields,
            rng=rng,
        ) as node:
            task_status.started(node)
            await trio.sleep_forever()

    # Each node runs in its own task of one nursery (not N nested contexts), so tearing down
    # a network of a thousand nodes stays flat.
    async with trio.open_nursery() as nursery:
        for i in range(count):
            key = PrivateKey.generate(rng)
            onion = OnionServiceKey.generate(rng) if i in onion_indexes else None
            tcp = base_tcp_port + i if onion is not None else None
            fields: dict[str, Any] = {}
            if onion is not None:
                fields = {"tcp": tcp, "onion3": onion.address}
            node = await nursery.start(serve, i, fields, key)
            members.append(TestnetNode(i, node, onion, tcp))
        say(f"started {count} nodes on {host}; joining them through the bootnode")
        boot = members[0].enr
        limiter = trio.CapacityLimiter(16)

        async def join(member: TestnetNode) -> None:
            async with limiter:
                await member.node.bootstrap([boot])

        # Each join is a self lookup and three random lookups (Node.bootstrap); every node it
        # asks learns of the joiner and checks it, so later joiners are known to many.
        async with trio.open_nursery() as joins:
            for member in members[1:]:
                joins.start_soon(join, member)
        say(f"test network of {count} nodes is up ({len(onion_indexes)} with onion3)")
        try:
            yield Testnet(tuple(members))
        finally:
            nursery.cancel_scope.cancel()
