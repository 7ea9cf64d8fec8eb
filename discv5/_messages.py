"""discv5 protocol messages: frozen values and their plaintext codec.

Theory of operation (discv5-wire "Protocol Messages"): a message plaintext is one message-type
byte followed by an RLP list whose first element is the request-id (a byte string of at most 8
bytes). The same classes are used to send and to receive.

Decoding follows go-ethereum (``p2p/discover/v5wire/msg.go``), which decodes each message into
a fixed Go struct with no ``rlp:"tail"`` field: a list with fewer *or more* elements than the
message defines is rejected, integers must be canonical and fit their Go type (uint64 for
enr-seq and distances, uint16 for the port, uint8 for NODES total), and request-ids longer than
8 bytes are rejected. Two deliberate differences, both asked for by this package's design:

- a NODES record that fails to decode or verify does not fail the message; it is dropped and
  counted in :attr:`Nodes.invalid_records` (go-ethereum fails the whole message on a malformed
  record and drops unverifiable ones later, one by one);
- PONG's recipient-ip must be 4 or 16 bytes (go-ethereum accepts any length here and fails
  later when it uses the address).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Final, TypeAlias

from enr import ENR, ENRError, Item, _rlp

from ._errors import LocalProtocolError, MessageDecodeError

__all__ = [
    "MAX_REQUEST_ID_SIZE",
    "REQUEST_TYPES",
    "RESPONSE_TYPES",
    "FindNode",
    "Message",
    "MessageType",
    "Nodes",
    "Ping",
    "Pong",
    "Request",
    "Response",
    "TalkRequest",
    "TalkResponse",
    "decode_message_untrusted",
    "encode_message",
    "is_request",
    "response_types_for",
]

MAX_REQUEST_ID_SIZE: Final = 8
"""discv5-wire "Protocol Messages": request-id is at most 8 bytes."""
_MAX_UINT64: Final = 2**64 - 1
_MAX_PORT: Final = 0xFFFF
_MAX_TOTAL: Final = 0xFF  # go-ethereum Nodes.RespCount is a uint8

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


class MessageType(IntEnum):
    """Message type bytes (discv5-wire "Protocol Messages").

    0x07..0x0A (topic discovery) are not implemented and decode as unknown, as in go-ethereum.
    """

    PING = 0x01
    PONG = 0x02
    FINDNODE = 0x03
    NODES = 0x04
    TALKREQ = 0x05
    TALKRESP = 0x06


@dataclass(frozen=True, slots=True)
class Ping:
    """PING (0x01): liveness check; carries the sender's record seq."""

    message_type: ClassVar[MessageType] = MessageType.PING
    request_id: bytes
    """Chosen by the requester, at most 8 bytes."""
    enr_seq: int
    """The sender's current record seq (uint64)."""


@dataclass(frozen=True, slots=True)
class Pong:
    """PONG (0x02): answer to PING, reporting the PING's envelope source endpoint."""

    message_type: ClassVar[MessageType] = MessageType.PONG
    request_id: bytes
    """Copied from the PING."""
    enr_seq: int
    """The responder's current record seq (uint64)."""
    recipient_ip: IPAddress
    """The IP address the PING came from, as the responder saw it."""
    recipient_port: int
    """The UDP port the PING came from (0..65535)."""


@dataclass(frozen=True, slots=True)
class FindNode:
    """FINDNODE (0x03): ask for records at the given log-distances from the recipient."""

    message_type: ClassVar[MessageType] = MessageType.FINDNODE
    request_id: bytes
    """Chosen by the requester, at most 8 bytes."""
    distances: tuple[int, ...]
    """Log-distances as sent; 0 asks for the recipient's own record. Values above 256 and
    duplicates are kept: the responder decides what to do with them."""


@dataclass(frozen=True, slots=True)
class Nodes:
    """NODES (0x04): one of ``total`` messages answering a FINDNODE."""

    message_type: ClassVar[MessageType] = MessageType.NODES
    request_id: bytes
    """Copied from the FINDNODE."""
    total: int
    """Number of NODES messages in this response (0..255)."""
    records: tuple[ENR, ...]
    """The records that decoded and verified, in wire order."""
    invalid_records: int = field(default=0, compare=False)
    """Records dropped at decode time because they were malformed or failed verification."""


@dataclass(frozen=True, slots=True)
class TalkRequest:
    """TALKREQ (0x05): an application request for ``protocol``."""

    message_type: ClassVar[MessageType] = MessageType.TALKREQ
    request_id: bytes
    """Chosen by the requester, at most 8 bytes."""
    protocol: bytes
    """Application protocol name."""
    request: bytes
    """Opaque request payload."""


@dataclass(frozen=True, slots=True)
class TalkResponse:
    """TALKRESP (0x06): the answer to TALKREQ; empty when the protocol is unknown."""

    message_type: ClassVar[MessageType] = MessageType.TALKRESP
    request_id: bytes
    """Copied from the TALKREQ."""
    response: bytes
    """Opaque response payload."""


