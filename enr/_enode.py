"""enode URLs (go-ethereum ``p2p/enode/urlv4.go``), with Tor v3 hosts.

``enode://<128 hex: uncompressed secp256k1 key without 0x04>@<host>:<tcp>[?discport=<udp>]``.
The host is an IPv4 address, ``[IPv6]``, a DNS name or an onion3 address; ``discport`` appears
only when the UDP port differs from the TCP port. The public key must be a point on secp256k1:
random 64-byte hex is not a node id, and relay clients reject it with "invalid public key".
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final, Literal

from . import _rlp
from ._errors import EnodeError, InvalidPublicKey
from ._keys import PublicKey
from ._onion import ONION3_SUFFIX, onion3_problem
from ._record import ENR, IPAddress

__all__ = ["Enode", "HostKind", "enode_from_enr", "parse_enode", "unsigned_record"]

_SCHEME: Final = "enode://"
_HEX_RE: Final = re.compile(r"[0-9a-fA-F]{128}")
_DNS_LABEL_RE: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_PORT_RE: Final = re.compile(r"[0-9]{1,5}")

HostKind = Literal["ipv4", "ipv6", "dns", "onion3"]


@dataclass(frozen=True, slots=True)
class Enode:
    """A parsed enode URL. ``str()`` formats it back exactly as go-ethereum does."""

    public_key: PublicKey
    """The node's secp256k1 key (always a valid curve point)."""
    host: str | None
    """IP address text (IPv6 without brackets), DNS name or onion3 address; None if incomplete."""
    tcp: int | None
    """TCP (RLPx) port; None for the incomplete form ``enode://<key>``."""
    udp: int | None
    """UDP discovery port (``discport``, defaulting to the TCP port)."""

    @property
    def node_id(self) -> bytes:
        """keccak256 of the 64-byte public key."""
        return self.public_key.node_id

    @property
    def host_kind(self) -> HostKind | None:
        """What kind of host this is, or None for the incomplete form."""
        if self.host is None:
            return None
        if self.host.endswith(ONION3_SUFFIX):
            return "onion3"
        try:
            return "ipv4" if ipaddress.ip_address(self.host).version == 4 else "ipv6"
        except ValueError:
            return "dns"

    @property
    def ip(self) -> IPAddress | None:
        """The host as an address object when it is an IP address."""
        try:
            return ipaddress.ip_address(self.host) if self.host else None
        except ValueError:
            return None

    @property
    def onion3(self) -> str | None:
        """The host when it is an onion3 address."""
        return self.host if self.host_kind == "onion3" else None

    def __str__(self) -> str:
        url = _SCHEME + self.public_key.uncompressed.hex()
        if self.host is None:
            return url
        host = f"[{self.host}]" if self.host_kind == "ipv6" else self.host
        url += f"@{host}:{self.tcp}"
        if self.udp is not None and self.udp != self.tcp:
            url += f"?discport={self.udp}"
        return url

    def problems(self) -> list[str]:
        """Why a relay could not dial this enode (empty when it can): no host, port 0."""
        out = []
        if self.host is None:
            out.append("no host: an incomplete enode cannot be dialled")
        if self.tcp == 0:
            out.append("tcp port is 0")
        if self.udp == 0:
            out.append("discport is 0")
        return out


def _parse_port(text: str, what: str) -> int:
    if not _PORT_RE.fullmatch(text) or int(text) > 0xFFFF:
        raise EnodeError(f"invalid {what} {text!r}")
    return int(text)


def _check_host(host: str) -> str:
    if host.lower().endswith(ONION3_SUFFIX):
        label = host[: -len(ONION3_SUFFIX)]
        if len(label) == 16:
            raise EnodeError("v2 onion addresses (16 characters) are not supported; want onion3")
        problem = onion3_problem(host)
        if problem:
            raise EnodeError(f"invalid onion3 host: {problem}")
        return host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)  # go-ethereum treats ::ffff:a.b.c.d as a.b.c.d
        return str(ip)
    name = host[:-1] if host.endswith(".") else host
    if name and all(label.isdigit() for label in name.split(".")):
        raise EnodeError(f"invalid IP address {host!r}")
    if not name or len(host) > 253 or not all(_DNS_LABEL_RE.fullmatch(x) for x in name.split(".")):
        raise EnodeError(f"invalid host {host!r}")
    return host


