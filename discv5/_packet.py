"""The discv5 wire codec: masked headers, the three authdata layouts, message encryption.

Theory of operation (discv5-wire "Packet Encoding")::

    packet        = masking-iv || masked-header || message
    masked-header = aes_ctr(dest-id[:16], masking-iv, header)
    header        = static-header || authdata
    static-header = protocol-id "discv5" || version (u16) || flag (u8) || nonce (12) ||
                    authdata-size (u16)
    message       = aes_gcm(key, nonce, message-pt, ad = masking-iv || header)

The encoders take every random input (masking IV, nonce, id-nonce, random message) as a
parameter, so they are pure. :func:`decode_packet_untrusted` unmasks and validates a datagram
addressed to us and returns a :class:`Packet` whose message is still encrypted: which key
decrypts it (or whether to answer with WHOAREYOU) is the session layer's decision.

Untrusted input fails one way only: :class:`PacketDecodeError` with a reason string. The checks
run in go-ethereum's order (``p2p/discover/v5wire/encoding.go``, ``Decode`` and
``checkValid``) so that our drop reasons match the reference implementation's.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final, TypeAlias

from ._crypto import GCM_TAG_SIZE, aes_ctr, aes_gcm_decrypt, aes_gcm_encrypt
from ._errors import DecryptionError, LocalProtocolError, PacketDecodeError

__all__ = [
    "HANDSHAKE_AUTHDATA_HEAD_SIZE",
    "MASKING_IV_SIZE",
    "MAX_PACKET_SIZE",
    "MESSAGE_AUTHDATA_SIZE",
    "MIN_MESSAGE_SIZE",
    "MIN_PACKET_SIZE",
    "NONCE_SIZE",
    "PROTOCOL_ID",
    "PROTOCOL_VERSION",
    "STATIC_HEADER_SIZE",
    "WHOAREYOU_AUTHDATA_SIZE",
    "Authdata",
    "Flag",
    "HandshakeAuthdata",
    "MessageAuthdata",
    "Packet",
    "WhoAreYouAuthdata",
    "decode_packet_untrusted",
    "decrypt_message_untrusted",
    "encode_handshake_packet",
    "encode_message_packet",
    "encode_random_packet",
    "encode_whoareyou_packet",
    "handshake_packet_size",
    "message_packet_size",
]

# --- constants (discv5-wire "Protocol Header", "UDP Communication") -----------------------------

PROTOCOL_ID: Final = b"discv5"
"""The unmasked protocol-id of every discv5 packet."""
PROTOCOL_VERSION: Final = 1
"""The header version we send; any version >= 1 is accepted (go-ethereum ``minVersion``)."""
MASKING_IV_SIZE: Final = 16
NONCE_SIZE: Final = 12
NODE_ID_SIZE: Final = 32
ID_NONCE_SIZE: Final = 16
STATIC_HEADER_SIZE: Final = 23
"""protocol-id (6) + version (2) + flag (1) + nonce (12) + authdata-size (2)."""
MIN_PACKET_SIZE: Final = 63
"""discv5-wire "UDP Communication": smaller packets are rejected (63 = a WHOAREYOU)."""
MAX_PACKET_SIZE: Final = 1280
"""discv5-wire "UDP Communication": no packet may be larger."""
MIN_MESSAGE_SIZE: Final = 48
"""go-ethereum ``minMessageSize``: bytes needed after the static header unless flag = 1
(a 32-byte src-id plus the 16-byte GCM tag)."""
MESSAGE_AUTHDATA_SIZE: Final = 32
"""discv5-wire "Ordinary Message Packet": authdata = src-id."""
WHOAREYOU_AUTHDATA_SIZE: Final = 24
"""discv5-wire "WHOAREYOU Packet": authdata = id-nonce (16) || enr-seq (u64)."""
HANDSHAKE_AUTHDATA_HEAD_SIZE: Final = 34
"""discv5-wire "Handshake Message Packet": src-id (32) || sig-size (u8) || eph-key-size (u8)."""

_HEADER_END: Final = MASKING_IV_SIZE + STATIC_HEADER_SIZE  # 39: where authdata starts
_STATIC_HEADER: Final = struct.Struct(">6sHB12sH")
_MAX_AUTHDATA_SIZE: Final = 0xFFFF
_MAX_UINT64: Final = 2**64 - 1
_SPECULATIVE_END: Final = _HEADER_END + MESSAGE_AUTHDATA_SIZE  # 71


class Flag(IntEnum):
    """The header flag: which authdata layout follows (discv5-wire "Protocol Header")."""

    MESSAGE = 0
    """Ordinary message packet; authdata = src-id."""
    WHOAREYOU = 1
    """Handshake challenge; authdata = id-nonce || enr-seq; no message."""
    HANDSHAKE = 2
    """Handshake answer carrying the first message under the new keys."""


_FLAGS: Final = tuple(Flag)


@dataclass(frozen=True, slots=True)
class MessageAuthdata:
    """Authdata of an ordinary message packet (flag 0)."""

    src_id: bytes
    """Node id of the sender (32 bytes)."""


@dataclass(frozen=True, slots=True)
class WhoAreYouAuthdata:
    """Authdata of a WHOAREYOU packet (flag 1)."""

    id_nonce: bytes
    """16 random bytes chosen by the challenger."""
    enr_seq: int
    """Seq of the challenged node's record as the challenger knows it; 0 if it has none."""


