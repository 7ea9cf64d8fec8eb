"""The discv5 exception hierarchy; each class says whose fault the error is.

``RemoteProtocolError`` and its subclasses are raised only inside the sans-IO core and are
turned into ``PacketDropped`` events (with the reason) at ``receive_datagram``: they never escape
to the caller. ``RequestError`` subclasses are what the trio driver's awaitables raise.
"""

from __future__ import annotations

__all__ = [
    "DecryptionError",
    "Discv5Error",
    "HandshakeError",
    "LocalProtocolError",
    "MessageDecodeError",
    "PacketDecodeError",
    "RemoteProtocolError",
    "RequestError",
    "RequestRejected",
    "RequestTimeout",
]


class Discv5Error(Exception):
    """Base class of every error raised by ``discv5``."""


class LocalProtocolError(Discv5Error):
    """You asked for something the protocol or the current state forbids."""


class RemoteProtocolError(Discv5Error):
    """The peer's bytes violate the protocol."""


class PacketDecodeError(RemoteProtocolError):
    """A datagram is not a valid discv5 packet (size, header, authdata)."""


class MessageDecodeError(RemoteProtocolError):
    """A decrypted message is malformed (type, RLP, request-id, fields)."""


class DecryptionError(RemoteProtocolError):
    """AES-GCM authentication failed: wrong keys or a corrupted packet."""


class HandshakeError(RemoteProtocolError):
    """A handshake is invalid: bad id-signature, ephemeral key or record, or no challenge."""


class RequestError(Discv5Error):
    """A request made through the driver did not succeed."""


class RequestTimeout(RequestError):
    """No (complete) response arrived in time."""


class RequestRejected(RequestError):
    """The request could not be sent or was refused (unusable ENR, request to ourselves...)."""
