"""Ethereum Node Records (EIP-778).

A record is the RLP list ``[signature, seq, k1, v1, k2, v2, ...]`` with keys sorted and unique,
at most 300 bytes encoded. Its text form is ``enr:`` + unpadded URL-safe base64 of the RLP.

:class:`ENR` is an immutable value that keeps the exact bytes it was decoded from, so encoding a
decoded record gives back the input byte for byte, unknown keys included. Decoding checks the
structure strictly and, by default, the signature. Well-known entries (``ip``, ``tcp``,
``onion3``...) are decoded lazily by the accessors; a malformed value inside a validly signed
record does not make decoding fail (go-ethereum keeps such records): the accessor returns None and
:meth:`ENR.entry_problems` says why.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final, NamedTuple

from . import _rlp
from ._errors import ENRDecodeError, ENRError, ENRTooLargeError
from ._identity import identity_scheme
from ._keys import PrivateKey, PublicKey
from ._onion import onion3_problem, onion3_public_key
from ._rlp import Item

__all__ = ["ENR", "MAX_RECORD_SIZE", "Endpoint", "IPAddress"]

#: EIP-778: "The maximum encoded size of a node record is 300 bytes."
MAX_RECORD_SIZE: Final = 300
_MAX_SEQ_BITS: Final = 64
_TEXT_PREFIX: Final = "enr:"
_BASE64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Records are immutable values, so a record already decoded and verified need not be verified
# again: discovery sees the same records over and over (every NODES answer, every lookup).
# A bounded memo of exact encodings -> records, oldest dropped first.
_VERIFIED_CACHE_SIZE: Final = 8192
_VERIFIED: dict[bytes, ENR] = {}


class Endpoint(NamedTuple):
    """The address go-ethereum would use for a record (``enode.Node.IPAddr/UDP/TCP``)."""

    ip: IPAddress | None
    udp: int | None
    tcp: int | None


# --- well-known entries -------------------------------------------------------------------------


def _decode_ip(value: Item, size: int) -> tuple[Any, str | None]:
    if not isinstance(value, bytes):
        return None, "value is a list, want an address"
    if len(value) != size:
        return None, f"address must be {size} bytes, got {len(value)}"
    return (ipaddress.IPv4Address(value) if size == 4 else ipaddress.IPv6Address(value)), None


def _decode_port(value: Item) -> tuple[Any, str | None]:
    if not isinstance(value, bytes):
        return None, "value is a list, want a port number"
    if value[:1] == b"\x00":
        return None, "port has leading zero bytes (non-canonical)"
    port = int.from_bytes(value, "big")
    if port > 0xFFFF:
        return None, f"port {port} is larger than 65535"
    return port, None


def _decode_onion3(value: Item) -> tuple[Any, str | None]:
    if not isinstance(value, bytes):
        return None, "value is a list, want '<56 base32>.onion'"
    problem = onion3_problem(value)
    return (None, problem) if problem else (value.decode("ascii"), None)


def _decode_pubkey(value: Item) -> tuple[Any, str | None]:
    if not isinstance(value, bytes) or len(value) != 33:
        return None, "public key must be 33 bytes"
    try:
        return PublicKey.from_bytes(value), None
    except ENRError:
        return None, "public key is not on the secp256k1 curve"


def _decode_id(value: Item) -> tuple[Any, str | None]:
    if not isinstance(value, bytes):
        return None, "identity scheme name is a list"
    return value.decode("ascii", "replace"), None


_DECODERS: Final = {
    b"id": _decode_id,
    b"secp256k1": _decode_pubkey,
    b"ip": lambda v: _decode_ip(v, 4),
    b"ip6": lambda v: _decode_ip(v, 16),
    b"tcp": _decode_port,
    b"udp": _decode_port,
    b"tcp6": _decode_port,
    b"udp6": _decode_port,
    b"quic": _decode_port,
    b"quic6": _decode_port,
    b"onion3": _decode_onion3,
}

# go-ethereum p2p/netutil: private ranges (RFC 1918, RFC 4193) and link-local.
_PRIVATE_NETS: Final = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def _locality(ip: IPAddress) -> int:
    """go-ethereum enode localityScore: unspecified < loopback < link-local < private < global."""
    if ip.is_unspecified:
        return 0
    if ip.is_loopback:
        return 1
    if ip.is_link_local:
        return 2
    if any(ip in net for net in _PRIVATE_NETS):
        return 3
    return 4


def _key(key: str | bytes) -> bytes:
    return key.encode("ascii") if isinstance(key, str) else key


# --- the record ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, slots=False)
class _Parts:
    signature: bytes
    seq: int
    pairs: dict[bytes, Item]


class ENR:
    """An immutable, decoded node record. Build one with :meth:`from_text`, :meth:`from_rlp` or
    :meth:`build`; never call the constructor directly.

    Two records are equal when their encodings are equal.
    """

    __slots__ = (
        "__dict__", "_node_id", "_pairs", "_public_key", "_raw", "_seq", "_signature", "_verified"
    )

    def __init__(
        self,
        raw: bytes,
        parts: _Parts,
        node_id: bytes | None,
        pk: PublicKey | None,
        verified: bool,
    ) -> None:
        self._raw = raw
        self._signature = parts.signature
        self._seq = parts.seq
        self._pairs = parts.pairs
        self._node_id = node_id
        self._public_key = pk
        self._verified = verified

    # -- decoding --

    @classmethod
    def from_rlp(cls, data: bytes, *, verify: bool = True) -> ENR:
        """Decode a record from its RLP bytes.

        Args:
            data: exactly one RLP list, nothing after it.
            verify: check the identity scheme and signature (default). With False only the
                structure is checked (the record cannot be trusted).

        Raises:
            ENRTooLargeError: more than 300 bytes.
            ENRDecodeError: malformed RLP, not a list, fewer than 2 elements, odd key/value
                count, keys unsorted or duplicated, seq not a canonical integer below 2**64.
            ENRSchemeError: (verify) no ``id`` entry or an unknown identity scheme.
            ENRSignatureError: (verify) bad public key, bad or high-S signature.
        """
        data = bytes(data)
        if verify:
            cached = _VERIFIED.get(data)
            if cached is not None:
                return cached
        if len(data) > MAX_RECORD_SIZE:
            raise ENRTooLargeError(
                f"record is {len(data)} bytes, larger than the {MAX_RECORD_SIZE}-byte limit"
            )
        items = _rlp.decode_untrusted(data)
        parts = _parse_items(items)
        if not verify:
            return cls(data, parts, None, None, verified=False)
        _, sig_end = _rlp.split_first_item(data)
        rest = data[sig_end:]
        content = _rlp.list_prefix(len(rest)) + rest
        scheme = identity_scheme(parts.pairs.get(b"id"))
        verified = scheme.verify(parts.pairs, parts.signature, content)
        record = cls(data, parts, verified.node_id, verified.public_key, verified=True)
        _VERIFIED[data] = record
        if len(_VERIFIED) > _VERIFIED_CACHE_SIZE:
            del _VERIFIED[next(iter(_VERIFIED))]
        return record

    @classmethod
    def from_text(cls, text: str, *, verify: bool = True) -> ENR:
        """Decode ``enr:<base64url>`` (URL-safe alphabet, no padding, nothing after the record).

        Raises:
            ENRDecodeError: missing prefix, padding, standard-alphabet characters, bad base64;
                plus everything :meth:`from_rlp` raises.
        """
        if not isinstance(text, str):
            raise ENRDecodeError("record text must be a string")
        if not text.startswith(_TEXT_PREFIX):
            raise ENRDecodeError("missing 'enr:' prefix for base64-encoded record")
        body = text[len(_TEXT_PREFIX) :]
        if "=" in body:
            raise ENRDecodeError("base64 padding ('=') is not allowed in record text")
        if not _BASE64URL_RE.fullmatch(body):
            bad = next(c for c in body if not _BASE64URL_RE.fullmatch(c))
            hint = " (standard alphabet; use '-' and '_')" if bad in "+/" else ""
            raise ENRDecodeError(f"illegal base64 character {bad!r} in record text{hint}")
        if len(body) % 4 == 1:
            raise ENRDecodeError("illegal base64 data (bad length)")
        if len(body) * 3 // 4 > MAX_RECORD_SIZE:
            raise ENRTooLargeError(
                f"record text encodes {len(body) * 3 // 4} bytes, larger than the"
                f" {MAX_RECORD_SIZE}-byte limit"
            )
        try:
            data = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise ENRDecodeError("illegal base64 data in record text") from None
        return cls.from_rlp(data, verify=verify)

    @classmethod
    def from_any(cls, value: str | bytes, *, verify: bool = True) -> ENR:
        """Decode text (``enr:...``, surrounding whitespace ignored) or RLP bytes."""
        if isinstance(value, (bytes, bytearray, memoryview)):
            return cls.from_rlp(bytes(value), verify=verify)
        return cls.from_text(value.strip(), verify=verify)

    # -- building --

    @classmethod
    def build(
        cls,
        private_key: PrivateKey,
        seq: int = 1,
        *,
        scheme: str | bytes = "v4",
        **fields: Any,
    ) -> ENR:
        """Build and sign a record.

        Keyword fields: ``ip`` / ``ip6`` (address text or ipaddress object), ``tcp``, ``udp``,
        ``tcp6``, ``udp6`` (ports), ``onion3`` (``<56 base32>.onion``, validated); any other
        keyword is stored as given (bytes, int, str or nested lists of those). Pass
        ``extra={b"key": value}`` for keys that are not Python identifiers.

        Raises:
            ENRTooLargeError: the signed record would be larger than 300 bytes.
            OnionAddressError: ``onion3`` is not a valid address.
            ValueError: a port out of range, an address of the wrong family, seq out of range.
        """
        extra = fields.pop("extra", None) or {}
        pairs: dict[bytes, Item] = {}
        for name, value in list(fields.items()) + list(extra.items()):
            if value is not None:
                pairs[_key(name)] = _encode_field(_key(name), value)
        return cls._sign(private_key, seq, pairs, _key(scheme))

    def updated(self, private_key: PrivateKey, **changes: Any) -> ENR:
        """A copy with ``changes`` applied (a value of None removes the key), seq + 1, re-signed.

        Raises:
            ValueError: ``private_key`` is not the key this record was signed with.
            plus everything :meth:`build` raises.
        """
        scheme = identity_scheme(self._pairs.get(b"id"))
        if scheme.node_id(scheme.identity_pairs(private_key)) != self.node_id:
            raise ValueError("private key does not match the record's public key")
        extra = changes.pop("extra", None) or {}
        pairs = dict(self._pairs)
        for name, value in list(changes.items()) + list(extra.items()):
            if value is None:
                pairs.pop(_key(name), None)
            else:
                pairs[_key(name)] = _encode_field(_key(name), value)
        return self._sign(private_key, self._seq + 1, pairs, scheme.name)

    @classmethod
    def _sign(cls, private_key: PrivateKey, seq: int, pairs: dict[bytes, Item], name: bytes) -> ENR:
        if not 0 <= seq < 2**_MAX_SEQ_BITS:
            raise ValueError("seq must be in [0, 2**64)")
        scheme = identity_scheme(name)
        pairs.update(scheme.identity_pairs(private_key))
        flat: list[Item] = [_rlp.encode_uint(seq)]
        for k in sorted(pairs):
            flat += [k, pairs[k]]
        content = _rlp.encode(flat)
        signature = scheme.sign(content, private_key)
        raw = _rlp.encode([signature, *flat])
        if len(raw) > MAX_RECORD_SIZE:
            raise ENRTooLargeError(
                f"record would be {len(raw)} bytes, larger than the {MAX_RECORD_SIZE}-byte limit"
            )
        # We made the signature ourselves: no need to verify it again.
        parts = _parse_items(_rlp.decode_untrusted(raw))
        return cls(raw, parts, None, private_key.public_key if name == b"v4" else None,
                   verified=True)

    # -- encoding --

    def to_rlp(self) -> bytes:
        """The exact RLP bytes of the record."""
        return self._raw

    def to_text(self) -> str:
        """``enr:`` + unpadded URL-safe base64."""
        return _TEXT_PREFIX + base64.urlsafe_b64encode(self._raw).decode("ascii").rstrip("=")

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        bits = [f"seq={self._seq}"]
        try:
            bits.append(f"node_id={self.node_id.hex()[:16]}…")
        except ENRError:
            pass
        for name in ("ip", "ip6", "udp", "tcp", "onion3"):
            value = getattr(self, name)
            if value is not None:
                bits.append(f"{name}={value}")
        return f"ENR({', '.join(bits)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ENR) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    # -- generic access --

    @property
    def seq(self) -> int:
        """Sequence number."""
        return self._seq

    @property
    def signature(self) -> bytes:
        """Raw signature bytes."""
        return self._signature

    @property
    def verified(self) -> bool:
        """True when the signature was checked at decode time."""
        return self._verified

    def keys(self) -> list[bytes]:
        """All keys in record (sorted) order."""
        return list(self._pairs)

    def items(self) -> Iterator[tuple[bytes, Item]]:
        """(key, raw value) pairs in record order; values are bytes or nested lists."""
        return iter(self._pairs.items())

    def get(self, key: str | bytes) -> Item | None:
        """The raw value of any key (bytes or a nested list), or None when absent."""
        return self._pairs.get(_key(key))

    def __contains__(self, key: object) -> bool:
        return isinstance(key, (str, bytes)) and _key(key) in self._pairs

    @property
    def identity_scheme(self) -> str | None:
        """The ``id`` entry as text, e.g. "v4"."""
        return self._decoded(b"id")  # type: ignore[no-any-return]

    @property
    def node_id(self) -> bytes:
        """32-byte node id (computed by the identity scheme).

        Raises:
            ENRSignatureError: (only for records decoded with ``verify=False``) no usable key.
        """
        if self._node_id is None:
            if self._public_key is not None and self._pairs.get(b"id") == b"v4":
                self._node_id = self._public_key.node_id
            else:
                self._node_id = identity_scheme(self._pairs.get(b"id")).node_id(self._pairs)
        return self._node_id

    @property
    def public_key(self) -> PublicKey | None:
        """The secp256k1 public key, or None when absent or malformed."""
        if self._public_key is None:
            self._public_key = self._decoded(b"secp256k1")
        return self._public_key

    # -- well-known entries --

    @cached_property
    def _decoded_entries(self) -> dict[bytes, tuple[Any, str | None]]:
        return {k: _DECODERS[k](v) for k, v in self._pairs.items() if k in _DECODERS}

    def _decoded(self, key: bytes) -> Any:
        entry = self._decoded_entries.get(key)
        return None if entry is None else entry[0]

    def entry_problems(self) -> dict[str, str]:
        """Well-known keys whose values are unusable, with the reason (empty when all good)."""
        return {
            k.decode(): problem for k, (_, problem) in self._decoded_entries.items() if problem
        }

    @property
    def ip(self) -> ipaddress.IPv4Address | None:
        """``ip`` entry, or None when absent or not 4 bytes."""
        return self._decoded(b"ip")  # type: ignore[no-any-return]

    @property
    def ip6(self) -> ipaddress.IPv6Address | None:
        """``ip6`` entry, or None when absent or not 16 bytes."""
        return self._decoded(b"ip6")  # type: ignore[no-any-return]

    @property
    def tcp(self) -> int | None:
        """``tcp`` port."""
        return self._decoded(b"tcp")  # type: ignore[no-any-return]

    @property
    def udp(self) -> int | None:
        """``udp`` port."""
        return self._decoded(b"udp")  # type: ignore[no-any-return]

    @property
    def tcp6(self) -> int | None:
        """``tcp6`` port."""
        return self._decoded(b"tcp6")  # type: ignore[no-any-return]

    @property
    def udp6(self) -> int | None:
        """``udp6`` port."""
        return self._decoded(b"udp6")  # type: ignore[no-any-return]

    @property
    def onion3(self) -> str | None:
        """The ``onion3`` address when present *and valid* (checksum, version, lower case)."""
        return self._decoded(b"onion3")  # type: ignore[no-any-return]

    @property
    def onion3_problem(self) -> str | None:
        """Why the ``onion3`` entry is unusable; None when it is valid or absent."""
        entry = self._decoded_entries.get(b"onion3")
        return None if entry is None else entry[1]

    def endpoint(self) -> Endpoint:
        """The IP and ports go-ethereum would use for this record.

        Both ``ip`` and ``ip6`` valid (present, not multicast): the more global one wins
        (unspecified < loopback < link-local < private < global), ties to IPv4. IPv6 uses
        ``udp6``/``tcp6``, falling back to ``udp``/``tcp``.
        """
        cached: Endpoint | None = self.__dict__.get("_endpoint")
        if cached is not None:
            return cached
        endpoint = self._select_endpoint()
        self.__dict__["_endpoint"] = endpoint  # records are immutable: compute once
        return endpoint

    def _select_endpoint(self) -> Endpoint:
        ip4, ip6 = self.ip, self.ip6
        if ip4 is not None and ip4.is_multicast:
            ip4 = None
        if ip6 is not None and ip6.is_multicast:
            ip6 = None
        if ip6 is not None and (ip4 is None or _locality(ip6) > _locality(ip4)):
            udp6 = self.udp6 if self.udp6 is not None else self.udp
            tcp6 = self.tcp6 if self.tcp6 is not None else self.tcp
            return Endpoint(ip6, udp6, tcp6)
        return Endpoint(ip4, self.udp, self.tcp)


def _parse_items(items: Item) -> _Parts:
    if not isinstance(items, list):
        raise ENRDecodeError("record is not an RLP list")
    if len(items) < 2:
        raise ENRDecodeError("record contains less than two list elements")
    if len(items) % 2:
        raise ENRDecodeError("record contains incomplete k/v pair")
    signature = items[0]
    if not isinstance(signature, bytes):
        raise ENRDecodeError("record signature is a list, want a byte string")
    seq = _rlp.decode_uint_untrusted(items[1], "record seq", _MAX_SEQ_BITS)
    pairs: dict[bytes, Item] = {}
    previous: bytes | None = None
    for i in range(2, len(items), 2):
        key = items[i]
        if not isinstance(key, bytes):
            raise ENRDecodeError("record key is a list, want a byte string")
        if previous is not None and key <= previous:
            if key == previous:
                raise ENRDecodeError(f"record contains duplicate key {key!r}")
            raise ENRDecodeError("record key/value pairs are not sorted by key")
        pairs[key] = items[i + 1]
        previous = key
    return _Parts(signature, seq, pairs)


def _encode_field(key: bytes, value: Any) -> Item:
    if key in (b"ip", b"ip6"):
        family = 4 if key == b"ip" else 6
        addr = ipaddress.ip_address(value)
        if addr.version != family:
            raise ValueError(f"{key.decode()} must be an IPv{family} address, got {value}")
        return bytes(addr.packed)
    if key in (b"tcp", b"udp", b"tcp6", b"udp6", b"quic", b"quic6"):
        port = int(value)
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"{key.decode()} port {port} out of range 0..65535")
        return _rlp.encode_uint(port)
    if key == b"onion3":
        text = value.decode("ascii") if isinstance(value, bytes) else str(value)
        onion3_public_key(text)  # raises OnionAddressError with the reason
        return text.encode("ascii")
    return _encode_any(value)


def _encode_any(value: Any) -> Item:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        raise TypeError("booleans are not ENR values")
    if isinstance(value, int):
        return _rlp.encode_uint(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (list, tuple)):
        return [_encode_any(v) for v in value]
    raise TypeError(f"cannot store {type(value).__name__} in a record")