@dataclass(frozen=True, slots=True)
class HandshakeAuthdata:
    """Authdata of a handshake message packet (flag 2)."""

    src_id: bytes
    """Node id of the sender (32 bytes)."""
    id_signature: bytes
    """sig-size bytes; 64 for "v4" (the length is not checked here, see ``id_verify``)."""
    eph_pubkey: bytes
    """eph-key-size bytes; 33 (compressed) for "v4" (not checked here either)."""
    record: bytes | None
    """The sender's ENR as raw RLP, or None when the packet carries none (not yet decoded)."""


Authdata: TypeAlias = MessageAuthdata | WhoAreYouAuthdata | HandshakeAuthdata


@dataclass(frozen=True, slots=True)
class Packet:
    """A decoded (unmasked) packet whose message is still encrypted."""

    masking_iv: bytes
    """The 16 clear bytes at the start of the datagram."""
    flag: Flag
    """Which of the three packet kinds this is."""
    nonce: bytes
    """The 12-byte header nonce (the GCM nonce; a WHOAREYOU echoes the request's)."""
    authdata: Authdata
    """The parsed authdata; its type matches ``flag``."""
    header: bytes
    """The exact unmasked static header || authdata."""
    message: bytes
    """AES-GCM ciphertext with tag; empty for WHOAREYOU."""

    @property
    def message_ad(self) -> bytes:
        """discv5-wire "Protocol Header": message-ad = masking-iv || header (unmasked)."""
        return self.masking_iv + self.header

    @property
    def challenge_data(self) -> bytes:
        """discv5-theory "Handshake Steps", step 3: for a WHOAREYOU, masking-iv || header.

        Same bytes as :attr:`message_ad`; only meaningful for ``Flag.WHOAREYOU``.
        """
        return self.masking_iv + self.header

    @property
    def src_id(self) -> bytes | None:
        """The sender's node id (flags 0 and 2); None for WHOAREYOU, which carries none."""
        authdata = self.authdata
        if isinstance(authdata, WhoAreYouAuthdata):
            return None
        return authdata.src_id


# --- sizes --------------------------------------------------------------------------------------


def message_packet_size(plaintext_size: int) -> int:
    """Datagram size of an ordinary message packet carrying ``plaintext_size`` bytes.

    masking-iv (16) + static header (23) + src-id (32) + plaintext + GCM tag (16). The encoders
    do not enforce the 1280-byte limit; callers use this to keep messages within it.
    """
    return _HEADER_END + MESSAGE_AUTHDATA_SIZE + plaintext_size + GCM_TAG_SIZE


def handshake_packet_size(
    plaintext_size: int, *, record_size: int = 0, sig_size: int = 64, eph_key_size: int = 33
) -> int:
    """Datagram size of a handshake packet ("v4" defaults: 64-byte signature, 33-byte key).

    A message that fits an ordinary packet can overflow the handshake packet re-sending it:
    the handshake authdata adds 2 + sig + key + record bytes (about 400 with a full record).
    """
    authdata = HANDSHAKE_AUTHDATA_HEAD_SIZE + sig_size + eph_key_size + record_size
    return _HEADER_END + authdata + plaintext_size + GCM_TAG_SIZE


# --- encoding -----------------------------------------------------------------------------------