Request: TypeAlias = Ping | FindNode | TalkRequest
Response: TypeAlias = Pong | Nodes | TalkResponse
Message: TypeAlias = Ping | Pong | FindNode | Nodes | TalkRequest | TalkResponse

REQUEST_TYPES: Final[tuple[type[Request], ...]] = (Ping, FindNode, TalkRequest)
"""Messages that open a request (the receiver answers them)."""
RESPONSE_TYPES: Final[tuple[type[Response], ...]] = (Pong, Nodes, TalkResponse)
"""Messages that answer a request (matched to it by request-id)."""

_RESPONSES: Final[dict[type[Message], tuple[type[Response], ...]]] = {
    Ping: (Pong,),
    FindNode: (Nodes,),
    TalkRequest: (TalkResponse,),
}


def is_request(message: Message) -> bool:
    """True for PING, FINDNODE and TALKREQ."""
    return isinstance(message, REQUEST_TYPES)


def response_types_for(request: Request | type[Request]) -> tuple[type[Response], ...]:
    """The message types that may answer ``request`` (discv5-wire "Protocol Messages").

    Args:
        request: a request message or request class.

    Returns:
        PING -> (Pong,), FINDNODE -> (Nodes,), TALKREQ -> (TalkResponse,).

    Raises:
        LocalProtocolError: ``request`` is not a request.
    """
    cls = request if isinstance(request, type) else type(request)
    try:
        return _RESPONSES[cls]
    except KeyError:
        raise LocalProtocolError(f"{cls.__name__} is not a request message") from None


# --- encoding -----------------------------------------------------------------------------------


def _uint(value: int, what: str, limit: int) -> bytes:
    if isinstance(value, bool) or not 0 <= value <= limit:
        raise LocalProtocolError(f"{what} {value!r} out of range 0..{limit}")
    return _rlp.encode_uint(value)


def encode_message(message: Message) -> bytes:
    """Encode a message as message-pt: type byte || RLP(message-data).

    NODES embeds each record's RLP list as-is (discv5-wire "NODES Response": the records are
    RLP lists, not byte strings).

    Args:
        message: any of the six message values.

    Returns:
        The plaintext to encrypt into a packet.

    Raises:
        LocalProtocolError: a field outside what the wire format can carry (request-id longer
            than 8 bytes, enr-seq or distance outside uint64, port above 65535, total above
            255, recipient address of the wrong type).
    """
    request_id = message.request_id
    if len(request_id) > MAX_REQUEST_ID_SIZE:
        raise LocalProtocolError(
            f"request-id of {len(request_id)} bytes is longer than {MAX_REQUEST_ID_SIZE}"
        )
    items: list[Item]
    if isinstance(message, Ping):
        items = [request_id, _uint(message.enr_seq, "enr_seq", _MAX_UINT64)]
    elif isinstance(message, Pong):
        ip = message.recipient_ip
        if not isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            raise LocalProtocolError("recipient_ip must be an IPv4Address or IPv6Address")
        items = [
            request_id,
            _uint(message.enr_seq, "enr_seq", _MAX_UINT64),
            ip.packed,
            _uint(message.recipient_port, "recipient_port", _MAX_PORT),
        ]
    elif isinstance(message, FindNode):
        items = [request_id, [_uint(d, "distance", _MAX_UINT64) for d in message.distances]]
    elif isinstance(message, Nodes):
        # Splice the records' exact RLP into the list instead of re-encoding them.
        head = _rlp.encode(request_id) + _rlp.encode(_uint(message.total, "total", _MAX_TOTAL))
        records = b"".join(record.to_rlp() for record in message.records)
        payload = head + _rlp.list_prefix(len(records)) + records
        return bytes((MessageType.NODES,)) + _rlp.list_prefix(len(payload)) + payload
    elif isinstance(message, TalkRequest):
        items = [request_id, message.protocol, message.request]
    elif isinstance(message, TalkResponse):
        items = [request_id, message.response]
    else:
        raise LocalProtocolError(f"not a discv5 message: {type(message).__name__}")
    return bytes((message.message_type,)) + _rlp.encode(items)


# --- decoding -----------------------------------------------------------------------------------


def _bytes(item: Item, what: str) -> bytes:
    if not isinstance(item, bytes):
        raise MessageDecodeError(f"{what}: expected a byte string, got a list")
    return item


def _decode_uint(item: Item, what: str, limit: int) -> int:
    """A canonical RLP unsigned integer no larger than ``limit`` (go-ethereum's rlp rules)."""
    if not isinstance(item, bytes):
        raise MessageDecodeError(f"{what}: expected an integer, got a list")
    if item[:1] == b"\x00":
        raise MessageDecodeError(f"{what}: non-canonical integer (leading zero bytes)")
    value = int.from_bytes(item, "big")
    if value > limit:
        raise MessageDecodeError(f"{what}: integer {value} larger than {limit}")
    return value


