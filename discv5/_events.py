"""Events the sans-IO core reports through ``Protocol.next_event()``.

Every event is a frozen, slotted dataclass under :class:`Event`; names are past-tense facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from enr import ENR

from ._messages import Message
from ._types import Address, NodeAddress

__all__ = [
    "Event",
    "FailureReason",
    "PacketDropped",
    "RequestFailed",
    "RequestReceived",
    "ResponseReceived",
    "SessionEstablished",
]


class FailureReason(Enum):
    """Why a request we sent did not succeed."""

    TIMEOUT = "timeout"
    """No (complete) response within the request timeout. UDP is lossy and the protocol has
    no negative acknowledgements, so every failure of a sent request ends up here; requests
    that cannot be sent at all are refused by ``send_request`` with LocalProtocolError."""


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of all events."""


@dataclass(frozen=True, slots=True)
class SessionEstablished(Event):
    """A handshake completed; ``enr`` is the peer's record as learned from it."""

    node: NodeAddress
    """The peer's node id and endpoint."""
    enr: ENR
    """The peer's record (from the handshake or the one we already knew)."""
    inbound: bool
    """True when the peer started the handshake (we sent the WHOAREYOU)."""


@dataclass(frozen=True, slots=True)
class RequestReceived(Event):
    """A peer sent us a request (PING, FINDNODE, TALKREQ); answer with ``send_response``."""

    node: NodeAddress
    """Who asked, at which endpoint (answers go to this endpoint)."""
    enr: ENR | None
    """The peer's record when the session knows it."""
    message: Message
    """The decoded request."""


@dataclass(frozen=True, slots=True)
class ResponseReceived(Event):
    """A request we sent was answered. NODES responses arrive once, with every record."""

    request_id: bytes
    """The id ``send_request`` returned."""
    node: NodeAddress
    """The peer that answered."""
    message: Message
    """PONG, TALKRESP, or a NODES with the records of all messages (checked and de-duplicated)."""


@dataclass(frozen=True, slots=True)
class RequestFailed(Event):
    """A request we sent will never be answered."""

    request_id: bytes
    """The id ``send_request`` returned."""
    node: NodeAddress
    """The peer we asked."""
    reason: FailureReason
    """Why."""
    detail: str = ""
    """Human-readable detail."""
    partial: tuple[ENR, ...] = ()
    """For FINDNODE: records from the NODES messages that did arrive before the failure."""


@dataclass(frozen=True, slots=True)
class PacketDropped(Event):
    """A datagram (or the message in it) was discarded; nothing was sent back for it."""

    address: Address
    """Where it came from."""
    reason: str
    """Short category, used as the statistics key (e.g. "decode", "decrypt", "handshake")."""
    detail: str = ""
    """What exactly was wrong."""