def _check_size(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise LocalProtocolError(f"{name} must be {size} bytes, got {len(value)}")


def _header(flag: Flag, nonce: bytes, authdata: bytes) -> bytes:
    _check_size("nonce", nonce, NONCE_SIZE)
    if len(authdata) > _MAX_AUTHDATA_SIZE:
        raise LocalProtocolError(f"authdata of {len(authdata)} bytes overflows authdata-size")
    return _STATIC_HEADER.pack(PROTOCOL_ID, PROTOCOL_VERSION, flag, nonce, len(authdata)) + authdata


def _mask(dest_id: bytes, masking_iv: bytes, header: bytes) -> bytes:
    """masking-iv || masked-header (discv5-wire "Protocol Header")."""
    _check_size("dest_id", dest_id, NODE_ID_SIZE)
    _check_size("masking_iv", masking_iv, MASKING_IV_SIZE)
    return masking_iv + aes_ctr(dest_id[:16], masking_iv, header)


def encode_message_packet(
    *,
    dest_id: bytes,
    src_id: bytes,
    masking_iv: bytes,
    nonce: bytes,
    key: bytes,
    plaintext: bytes,
) -> bytes:
    """Build an ordinary message packet (flag 0) encrypted with an established session key.

    Args:
        dest_id: recipient's node id (its first 16 bytes are the masking key).
        src_id: our node id.
        masking_iv: 16 fresh random bytes.
        nonce: the 12-byte message nonce (never reused with the same key).
        key: our session encryption key (16 bytes).
        plaintext: message-pt from ``encode_message``.

    Returns:
        The datagram. Its size is not limited here: the caller keeps it within 1280 bytes.

    Raises:
        LocalProtocolError: an id, IV or nonce of the wrong size.
    """
    _check_size("src_id", src_id, NODE_ID_SIZE)
    header = _header(Flag.MESSAGE, nonce, src_id)
    _check_size("masking_iv", masking_iv, MASKING_IV_SIZE)
    ciphertext = aes_gcm_encrypt(key, nonce, plaintext, masking_iv + header)
    return _mask(dest_id, masking_iv, header) + ciphertext


def encode_random_packet(
    *,
    dest_id: bytes,
    src_id: bytes,
    masking_iv: bytes,
    nonce: bytes,
    random_message: bytes,
) -> bytes:
    """Build the ordinary message packet that starts a handshake (flag 0, random content).

    discv5-theory "Handshake Steps", step 1: with no session, the initiator sends a message
    packet whose message is random bytes; the recipient cannot decrypt it and answers with
    WHOAREYOU echoing ``nonce``. go-ethereum sends 20 random bytes.

    Args:
        dest_id: recipient's node id.
        src_id: our node id.
        masking_iv: 16 fresh random bytes.
        nonce: 12 random bytes (remember them to match the WHOAREYOU).
        random_message: the random "ciphertext" (at least 16 bytes so the packet is not
            rejected as too short).

    Returns:
        The datagram.

    Raises:
        LocalProtocolError: an id, IV or nonce of the wrong size.
    """
    _check_size("src_id", src_id, NODE_ID_SIZE)
    header = _header(Flag.MESSAGE, nonce, src_id)
    return _mask(dest_id, masking_iv, header) + random_message


def encode_whoareyou_packet(
    *,
    dest_id: bytes,
    masking_iv: bytes,
    nonce: bytes,
    id_nonce: bytes,
    enr_seq: int,
) -> tuple[bytes, bytes]:
    """Build a WHOAREYOU packet (flag 1).

    Args:
        dest_id: node id of the node we challenge.
        masking_iv: 16 fresh random bytes.
        nonce: the nonce of the packet we could not decrypt (discv5-wire "WHOAREYOU Packet").
        id_nonce: 16 fresh random bytes.
        enr_seq: seq of the challenged node's record we hold, 0 if none.

    Returns:
        (datagram, challenge-data): challenge-data = masking-iv || unmasked header, the HKDF
        salt and signature input of the handshake that answers this challenge.

    Raises:
        LocalProtocolError: a field of the wrong size, or enr_seq outside [0, 2**64).
    """
    _check_size("id_nonce", id_nonce, ID_NONCE_SIZE)
    if not 0 <= enr_seq <= _MAX_UINT64:
        raise LocalProtocolError(f"enr_seq {enr_seq} does not fit in a uint64")
    header = _header(Flag.WHOAREYOU, nonce, id_nonce + enr_seq.to_bytes(8, "big"))
    datagram = _mask(dest_id, masking_iv, header)
    return datagram, masking_iv + header


def encode_handshake_packet(
    *,
    dest_id: bytes,
    src_id: bytes,
    masking_iv: bytes,
    nonce: bytes,
    key: bytes,
    plaintext: bytes,
    id_signature: bytes,
    eph_pubkey: bytes,
    record: bytes | None,
) -> bytes:
    """Build a handshake message packet (flag 2).

    authdata = src-id || sig-size || eph-key-size || id-signature || eph-pubkey || record
    (discv5-wire "Handshake Message Packet"); the message is encrypted with the new
    initiator-key and the AD covers the whole header, record included.

    Args:
        dest_id: node id of the WHOAREYOU sender.
        src_id: our node id.
        masking_iv: 16 fresh random bytes.
        nonce: a fresh 12-byte nonce (not the WHOAREYOU's).
        key: the new initiator-key.
        plaintext: message-pt of the request being re-sent.
        id_signature: from ``id_sign`` (64 bytes for "v4").
        eph_pubkey: our compressed ephemeral public key (33 bytes for "v4").
        record: our ENR's RLP, or None to leave it out.

    Returns:
        The datagram.

    Raises:
        LocalProtocolError: an id, IV or nonce of the wrong size, a signature or key longer
            than 255 bytes, or authdata longer than 65535 bytes.
    """
    _check_size("src_id", src_id, NODE_ID_SIZE)
    if len(id_signature) > 0xFF or len(eph_pubkey) > 0xFF:
        raise LocalProtocolError("id_signature and eph_pubkey must each be at most 255 bytes")
    authdata = b"".join(
        (
            src_id,
            bytes((len(id_signature), len(eph_pubkey))),
            id_signature,
            eph_pubkey,
            record or b"",
        )
    )
    header = _header(Flag.HANDSHAKE, nonce, authdata)
    _check_size("masking_iv", masking_iv, MASKING_IV_SIZE)
    ciphertext = aes_gcm_encrypt(key, nonce, plaintext, masking_iv + header)
    return _mask(dest_id, masking_iv, header) + ciphertext


# --- decoding -----------------------------------------------------------------------------------


def decode_packet_untrusted(
    data: bytes | bytearray | memoryview, local_id: bytes, *, max_size: int = MAX_PACKET_SIZE
) -> Packet:
    """Unmask and parse a datagram addressed to us; the message stays encrypted.

    Checks, in go-ethereum's order: size (63..max_size), protocol-id, version >= 1, at least
    48 bytes after the static header unless WHOAREYOU, authdata-size within the packet, flag
    in {0, 1, 2}, then the authdata layout of the flag. For WHOAREYOU, bytes after the
    authdata are ignored (go-ethereum does the same).

    Args:
        data: the datagram as received (untrusted).
        local_id: our 32-byte node id; its first 16 bytes unmask the header.
        max_size: largest datagram accepted.

    Returns:
        The packet.

    Raises:
        PacketDecodeError: the datagram is not a valid discv5 packet for us; the message says
            why. Anything else is a bug.
    """
    data = bytes(data)
    size = len(data)
    # discv5-wire "UDP Communication": 63 bytes (a WHOAREYOU) minimum, 1280 maximum.
    if size < MIN_PACKET_SIZE:
        raise PacketDecodeError(f"packet too short: {size} bytes, minimum {MIN_PACKET_SIZE}")
    if size > max_size:
        raise PacketDecodeError(f"packet too large: {size} bytes, maximum {max_size}")
    masking_iv = data[:MASKING_IV_SIZE]
    masking_key = local_id[:16]
    # CTR is a stream cipher, so the header can be unmasked in one pass from the IV. Unmask
    # enough for the common case (static header + a message packet's 32-byte authdata) up
    # front; a longer (handshake) header is unmasked again once its size is known.
    unmasked = aes_ctr(masking_key, masking_iv, data[MASKING_IV_SIZE:_SPECULATIVE_END])
    protocol_id, version, flag, nonce, authdata_size = _STATIC_HEADER.unpack_from(unmasked)
    # discv5-wire "Protocol Header": a wrong protocol-id after unmasking means the packet is
    # not discv5 (or not for us); go-ethereum passes such packets on to discv4.
    if protocol_id != PROTOCOL_ID:
        raise PacketDecodeError("invalid packet header: protocol-id is not 'discv5'")
    if version < PROTOCOL_VERSION:
        raise PacketDecodeError(f"header version {version} below minimum {PROTOCOL_VERSION}")
    remaining = size - _HEADER_END
    if flag != Flag.WHOAREYOU and remaining < MIN_MESSAGE_SIZE:
        raise PacketDecodeError(
            f"message/handshake packet too short: {remaining} bytes after the static header,"
            f" minimum {MIN_MESSAGE_SIZE}"
        )
    if authdata_size > remaining:
        raise PacketDecodeError(
            f"authdata-size {authdata_size} exceeds the {remaining} bytes left in the packet"
        )
    if flag > Flag.HANDSHAKE:
        raise PacketDecodeError(f"invalid flag {flag} in header")

    authdata_end = _HEADER_END + authdata_size
    if authdata_end <= _SPECULATIVE_END:
        header = unmasked[: STATIC_HEADER_SIZE + authdata_size]
    else:
        header = aes_ctr(masking_key, masking_iv, data[MASKING_IV_SIZE:authdata_end])
    raw_authdata = header[STATIC_HEADER_SIZE:]
    authdata: Authdata
    message = data[authdata_end:]
    if flag == Flag.MESSAGE:
        # discv5-wire "Ordinary Message Packet": authdata is exactly the src-id.
        if authdata_size != MESSAGE_AUTHDATA_SIZE:
            raise PacketDecodeError(f"invalid authdata size {authdata_size} for message packet")
        authdata = MessageAuthdata(src_id=raw_authdata)
    elif flag == Flag.WHOAREYOU:
        # discv5-wire "WHOAREYOU Packet": id-nonce || enr-seq, and no message.
        if authdata_size != WHOAREYOU_AUTHDATA_SIZE:
            raise PacketDecodeError(f"invalid authdata size {authdata_size} for WHOAREYOU")
        authdata = WhoAreYouAuthdata(
            id_nonce=raw_authdata[:ID_NONCE_SIZE],
            enr_seq=int.from_bytes(raw_authdata[ID_NONCE_SIZE:], "big"),
        )
        message = b""
    else:
        authdata = _decode_handshake_authdata(raw_authdata)
    return Packet(
        masking_iv=masking_iv,
        flag=_FLAGS[flag],
        nonce=nonce,
        authdata=authdata,
        header=header,
        message=message,
    )


def _decode_handshake_authdata(raw: bytes) -> HandshakeAuthdata:
    """discv5-wire "Handshake Message Packet" authdata; sizes as go-ethereum checks them."""
    if len(raw) < HANDSHAKE_AUTHDATA_HEAD_SIZE:
        raise PacketDecodeError(f"authdata size {len(raw)} too small for handshake packet")
    sig_size = raw[32]
    key_size = raw[33]
    key_start = HANDSHAKE_AUTHDATA_HEAD_SIZE + sig_size
    record_start = key_start + key_size
    if len(raw) < record_start:
        raise PacketDecodeError(
            f"handshake authdata too short for sig-size {sig_size} and eph-key-size {key_size}"
        )
    # The record may be absent (0 bytes): the initiator leaves it out when the challenger's
    # enr-seq shows it already has the current record.
    record = raw[record_start:]
    return HandshakeAuthdata(
        src_id=raw[:32],
        id_signature=raw[HANDSHAKE_AUTHDATA_HEAD_SIZE:key_start],
        eph_pubkey=raw[key_start:record_start],
        record=record or None,
    )


def decrypt_message_untrusted(packet: Packet, key: bytes) -> bytes:
    """Decrypt and authenticate the message of a flag-0 or flag-2 packet.

    Args:
        packet: from :func:`decode_packet_untrusted`.
        key: the session key the sender encrypted with (our read key).

    Returns:
        message-pt (type byte || RLP), to be parsed with ``decode_message_untrusted``.

    Raises:
        DecryptionError: a WHOAREYOU (no message), a message shorter than the tag, or GCM
            authentication failed. Anything else is a bug.
    """
    if packet.flag == Flag.WHOAREYOU:
        raise DecryptionError("a WHOAREYOU packet carries no message")
    if len(packet.message) < GCM_TAG_SIZE:
        raise DecryptionError(f"message of {len(packet.message)} bytes is shorter than the tag")
    return aes_gcm_decrypt(key, packet.nonce, packet.message, packet.message_ad)
