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
    min_record_udp_port: int = 1025
    """Records in NODES answers with a lower UDP port are dropped (go-ethereum errLowPort)."""
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
    ip_limit_prefix_v4: int = 24
    """Prefix length that groups IPv4 addresses for the two IP limits (go-ethereum: 24)."""
    ip_limit_prefix_v6: int = 24
    """Prefix length that groups IPv6 addresses for the IP limits. go-ethereum applies the same
    24-bit prefix to IPv6 (its DistinctNetSet truncates either family to `Subnet` bits)."""
    revalidation_interval: float = 3.0
    """Upper bound of the random wait between two pings from the "fast" revalidation list
    (new or changed entries; go-ethereum PingInterval)."""
    slow_revalidation_interval: float = 9.0
    """Upper bound of the random wait between two pings from the "slow" list (entries that
    passed their last check; go-ethereum: 3 x PingInterval)."""
    max_findnode_failures: int = 5
    """Consecutive failed or empty FINDNODE calls after which an entry is dropped, provided its
    bucket holds at least bucket_size / 4 entries (go-ethereum maxFindnodeFailures)."""

    # --- lookups ---
    lookup_parallelism: int = 3
    """alpha: concurrent FINDNODE queries in a lookup."""
    lookup_request_distances: int = 3
    """Log distances asked of each peer in a lookup: d, d+1, d-1, ... (go-ethereum
    lookupRequestLimit)."""
    refresh_interval: float = 1800.0
    """Seconds between table refreshes (a self lookup and random lookups; go-ethereum: a
    random time up to 30 minutes)."""

    # --- the driver ---
    talk_handler_timeout: float = 0.5
    """Time a TALKREQ handler may take before the request is answered with an empty response;
    below the requester's request_timeout (0.7 s) so the answer still counts (go-ethereum asks
    handlers to reply within ~200 ms)."""
    max_talk_handlers: int = 1024
    """TALKREQ handlers running at once; requests beyond this are dropped (go-ethereum)."""
    ip_vote_min_votes: int = 10
    """PONG statements from distinct peers needed before our external endpoint is believed
    (go-ethereum iptrackMinStatements)."""
    ip_vote_window: float = 300.0
    """Seconds a PONG statement counts (go-ethereum iptrackWindow)."""
