"""Pure answers to requests: PONG, NODES (split to fit packets), and the relay rules.

discv5-wire "FINDNODE Request": distance 0 is our own current record; results are capped
(16); go-ethereum ignores duplicate distances and distances over 256, collects distances in the
order given, and never relays a record whose address the requester could not use (a loopback
address only to a loopback requester, a LAN address only to a LAN requester). "NODES Response":
several messages, each packet under 1280 bytes, all with the same ``total``; an empty result is
still one NODES with total 1.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Sequence

from enr import ENR

from ._config import Config
from ._messages import FindNode, Nodes, Ping, Pong
from ._routing import is_lan

__all__ = ["is_relayable", "nodes_responses", "pong_for", "select_records"]

# go-ethereum p2p/netutil "special" networks (IANA special-purpose registries): documentation,
# benchmarking, relay and protocol-assignment ranges. Records there are never relayed.
_SPECIAL_NETS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8", "192.0.0.0/29", "192.0.0.9/32", "192.0.0.170/32", "192.0.0.171/32",
        "192.0.2.0/24", "192.31.196.0/24", "192.52.193.0/24", "192.88.99.0/24",
        "192.175.48.0/24", "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24",
        "255.255.255.255/32",
        "100::/64", "2001::/32", "2001:1::1/128", "2001:2::/48", "2001:3::/32",
        "2001:4:112::/48", "2001:5::/32", "2001:10::/28", "2001:20::/28", "2001:db8::/32",
        "2002::/16",
    )
)


def _scope(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """0 unusable, 1 loopback, 2 LAN, 3 Internet."""
    if ip.is_loopback:
        return 1
    if ip.is_unspecified or ip.is_multicast:
        return 0
    if is_lan(ip):  # go-ethereum netutil.IsLAN, as the routing table's IP limits use it
        return 2
    if any(ip in net for net in _SPECIAL_NETS) or (ip.version == 4 and ip.is_reserved):
        return 0
    return 3


def is_relayable(record: ENR, requester_ip: str) -> bool:
    """May ``record`` be sent to a requester at ``requester_ip``? (go-ethereum netutil rules)

    A record needs an IP and UDP port; a loopback address goes only to loopback requesters and
    a LAN address only to loopback or LAN requesters.
    """
    ip, udp, _ = record.endpoint()
    if ip is None or not udp:
        return False
    requester_scope = _text_scope(requester_ip)
    if requester_scope is None:
        return False
    scope = _scope(ip)
    return scope != 0 and scope >= requester_scope


@functools.lru_cache(maxsize=1024)
def _text_scope(ip: str) -> int | None:
    """:func:`_scope` of an address given as text (answers reuse a few requester addresses)."""
    try:
        return _scope(ipaddress.ip_address(ip))
    except ValueError:
        return None


def pong_for(ping: Ping, local_enr: ENR, ip: str, port: int) -> Pong:
    """The PONG for ``ping`` received from ``ip``:``port`` (the envelope address)."""
    return Pong(ping.request_id, local_enr.seq, ipaddress.ip_address(ip), port)


def select_records(
    request: FindNode,
    local_enr: ENR,
    at_distance: Callable[[int], Sequence[ENR]],
    requester_ip: str,
    limit: int,
) -> list[ENR]:
    """Records answering ``request``: distances in the order given, until ``limit``.

    Args:
        at_distance: the verified-live records at one log distance from us.
    """
    out: list[ENR] = []
    seen_distances: set[int] = set()
    for dist in request.distances:
        if dist in seen_distances or not 0 <= dist <= 256:
            continue
        seen_distances.add(dist)
        if dist == 0:
            out.append(local_enr)
        else:
            out.extend(r for r in at_distance(dist) if is_relayable(r, requester_ip))
        if len(out) >= limit:
            break
    return out[:limit]


def nodes_responses(request_id: bytes, records: Sequence[ENR], config: Config) -> list[Nodes]:
    """Split ``records`` into NODES messages of at most ``config.nodes_message_payload`` record
    bytes each; always at least one message."""
    groups: list[list[ENR]] = [[]]
    size = 0
    for record in records:
        if groups[-1] and size + len(record) > config.nodes_message_payload:
            groups.append([])
            size = 0
        groups[-1].append(record)
        size += len(record)
    return [Nodes(request_id, len(groups), tuple(group)) for group in groups]