def _fields(items: list[Item], count: int, name: str) -> None:
    # go-ethereum decodes into structs without "tail" fields: too few and too many list
    # elements are both errors (no forward-compatible extra fields in v5.1 messages).
    if len(items) != count:
        raise MessageDecodeError(f"{name}: expected {count} list elements, got {len(items)}")


def _decode_records(items: Item) -> tuple[tuple[ENR, ...], int]:
    if not isinstance(items, list):
        raise MessageDecodeError("NODES: records must be a list")
    records: list[ENR] = []
    invalid = 0
    for item in items:
        # discv5-theory / discv5-rationale: every received record must be signature-checked.
        # The strict RLP decoder only accepts canonical encodings, so re-encoding the decoded
        # item gives back exactly the bytes that were sent (and that were signed).
        try:
            records.append(ENR.from_rlp(_rlp.encode(item)))
        except ENRError:
            invalid += 1
    return tuple(records), invalid


def decode_message_untrusted(plaintext: bytes | bytearray | memoryview) -> Message:
    """Parse a decrypted message-pt.

    Args:
        plaintext: the decrypted message (untrusted).

    Returns:
        The message. For NODES, records that do not decode or verify are left out and counted
        in ``invalid_records``.

    Raises:
        MessageDecodeError: empty input, unknown message type (including the unimplemented
            topic messages 0x07..0x0A), malformed or non-canonical RLP, trailing bytes, a
            request-id longer than 8 bytes, the wrong number of list elements, a list where a
            byte string belongs (or the reverse), non-canonical or out-of-range integers
            (enr-seq and distances >= 2**64, port > 65535, total > 255), a recipient-ip that is
            not 4 or 16 bytes. Anything else is a bug.
    """
    plaintext = bytes(plaintext)
    if not plaintext:
        raise MessageDecodeError("message contains no data")
    type_byte = plaintext[0]
    try:
        message_type = MessageType(type_byte)
    except ValueError:
        raise MessageDecodeError(f"unknown message type {type_byte:#04x}") from None
    try:
        items = _rlp.decode_untrusted(plaintext[1:])
    except ENRError as exc:
        raise MessageDecodeError(f"{message_type.name}: {exc}") from None
    except RecursionError:
        # Only reachable with nesting deeper than any datagram can carry; never leak it.
        raise MessageDecodeError(f"{message_type.name}: RLP nested too deeply") from None
    name = message_type.name
    if not isinstance(items, list):
        raise MessageDecodeError(f"{name}: message data is not an RLP list")
    if not items:
        raise MessageDecodeError(f"{name}: empty message data list")
    request_id = _bytes(items[0], f"{name} request-id")
    if len(request_id) > MAX_REQUEST_ID_SIZE:
        raise MessageDecodeError(
            f"{name}: request-id of {len(request_id)} bytes is longer than {MAX_REQUEST_ID_SIZE}"
        )

    if message_type is MessageType.PING:
        _fields(items, 2, name)
        return Ping(request_id, _decode_uint(items[1], "PING enr-seq", _MAX_UINT64))
    if message_type is MessageType.PONG:
        _fields(items, 4, name)
        enr_seq = _decode_uint(items[1], "PONG enr-seq", _MAX_UINT64)
        raw_ip = _bytes(items[2], "PONG recipient-ip")
        ip: IPAddress
        if len(raw_ip) == 4:
            ip = ipaddress.IPv4Address(raw_ip)
        elif len(raw_ip) == 16:
            ip = ipaddress.IPv6Address(raw_ip)
        else:
            raise MessageDecodeError(f"PONG recipient-ip of {len(raw_ip)} bytes (want 4 or 16)")
        port = _decode_uint(items[3], "PONG recipient-port", _MAX_PORT)
        return Pong(request_id, enr_seq, ip, port)
    if message_type is MessageType.FINDNODE:
        _fields(items, 2, name)
        distances = items[1]
        if not isinstance(distances, list):
            raise MessageDecodeError("FINDNODE distances must be a list")
        return FindNode(
            request_id,
            tuple(_decode_uint(d, "FINDNODE distance", _MAX_UINT64) for d in distances),
        )
    if message_type is MessageType.NODES:
        _fields(items, 3, name)
        total = _decode_uint(items[1], "NODES total", _MAX_TOTAL)
        records, invalid = _decode_records(items[2])
        return Nodes(request_id, total, records, invalid)
    if message_type is MessageType.TALKREQ:
        _fields(items, 3, name)
        protocol = _bytes(items[1], "TALKREQ protocol")
        return TalkRequest(request_id, protocol, _bytes(items[2], "TALKREQ request"))
    _fields(items, 2, name)  # MessageType.TALKRESP: the enum has no other member
    return TalkResponse(request_id, _bytes(items[1], "TALKRESP response"))
