"""Every tunable limit of the protocol core and the node, in one frozen object.

Defaults follow go-ethereum (the implementation every other client interoperates with); the
spec section or go-ethereum source is named beside each.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Config"]


@dataclass(frozen=True, slots=True)
class Config:
    """Limits and timeouts. All durations are seconds (floats)."""

    # --- packets and sessions (discv5-wire, discv5-theory "Session Cache") ---
    max_packet_size: int = 1280
    """Largest datagram built or accepted (discv5-wire "UDP Communication")."""
    min_packet_size: int = 63
    """Smallest datagram accepted (the size of a WHOAREYOU)."""
    session_cache_size: int = 1024
    """Sessions kept, least recently used evicted first (go-ethereum: 1024)."""
    handshake_timeout: float = 1.0
    """Lifetime of a WHOAREYOU challenge we sent (go-ethereum handshakeTimeout)."""
    random_packet_size: int = 20
    """Bytes of random message content in the first packet to a node with no session."""
    max_pending_challenges: int = 4096
    """WHOAREYOU challenges remembered at once; the oldest go first beyond this."""

    # --- requests ---
    request_timeout: float = 0.7
    """Time to wait for a response, restarted by every matching response (go-ethereum)."""
    max_nodes_messages: int = 5
    """NODES messages accepted for one FINDNODE (go-ethereum: 5)."""
    max_pending_requests_per_node: int = 16
    """Requests in flight to one endpoint; further ones fail at once with a clear reason."""

    # --- answers we give ---
    max_nodes_per_response: int = 16
    """Records returned for one FINDNODE (discv5-wire recommends 16)."""
    nodes_message_payload: int = 1000
    """Summed record bytes per NODES message (go-ethereum packs at most 1000)."""

    # --- routing table (discv5-theory "Node Table") ---
    bucket_size: int = 16
    """k: entries per bucket."""
    replacement_cache_size: int = 10
    """Replacement candidates kept per bucket."""
    bucket_ip_limit: int = 2
    """Entries per /24 (IPv4) in one bucket; loopback and LAN exempt."""
    table_ip_limit: int = 10
    """Entries per /24 (IPv4) in the whole table; loopback and LAN exempt."""

    # --- lookups ---
    lookup_parallelism: int = 3
    """alpha: concurrent FINDNODE queries in a lookup."""
