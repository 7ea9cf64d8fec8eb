"""Sessions and the WHOAREYOU handshake, as pure functions over packets, keys and ``rng``.

discv5-theory "Sessions", steps 1-5. The initiator A sends a message it cannot encrypt (no
session: random bytes); the recipient B answers with WHOAREYOU (a challenge quoting the packet's
nonce); A answers with a handshake packet carrying an ephemeral key, an id-signature over the
challenge and, when B's copy is stale, A's record; both derive the same two AES keys from ECDH +
HKDF. Sessions are keyed by (node id, IP, port): a packet from the same node id at another
endpoint is never decrypted with a session made elsewhere (discv5-theory "Session Cache").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from enr import ENR, ENRError, PrivateKey, PublicKey

from . import _crypto, _packet
from ._errors import HandshakeError
from ._types import NodeAddress

__all__ = [
    "Challenge",
    "Session",
    "accept_handshake",
    "make_handshake",
]

Rng = Callable[[int], bytes]


@dataclass(slots=True)
class Session:
    """Keys agreed with one peer at one endpoint, and our outgoing message counter."""

    node: NodeAddress
    """Peer and endpoint this session is bound to."""
    encrypt_key: bytes
    """Key for packets we send."""
    decrypt_key: bytes
    """Key for packets we receive."""
    enr: ENR | None
    """The peer's record, when known."""
    counter: int = 0
    """Messages sent so far; the first 4 bytes of every nonce (discv5-theory "Session Cache")."""
    old_decrypt_keys: tuple[bytes, ...] = ()
    """Receive keys of the sessions this one replaced, newest first (at most two). When both
    sides start a handshake at once, each can end up sending with the keys of a different
    handshake; keeping recent receive keys lets both directions decrypt (sigp/discv5 keeps
    "old keys" for the same reason)."""

    def next_nonce(self, rng: Rng) -> bytes:
        """A fresh 12-byte nonce: 32-bit message counter || 64 random bits."""
        self.counter = (self.counter + 1) & 0xFFFFFFFF
        return self.counter.to_bytes(4, "big") + rng(8)


@dataclass(frozen=True, slots=True)
class Challenge:
    """A WHOAREYOU we sent and are waiting to see answered by a handshake."""

    node: NodeAddress
    """Who we challenged, at which endpoint."""
    datagram: bytes
    """The exact WHOAREYOU datagram: re-sent unchanged while the challenge is pending."""
    challenge_data: bytes
    """masking-iv || static-header || authdata of that WHOAREYOU (the HKDF salt)."""
    known_enr: ENR | None
    """The record we held for the node when we challenged it (its seq went into enr-seq)."""
    expires_at: float
    """When the challenge is forgotten."""
    resends: int = field(default=0)
    """How many times the identical WHOAREYOU went out again."""


def make_handshake(
    *,
    local_key: PrivateKey,
    local_enr: ENR,
    remote: NodeAddress,
    remote_enr: ENR,
    whoareyou: _packet.Packet,
    plaintext: bytes,
    rng: Rng,
) -> tuple[bytes, bytes, Session]:
    """Answer a WHOAREYOU as the initiator: the handshake datagram, its nonce, the session.

    Args:
        local_key: our static key (signs the id-signature).
        local_enr: our current record; included when the challenge's enr-seq is lower.
        remote: the peer and endpoint the challenge came from.
        remote_enr: the peer's record (its public key is the ECDH peer key).
        whoareyou: the decoded WHOAREYOU packet.
        plaintext: the request message to re-send inside the handshake.
        rng: randomness (ephemeral key, masking IV, nonce).

    Raises:
        HandshakeError: the peer's record has no usable public key.
    """
    authdata = whoareyou.authdata
    assert isinstance(authdata, _packet.WhoAreYouAuthdata)
    remote_key = remote_enr.public_key
    if remote_key is None:
        raise HandshakeError("cannot answer WHOAREYOU: the peer's record has no public key")
    local_id = local_enr.node_id
    eph_key = PrivateKey.generate(rng)
    eph_pubkey = eph_key.public_key.compressed
    challenge_data = whoareyou.challenge_data
    keys = _crypto.derive_session_keys(
        _crypto.ecdh(eph_key, remote_key), local_id, remote.node_id, challenge_data
    )
    id_signature = _crypto.id_sign(local_key, challenge_data, eph_pubkey, remote.node_id)
    # discv5-wire "Handshake Message Packet": the record MUST be present when the challenge's
    # enr-seq is 0 (the challenger has none) and is included whenever its copy is older than
    # ours (go-ethereum). The first rule matters only for a record with seq 0.
    record = (
        local_enr.to_rlp()
        if authdata.enr_seq == 0 or authdata.enr_seq < local_enr.seq
        else None
    )
    session = Session(remote, keys.initiator_key, keys.recipient_key, remote_enr)
    nonce = session.next_nonce(rng)
    datagram = _packet.encode_handshake_packet(
        dest_id=remote.node_id,
        src_id=local_id,
        masking_iv=rng(16),
        nonce=nonce,
        key=session.encrypt_key,
        plaintext=plaintext,
        id_signature=id_signature,
        eph_pubkey=eph_pubkey,
        record=record,
    )
    return datagram, nonce, session


def accept_handshake(
    *,
    local_key: PrivateKey,
    local_id: bytes,
    challenge: Challenge,
    packet: _packet.Packet,
) -> tuple[Session, bytes]:
    """Check a handshake packet against our challenge; return the session and the plaintext.

    Raises:
        HandshakeError: no record when we knew none, a record that does not verify or belongs
            to another node, a bad ephemeral key or id-signature.
        DecryptionError: the message does not decrypt with the derived keys.
    """
    authdata = packet.authdata
    assert isinstance(authdata, _packet.HandshakeAuthdata)
    remote = challenge.node
    enr = challenge.known_enr
    if authdata.record is not None:
        try:
            sent = ENR.from_rlp(authdata.record)
        except ENRError as exc:
            raise HandshakeError(f"record in handshake is invalid: {exc}") from None
        if sent.node_id != remote.node_id:
            raise HandshakeError("record in handshake belongs to another node id")
        if enr is None or sent.seq > enr.seq:
            enr = sent
    if enr is None:
        raise HandshakeError("handshake carries no record and we know none for the node")
    remote_key = enr.public_key
    if remote_key is None:
        raise HandshakeError("the node's record has no usable public key")
    if len(authdata.eph_pubkey) != 33:
        raise HandshakeError("ephemeral key must be 33 bytes (compressed)")
    try:
        eph_key = PublicKey.from_bytes(authdata.eph_pubkey)
    except ENRError:
        raise HandshakeError("ephemeral key is not a valid secp256k1 point") from None
    if not _crypto.id_verify(
        remote_key, authdata.id_signature, challenge.challenge_data, authdata.eph_pubkey, local_id
    ):
        raise HandshakeError("invalid id-signature")
    keys = _crypto.derive_session_keys(
        _crypto.ecdh(local_key, eph_key), remote.node_id, local_id, challenge.challenge_data
    )
    plaintext = _packet.decrypt_message_untrusted(packet, keys.initiator_key)
    return Session(remote, keys.recipient_key, keys.initiator_key, enr), plaintext
