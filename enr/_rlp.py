"""Thin wrapper over the ``rlp`` package: canonical-only decoding, errors mapped to ENRError.

pyrlp's strict decoder already rejects non-canonical length prefixes and trailing bytes; this
module adds canonical unsigned integers (no leading zero bytes) and the byte-slicing helpers the
record code uses to find the signed content without re-encoding it.
"""

from __future__ import annotations

from typing import TypeAlias

import rlp
from rlp.codec import consume_item, consume_length_prefix, encode_raw, length_prefix

from ._errors import ENRDecodeError

__all__ = [
    "Item",
    "decode_uint_untrusted",
    "decode_untrusted",
    "encode",
    "encode_uint",
    "list_prefix",
    "split_first_item",
]

Item: TypeAlias = "bytes | list[Item]"
"""A decoded RLP item: a byte string or a (nested) list of items."""


def decode_untrusted(data: bytes, error: type[ENRDecodeError] = ENRDecodeError) -> Item:
    """Decode one canonical RLP item that spans all of ``data``.

    Raises:
        ENRDecodeError (or ``error``): empty input, bad or non-canonical length prefix, trailing
            bytes. The message starts with ``rlp:``.
    """
    if not data:
        raise error("rlp: empty input")
    data = bytes(data)
    try:
        item = rlp.decode(data, strict=True)
    except rlp.DecodingError as exc:
        raise error(f"rlp: {_explain(data, exc)}") from None
    except RecursionError:
        raise error("rlp: nested too deeply") from None
    except (IndexError, ValueError, TypeError, OverflowError) as exc:  # defensive: never leak
        raise error(f"rlp: malformed input ({type(exc).__name__})") from None
    # Canonical RLP has exactly one encoding per value, so re-encoding must give back the
    # input. This also guards against a decoder that accepts a non-canonical form by parsing
    # it as something else (rusty-rlp 0.4 drops a list's last element when that element uses
    # a long-string prefix for a short string, instead of failing).
    if encode_raw(item) != data:
        raise error(f"rlp: {_explain(data, None)}")
    # pyrlp returns bytes and lists (of bytes and lists) for raw decoding: already an Item.
    return item  # type: ignore[no-any-return]


def _explain(data: bytes, exc: Exception | None) -> str:
    """A readable reason for a decoding failure.

    pyrlp decodes through the Rust backend (rusty-rlp) when it is installed, whose messages can
    be terse ("Invariant"); on this rare path, ask pyrlp's pure-Python decoder for its wording.
    """
    try:
        _, _, end = consume_item(data, 0)
        if end != len(data):
            return f"{len(data) - end} trailing bytes after the RLP item"
    except rlp.DecodingError as pure:
        return _first_line(pure)
    except (IndexError, ValueError, TypeError, RecursionError):
        pass
    return "non-canonical encoding" if exc is None else _first_line(exc)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def encode(item: Item) -> bytes:
    """RLP-encode bytes and nested lists of bytes (no type inference: ``Item`` only)."""
    return bytes(encode_raw(item))


def encode_uint(value: int) -> bytes:
    """Minimal big-endian bytes of a non-negative integer (0 is the empty string)."""
    if value < 0:
        raise ValueError("RLP integers are unsigned")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def decode_uint_untrusted(
    item: Item, what: str, max_bits: int = 64, error: type[ENRDecodeError] = ENRDecodeError
) -> int:
    """Decode a canonical RLP unsigned integer of at most ``max_bits`` bits.

    Raises:
        ENRDecodeError (or ``error``): a list, leading zero bytes, or too large.
    """
    if not isinstance(item, bytes):
        raise error(f"{what}: expected an integer, got a list")
    if item[:1] == b"\x00":
        raise error(f"{what}: non-canonical integer (leading zero bytes)")
    value = int.from_bytes(item, "big")
    if value.bit_length() > max_bits:
        raise error(f"{what}: integer larger than {max_bits} bits")
    return value


def list_prefix(payload_length: int) -> bytes:
    """The RLP list header for a payload of the given length."""
    return bytes(length_prefix(payload_length, 0xC0))


def split_first_item(encoded_list: bytes) -> tuple[int, int]:
    """For a canonical encoded list, return (payload start, end of the first element).

    The caller has already decoded ``encoded_list`` successfully, so the offsets are valid.
    """
    _, _, _, payload_start = consume_length_prefix(encoded_list, 0)
    _, _, length, first_payload = consume_length_prefix(encoded_list, payload_start)
    return int(payload_start), int(first_payload + length)