def parse_enode(url: str) -> Enode:
    """Parse an enode URL.

    Raises:
        EnodeError: wrong scheme, public key not 128 hex characters or not on secp256k1, bad
            host (including an onion address that fails its checksum), bad port or discport.
    """
    if not isinstance(url, str):
        raise EnodeError("enode URL must be a string")
    url = url.strip()
    if not url.startswith(_SCHEME):
        raise EnodeError("invalid URL scheme, want 'enode://'")
    rest = url[len(_SCHEME) :]
    key_text, at, hostport = rest.partition("@")
    if not at:
        key_text, _, _ = rest.partition("?")
    if len(key_text) != 128:
        raise EnodeError(
            f"invalid public key (wrong length: {len(key_text)} characters, want 128 hex chars)"
        )
    if not _HEX_RE.fullmatch(key_text):
        raise EnodeError("invalid public key (not hex: want 128 hex chars)")
    try:
        public_key = PublicKey.from_bytes(bytes.fromhex(key_text))
    except InvalidPublicKey:
        raise EnodeError(
            "invalid public key: not a point on the secp256k1 curve"
            " (random bytes are not a node id; use a real node's key)"
        ) from None
    if not at:
        return Enode(public_key, None, None, None)
    hostport, _, query = hostport.partition("?")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise EnodeError("invalid host: unterminated '[' in IPv6 address")
        host, sep, port_text = hostport[1:end], hostport[end + 1 : end + 2], hostport[end + 2 :]
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise EnodeError(f"invalid IPv6 address {host!r}") from None
    else:
        host, sep, port_text = hostport.rpartition(":")
        if ":" in host:
            raise EnodeError("IPv6 addresses must be written in brackets: [addr]:port")
    if sep != ":":
        raise EnodeError("invalid port: missing ':<port>' after the host")
    if not host:
        raise EnodeError("missing host")
    host = _check_host(host)
    tcp = _parse_port(port_text, "port")
    udp = tcp
    for param in filter(None, query.split("&")):
        name, _, value = param.partition("=")
        if name == "discport":
            if not _PORT_RE.fullmatch(value) or int(value) > 0xFFFF:
                raise EnodeError(f"invalid discport in query: {value!r}")
            udp = int(value)
    return Enode(public_key, host, tcp, udp)


def enode_from_enr(record: ENR, *, prefer_onion: bool = True) -> Enode:
    """The enode a relay should dial for ``record``, formatted as the Tor fork does.

    The host is the record's onion3 address when it has one (and ``prefer_onion``), else the
    IP go-ethereum would choose (:meth:`ENR.endpoint`); the port is ``tcp``; ``discport`` is
    the UDP port when it differs.

    Raises:
        EnodeError: no usable public key; an ``onion3`` entry that is present but invalid; no
            host at all; no ``tcp`` port (port 0 is never printed).
    """
    public_key = record.public_key
    if public_key is None:
        raise EnodeError("record has no usable secp256k1 public key")
    problem = record.onion3_problem
    if prefer_onion and problem is not None:
        raise EnodeError(f"onion3 entry is unusable: {problem}")
    endpoint = record.endpoint()
    onion = record.onion3 if prefer_onion else None
    if onion is not None:
        host: str | None = onion
        tcp, udp = record.tcp, record.udp
    else:
        host = None if endpoint.ip is None else str(endpoint.ip)
        tcp, udp = endpoint.tcp, endpoint.udp
    if host is None:
        raise EnodeError("record has neither an IP address nor an onion3 address")
    if not tcp:
        raise EnodeError("record has no tcp port: it cannot give a dialable enode")
    return Enode(public_key, host, tcp, udp if udp is not None else tcp)


def unsigned_record(enode: Enode) -> ENR:
    """A stand-in record for a node known only by its enode URL (go-ethereum's "v4-compat").

    It carries ``id``, ``secp256k1``, ``ip``/``ip6``, ``tcp`` and ``udp`` but no signature, so
    it can address the node (a discv5 handshake needs only its key and endpoint) and is
    replaced by the node's real record as soon as we fetch it. ``record.verified`` is False.

    Raises:
        EnodeError: the enode has no IP host (a DNS name or onion address has no UDP endpoint).
    """
    ip = enode.ip
    if ip is None:
        raise EnodeError("an enode without an IP address cannot be contacted over UDP")
    pairs: dict[bytes, bytes] = {
        b"id": b"v4",
        b"secp256k1": enode.public_key.compressed,
        (b"ip" if ip.version == 4 else b"ip6"): ip.packed,
    }
    if enode.tcp:
        pairs[b"tcp"] = enode.tcp.to_bytes((enode.tcp.bit_length() + 7) // 8, "big")
    if enode.udp:
        pairs[b"udp"] = enode.udp.to_bytes((enode.udp.bit_length() + 7) // 8, "big")
    items: list[_rlp.Item] = [b"", b""]
    for key in sorted(pairs):
        items += [key, pairs[key]]
    return ENR.from_rlp(_rlp.encode(items), verify=False)
