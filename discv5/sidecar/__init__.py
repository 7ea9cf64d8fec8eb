"""Pieces for a relay's sidecar or init container: static-nodes.json upkeep, the admin RPC.

``discv5 sidecar`` runs :class:`Sidecar`; the parts are usable on their own.
"""

from ._rpc import AdminRPC, RPCError, RPCUnavailable
from ._sidecar import Log, RoundReport, Sidecar, SidecarSettings, normalize_onion
from ._static_nodes import (
    StaticNodes,
    StaticNodesError,
    atomic_write,
    check_enode,
    read_enode_list,
)

__all__ = [
    "AdminRPC",
    "Log",
    "RPCError",
    "RPCUnavailable",
    "RoundReport",
    "Sidecar",
    "SidecarSettings",
    "StaticNodes",
    "StaticNodesError",
    "atomic_write",
    "check_enode",
    "normalize_onion",
    "read_enode_list",
]
