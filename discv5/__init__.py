"""Ethereum Node Discovery v5.1 on trio, with a sans-IO protocol core.

The layers, bottom up (see docs/architecture.md):

* the sans-IO core: :class:`Protocol` (packets, handshake, sessions, requests) with its
  :mod:`events <discv5._events>` and :mod:`messages <discv5._messages>`, the
  :class:`RoutingTable` and the :class:`Lookup` state machine. Bytes and ``now`` in, events
  and bytes out; no sockets, no clock, randomness injected;
* the trio driver: :func:`open_node` gives a running :class:`Node`;
* tools on top: the ``discv5`` command line, the crawler (``python -m discv5.crawl``) and the
  sidecar.

Records, keys, onion3 addresses and enode URLs live in the separate ``enr`` package.
"""

from ._config import Config
from ._errors import (
    DecryptionError,
    Discv5Error,
    HandshakeError,
    LocalProtocolError,
    MessageDecodeError,
    PacketDecodeError,
    RemoteProtocolError,
    RequestError,
    RequestRejected,
    RequestTimeout,
)
from ._events import (
    Event,
    FailureReason,
    PacketDropped,
    RequestFailed,
    RequestReceived,
    ResponseReceived,
    SessionEstablished,
)
from ._lookup import Lookup, Query
from ._messages import (
    FindNode,
    Message,
    Nodes,
    Ping,
    Pong,
    TalkRequest,
    TalkResponse,
    decode_message_untrusted,
    encode_message,
)
from ._node import DatagramSocket, Node, NodeStatistics, TalkHandler, open_node
from ._protocol import Protocol
from ._routing import InsertResult, RoutingTable, TableEntry
from ._types import Address, NodeAddress, NodeId, distance, log_distance

__version__ = "0.1.0"

__all__ = [
    "Address",
    "Config",
    "DatagramSocket",
    "DecryptionError",
    "Discv5Error",
    "Event",
    "FailureReason",
    "FindNode",
    "HandshakeError",
    "InsertResult",
    "LocalProtocolError",
    "Lookup",
    "Message",
    "MessageDecodeError",
    "Node",
    "NodeAddress",
    "NodeId",
    "NodeStatistics",
    "Nodes",
    "PacketDecodeError",
    "PacketDropped",
    "Ping",
    "Pong",
    "Protocol",
    "Query",
    "RemoteProtocolError",
    "RequestError",
    "RequestFailed",
    "RequestReceived",
    "RequestRejected",
    "RequestTimeout",
    "ResponseReceived",
    "RoutingTable",
    "SessionEstablished",
    "TableEntry",
    "TalkHandler",
    "TalkRequest",
    "TalkResponse",
    "__version__",
    "decode_message_untrusted",
    "distance",
    "encode_message",
    "log_distance",
    "open_node",
]
