"""Small value types shared by the whole package: node ids, endpoints and XOR distance."""

from __future__ import annotations

from typing import NamedTuple, NewType

__all__ = ["Address", "NodeAddress", "NodeId", "distance", "log_distance"]

NodeId = NewType("NodeId", bytes)
"""A 32-byte node id (keccak256 of the public key for "v4" records)."""

Address = tuple[str, int]
"""A UDP endpoint as (IP text, port), the form sockets use."""


class NodeAddress(NamedTuple):
    """A node at an endpoint: sessions and handshake challenges are keyed by all three."""

    node_id: NodeId
    ip: str
    port: int

    @property
    def address(self) -> Address:
        """The (ip, port) endpoint."""
        return (self.ip, self.port)


def distance(a: bytes, b: bytes) -> int:
    """discv5-theory "Nodes, Records and Distances": a XOR b as a 256-bit big-endian integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


def log_distance(a: bytes, b: bytes) -> int:
    """Bit length of a XOR b: 0 for equal ids, else 1..256."""
    return distance(a, b).bit_length()
