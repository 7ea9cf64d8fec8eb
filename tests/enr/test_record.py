"""ENR decoding, encoding and building: exact round trips, every strict check, lenient entries.

The invalid records are made by hand (tests/enr/_helpers.make_record): RLP-encoded with the
``rlp`` package and signed with PrivateKey.sign(keccak256(content)), so every record below is
validly signed unless the test is about the signature.
"""

from __future__ import annotations

import ipaddress

import pytest
import rlp

from enr import (
    ENR,
    MAX_RECORD_SIZE,
    ENRDecodeError,
    ENRSchemeError,
    ENRSignatureError,
    ENRTooLargeError,
    Item,
    OnionAddressError,
    PrivateKey,
    keccak256,
    onion3_from_public_key,
)

from ._helpers import (
    KEY_A,
    KEY_B,
    SECP256K1_N,
    content_of,
    make_record,
    off_curve_x,
    onion3_label,
    to_text,
    uint,
)

EIP778_TEXT = (
    "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RR"
    "cy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8"
)
"""The EIP-778 example record (enr_vectors.json valid_records[eip778-example])."""

ONION = onion3_from_public_key(bytes(range(32)))
BAD_CHECKSUM_ONION = onion3_label(bytes(range(32)), b"\x00\x00", 3)
VERSION_2_ONION = onion3_label(bytes(range(32)), None, 2)


# --- building and accessors ---------------------------------------------------------------------


def test_build_and_accessors() -> None:
    record = ENR.build(
        KEY_A,
        7,
        ip="10.1.2.3",
        ip6="2001:db8::1",
        tcp=30303,
        udp=30304,
        tcp6=30305,
        udp6=30306,
        onion3=ONION,
    )
    assert record.seq == 7
    assert record.verified
    assert record.identity_scheme == "v4"
    assert record.ip == ipaddress.IPv4Address("10.1.2.3")
    assert record.ip6 == ipaddress.IPv6Address("2001:db8::1")
    assert (record.tcp, record.udp, record.tcp6, record.udp6) == (30303, 30304, 30305, 30306)
    assert record.onion3 == ONION
    assert record.onion3_problem is None
    assert record.public_key == KEY_A.public_key
    assert record.node_id == KEY_A.public_key.node_id
    assert record.get("secp256k1") == KEY_A.public_key.compressed
    assert record.get(b"id") == b"v4"
    assert record.get("missing") is None
    assert "ip" in record
    assert b"ip6" in record
    assert "quic" not in record
    assert 5 not in record
    assert record.keys() == sorted(record.keys())
    assert record.entry_problems() == {}
    assert "seq=7" in repr(record)
    assert "ip=10.1.2.3" in repr(record)


def test_build_minimal_record() -> None:
    record = ENR.build(KEY_A)
    assert record.seq == 1
    assert record.keys() == [b"id", b"secp256k1"]
    assert record.ip is None
    assert record.tcp is None
    assert record.onion3 is None
    assert record.onion3_problem is None
    assert record.endpoint() == (None, None, None)


def test_build_is_deterministic_and_low_s() -> None:
    one = ENR.build(KEY_A, 3, ip="1.2.3.4", udp=1)
    two = ENR.build(KEY_A, 3, ip="1.2.3.4", udp=1)
    assert one.to_rlp() == two.to_rlp()
    assert int.from_bytes(one.signature[32:], "big") <= SECP256K1_N // 2


def test_build_unknown_keys_and_values() -> None:
    record = ENR.build(
        KEY_A,
        extra={b"\x00raw": b"\xff\x00", "eth": [[b"\x01\x02\x03\x04", 0]], "z": "text"},
        n=300,
    )
    assert record.get(b"\x00raw") == b"\xff\x00"
    assert record.get("eth") == [[b"\x01\x02\x03\x04", b""]]
    assert record.get("z") == b"text"
    assert record.get("n") == b"\x01\x2c"
    assert record.entry_problems() == {}


@pytest.mark.parametrize(
    ("fields", "error", "reason"),
    [
        ({"ip": "::1"}, ValueError, "IPv4"),
        ({"ip6": "127.0.0.1"}, ValueError, "IPv6"),
        ({"tcp": 65536}, ValueError, "out of range"),
        ({"udp": -1}, ValueError, "out of range"),
        ({"onion3": ONION.upper()}, OnionAddressError, "lower case"),
        ({"onion3": ONION[:-7] + "a.onion"}, OnionAddressError, "invalid onion3 address"),
        ({"seq": 2**64}, ValueError, "seq"),
        ({"seq": -1}, ValueError, "seq"),
        ({"x": True}, TypeError, "boolean"),
        ({"x": 1.5}, TypeError, "cannot store"),
        ({"scheme": "v9"}, ENRSchemeError, "unknown identity scheme"),
    ],
)
def test_build_rejects(fields: dict[str, object], error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        ENR.build(KEY_A, **fields)  # type: ignore[arg-type]


def test_build_seq_bounds() -> None:
    assert ENR.build(KEY_A, 0).seq == 0
    top = ENR.build(KEY_A, 2**64 - 1)
    assert ENR.from_text(top.to_text()).seq == 2**64 - 1


def test_updated() -> None:
    record = ENR.build(KEY_A, 5, ip="1.2.3.4", udp=30303, extra={b"unknown": b"\x01\x02"})
    newer = record.updated(KEY_A, tcp=30303, ip=None)
    assert newer.seq == 6
    assert newer.tcp == 30303
    assert newer.ip is None
    assert newer.udp == 30303
    assert newer.get(b"unknown") == b"\x01\x02"
    assert newer.node_id == record.node_id
    assert ENR.from_rlp(newer.to_rlp()) == newer
    with pytest.raises(ValueError, match="does not match"):
        record.updated(KEY_B, tcp=1)


def test_equality_and_hash() -> None:
    one = ENR.build(KEY_A, ip="1.2.3.4")
    same = ENR.from_rlp(one.to_rlp())
    other = ENR.build(KEY_A, 2, ip="1.2.3.4")
    assert one == same
    assert hash(one) == hash(same)
    assert one != other
    assert one != one.to_rlp()
    assert len({one, same, other}) == 2


def test_from_any() -> None:
    record = ENR.from_text(EIP778_TEXT)
    assert ENR.from_any(EIP778_TEXT) == record
    assert ENR.from_any("\n " + EIP778_TEXT + " \n") == record
    assert ENR.from_any(record.to_rlp()) == record
    assert ENR.from_any(bytearray(record.to_rlp())) == record  # type: ignore[arg-type]
    with pytest.raises(ENRDecodeError, match="must be a string"):
        ENR.from_text(record.to_rlp())  # type: ignore[arg-type]


# --- exact round trips --------------------------------------------------------------------------


def test_roundtrip_keeps_unknown_keys_and_exact_bytes() -> None:
    raw = make_record(
        [
            (b"attnets", b"\x00" * 8),
            (b"eth", [[b"\xab\xcd\xef\x01", b""]]),
            (b"eth2", bytes(range(16))),
            (b"ip", b"\x7f\x00\x00\x01"),
            (b"les", [b"\x01"]),
            (b"nested", [[[b""], []], b"\x80"]),
            (b"udp", b"\x76\x5f"),
            (b"\xff\xfe", b"binary key"),
        ]
    )
    record = ENR.from_rlp(raw)
    assert record.to_rlp() == raw
    assert ENR.from_text(to_text(raw)).to_rlp() == raw
    assert record.to_text() == to_text(raw)
    assert record.get("eth") == [[b"\xab\xcd\xef\x01", b""]]
    assert record.get("nested") == [[[b""], []], b"\x80"]
    assert record.get(b"\xff\xfe") == b"binary key"
    assert record.udp == 30303


def test_roundtrip_of_built_records() -> None:
    record = ENR.build(KEY_A, 99, ip="127.0.0.1", udp=30303, tcp=30303, extra={"foo": b"bar"})
    assert ENR.from_rlp(record.to_rlp()).to_rlp() == record.to_rlp()
    assert ENR.from_text(record.to_text()).to_text() == record.to_text()
    assert not record.to_text().endswith("=")


# --- the size limit -----------------------------------------------------------------------------


def _padded(size: int) -> bytes:
    """A validly signed record of exactly ``size`` bytes (padding in an extra key)."""
    for pad in range(56, 300):
        raw = make_record([(b"pad", b"\xaa" * pad)])
        if len(raw) == size:
            return raw
    raise AssertionError(f"cannot make a {size}-byte record")


def test_exactly_300_bytes_is_allowed() -> None:
    raw = _padded(MAX_RECORD_SIZE)
    assert len(raw) == 300
    record = ENR.from_rlp(raw)
    assert record.to_rlp() == raw
    assert ENR.from_text(to_text(raw)) == record
    built = ENR.build(KEY_A, extra={"pad": b"\xaa" * (len(record.get("pad") or b""))})
    assert len(built) == 300


def test_301_bytes_is_too_large() -> None:
    raw = _padded(MAX_RECORD_SIZE + 1)
    with pytest.raises(ENRTooLargeError, match="larger than the 300-byte limit"):
        ENR.from_rlp(raw)
    with pytest.raises(ENRTooLargeError, match="larger than the 300-byte limit"):
        ENR.from_rlp(raw, verify=False)
    with pytest.raises(ENRTooLargeError, match="larger than the 300-byte limit"):
        ENR.from_text(to_text(raw))
    items = rlp.decode(raw)
    pad = items[items.index(b"pad") + 1]
    with pytest.raises(ENRTooLargeError, match="larger than the 300-byte limit"):
        ENR.build(KEY_A, extra={"pad": pad})


def test_too_large_is_a_decode_error() -> None:
    assert issubclass(ENRTooLargeError, ENRDecodeError)
    assert issubclass(ENRDecodeError, ValueError)


# --- strict structure checks --------------------------------------------------------------------


def _signed(pairs: list[tuple[bytes, Item]], seq: bytes = b"\x01") -> bytes:
    """Sign ``pairs`` as given (no sorting, no identity pairs added)."""
    return make_record(pairs, seq=seq, identity=False)


def _v4_pairs(key: PrivateKey = KEY_A) -> list[tuple[bytes, Item]]:
    return [(b"id", b"v4"), (b"secp256k1", key.public_key.compressed)]


def test_keys_not_sorted() -> None:
    id_pair, key_pair = _v4_pairs()
    raw = _signed([key_pair, id_pair])
    with pytest.raises(ENRDecodeError, match="not sorted by key"):
        ENR.from_rlp(raw)
    with pytest.raises(ENRDecodeError, match="not sorted by key"):
        ENR.from_rlp(raw, verify=False)


def test_duplicate_keys() -> None:
    id_pair, key_pair = _v4_pairs()
    raw = _signed([id_pair, (b"ip", b"\x01\x02\x03\x04"), (b"ip", b"\x01\x02\x03\x04"), key_pair])
    with pytest.raises(ENRDecodeError, match="duplicate key b'ip'"):
        ENR.from_rlp(raw)
    with pytest.raises(ENRDecodeError, match="duplicate key"):
        ENR.from_text(to_text(raw), verify=False)


def test_odd_key_value_count() -> None:
    content = rlp.encode([b"\x01", b"id", b"v4", b"secp256k1"])
    raw = rlp.encode([KEY_A.sign(keccak256(content)), b"\x01", b"id", b"v4", b"secp256k1"])
    with pytest.raises(ENRDecodeError, match="incomplete k/v pair"):
        ENR.from_rlp(raw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"", "rlp: empty input", id="empty"),
        pytest.param(b"\x05", "not an RLP list", id="not-a-list"),
        pytest.param(b"\xc0", "less than two", id="empty-list"),
        pytest.param(b"\xc1\x05", "less than two", id="one-element"),
        pytest.param(b"\xc2\xc0\x01", "signature is a list", id="signature-list"),
        pytest.param(b"\xc2\x01\xc0", "seq: expected an integer, got a list", id="seq-list"),
        pytest.param(b"\xc4\x01\x01\xc0\x01", "key is a list", id="key-list"),
        pytest.param(b"\xc4\x01\x01\x02", "rlp:", id="list-shorter-than-header"),
        pytest.param(b"\xc3\x01\x01\x82\x01", "rlp:", id="string-runs-past-list"),
        pytest.param(b"\xf8", "rlp:", id="truncated-header"),
    ],
)
def test_malformed_structure(raw: bytes, reason: str) -> None:
    with pytest.raises(ENRDecodeError, match=reason):
        ENR.from_rlp(raw, verify=False)
    with pytest.raises(ENRDecodeError, match=reason):
        ENR.from_rlp(raw)


def _relength(raw: bytes) -> bytes:
    """Fix the outer list header of a hand-edited record."""
    header = 1 if raw[0] <= 0xF7 else 1 + raw[0] - 0xF7
    payload = raw[header:]
    if len(payload) < 56:
        return bytes([0xC0 + len(payload)]) + payload
    size = uint(len(payload))
    return bytes([0xF7 + len(size)]) + size + payload


def test_non_canonical_rlp_single_byte() -> None:
    """b'\\x81\\x05' spells the byte 0x05, which RLP must encode as itself."""
    good = make_record([(b"udp", b"\x05")])
    assert ENR.from_rlp(good).udp == 5
    assert good.count(b"\x83udp\x05") == 1
    bad = _relength(good.replace(b"\x83udp\x05", b"\x83udp\x81\x05"))
    # Apart from its spelling this is the same signed content: only the RLP check stops it.
    with pytest.raises(ENRDecodeError, match=r"rlp: .*single byte"):
        ENR.from_rlp(bad)
    with pytest.raises(ENRDecodeError, match=r"rlp: .*single byte"):
        ENR.from_text(to_text(bad), verify=False)
    # The same for the seq.
    bad_seq = _relength(good.replace(b"\x01\x82id", b"\x81\x01\x82id", 1))
    assert bad_seq != good
    with pytest.raises(ENRDecodeError, match=r"rlp: .*single byte"):
        ENR.from_rlp(bad_seq)


def test_non_canonical_rlp_length_prefixes() -> None:
    good = make_record([(b"k", b"v" * 10)])
    # A long-string prefix (b8 0a) for a 10-byte string.
    bad = _relength(good.replace(b"\x8avvvvvvvvvv", b"\xb8\x0avvvvvvvvvv"))
    with pytest.raises(ENRDecodeError, match=r"rlp: .*[Ll]ong string prefix"):
        ENR.from_rlp(bad)
    # A long-list prefix (f8 06) for a 6-byte list.
    short = rlp.encode([b"\x01", b"\x02", b"ab", b"c"])
    assert short[0] == 0xC0 + len(short) - 1
    with pytest.raises(ENRDecodeError, match="rlp:"):
        ENR.from_rlp(b"\xf8" + bytes([len(short) - 1]) + short[1:], verify=False)
    # A length with a leading zero byte (f9 00 xx).
    payload = good[2:]
    with pytest.raises(ENRDecodeError, match="rlp:"):
        ENR.from_rlp(b"\xf9\x00" + bytes([len(payload)]) + payload)


def test_trailing_bytes() -> None:
    raw = make_record([(b"udp", b"\x76\x5f")])
    for extra in (b"\x00", b"\x80", raw):
        if len(raw + extra) > MAX_RECORD_SIZE:
            continue
        with pytest.raises(ENRDecodeError, match=r"superfluous|trailing"):
            ENR.from_rlp(raw + extra)
        with pytest.raises(ENRDecodeError, match=r"superfluous|trailing"):
            ENR.from_text(to_text(raw + extra))


def test_seq_with_leading_zero() -> None:
    for seq in (b"\x00", b"\x00\x01"):
        raw = make_record([], seq=seq)
        with pytest.raises(ENRDecodeError, match="seq: non-canonical integer"):
            ENR.from_rlp(raw)
        with pytest.raises(ENRDecodeError, match="seq: non-canonical integer"):
            ENR.from_rlp(raw, verify=False)


def test_seq_range() -> None:
    top = make_record([], seq=uint(2**64 - 1))
    assert ENR.from_rlp(top).seq == 2**64 - 1
    zero = make_record([], seq=b"")
    assert ENR.from_rlp(zero).seq == 0
    for seq in (2**64, 2**72 - 1):
        raw = make_record([], seq=uint(seq))
        with pytest.raises(ENRDecodeError, match="seq: integer larger than 64 bits"):
            ENR.from_rlp(raw)


# --- text form ----------------------------------------------------------------------------------


def test_text_padding_rejected() -> None:
    record = ENR.from_text(EIP778_TEXT)
    assert len(record) % 3 != 0
    padded = EIP778_TEXT + "=" * (-len(EIP778_TEXT[4:]) % 4)
    assert padded != EIP778_TEXT
    with pytest.raises(ENRDecodeError, match="padding"):
        ENR.from_text(padded)


def test_text_standard_alphabet_rejected() -> None:
    assert "-" in EIP778_TEXT
    assert "_" in EIP778_TEXT
    for good, bad in (("-", "+"), ("_", "/")):
        text = EIP778_TEXT.replace(good, bad)
        with pytest.raises(ENRDecodeError, match=rf"illegal base64 character '\{bad}'.*standard"):
            ENR.from_text(text)


@pytest.mark.parametrize("text", ["", "-IS4QHCY", "ENR:-IS4QHCY", "enode://x", " enr:-IS4"])
def test_text_missing_prefix(text: str) -> None:
    with pytest.raises(ENRDecodeError, match="missing 'enr:' prefix"):
        ENR.from_text(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("enr:x", "bad length"),
        ("enr:AAAAA", "bad length"),
        ("enr:AA AA", "illegal base64 character ' '"),
        ("enr:AA\nAA", "illegal base64 character"),
        ("enr:é", "illegal base64 character"),
        ("enr:" + "A" * 404, "larger than the 300-byte limit"),
    ],
)
def test_text_bad_base64(text: str, reason: str) -> None:
    with pytest.raises(ENRDecodeError, match=reason):
        ENR.from_text(text)


def test_text_trailing_whitespace_is_not_part_of_the_record() -> None:
    with pytest.raises(ENRDecodeError, match="illegal base64 character"):
        ENR.from_text(EIP778_TEXT + "\n")
    assert ENR.from_any(EIP778_TEXT + "\n") == ENR.from_text(EIP778_TEXT)


# --- identity scheme and signature --------------------------------------------------------------


def test_unknown_identity_scheme() -> None:
    raw = make_record([(b"id", b"v5")])
    with pytest.raises(ENRSchemeError, match="unknown identity scheme b'v5'"):
        ENR.from_rlp(raw)
    record = ENR.from_rlp(raw, verify=False)
    assert record.identity_scheme == "v5"
    with pytest.raises(ENRSchemeError, match="unknown identity scheme"):
        _ = record.node_id
    assert "seq=1" in repr(record)


def test_identity_scheme_is_a_list() -> None:
    raw = make_record([(b"id", [b"v4"])])
    with pytest.raises(ENRSchemeError, match="'id' entry is a list"):
        ENR.from_rlp(raw)
    assert ENR.from_rlp(raw, verify=False).entry_problems() == {
        "id": "identity scheme name is a list"
    }


def test_missing_id() -> None:
    raw = make_record([(b"secp256k1", KEY_A.public_key.compressed)], identity=False)
    with pytest.raises(ENRSchemeError, match="no 'id' entry"):
        ENR.from_rlp(raw)
    assert ENR.from_rlp(raw, verify=False).public_key == KEY_A.public_key
    assert issubclass(ENRSchemeError, ENRSignatureError)


def test_missing_public_key() -> None:
    raw = make_record([(b"id", b"v4")], identity=False)
    with pytest.raises(ENRSignatureError, match="no secp256k1 public key"):
        ENR.from_rlp(raw)


def test_bad_signature() -> None:
    raw = make_record([(b"udp", b"\x76\x5f")])
    sig = rlp.decode(raw)[0]
    for bad in (
        bytes([sig[0] ^ 1]) + sig[1:],  # corrupted r
        sig[:63] + bytes([sig[63] ^ 1]),  # corrupted s
        KEY_B.sign(keccak256(b"other content")),  # someone else's signature
        bytes(64),  # r = s = 0
    ):
        forged = make_record([(b"udp", b"\x76\x5f")], signature=bad)
        with pytest.raises(ENRSignatureError, match="invalid signature on node record"):
            ENR.from_rlp(forged)
        assert ENR.from_rlp(forged, verify=False).udp == 30303
    # A different key's signature over the right content.
    wrong_signer = make_record(
        [(b"id", b"v4"), (b"secp256k1", KEY_A.public_key.compressed)], identity=False
    )
    items = rlp.decode(wrong_signer)
    content = content_of(items[1], [(items[2], items[3]), (items[4], items[5])])
    forged = make_record(
        [(b"id", b"v4"), (b"secp256k1", KEY_A.public_key.compressed)],
        identity=False,
        signature=KEY_B.sign(keccak256(content)),
    )
    with pytest.raises(ENRSignatureError, match="invalid signature on node record"):
        ENR.from_rlp(forged)


def test_modified_content_breaks_signature() -> None:
    raw = make_record([(b"udp", b"\x76\x5f")])
    tampered = raw.replace(b"\x83udp\x82\x76\x5f", b"\x83udp\x82\x76\x60")
    assert tampered != raw
    with pytest.raises(ENRSignatureError, match="invalid signature"):
        ENR.from_rlp(tampered)


@pytest.mark.parametrize("size", [0, 6, 63, 65])
def test_signature_wrong_length(size: int) -> None:
    raw = make_record([], signature=b"\x01" * size)
    with pytest.raises(ENRSignatureError, match=f"invalid signature length {size}"):
        ENR.from_rlp(raw)


def test_high_s_signature() -> None:
    raw = make_record([(b"ip", b"\x7f\x00\x00\x01")])
    record = ENR.from_rlp(raw)
    r, s = record.signature[:32], int.from_bytes(record.signature[32:], "big")
    assert s <= SECP256K1_N // 2
    high = r + (SECP256K1_N - s).to_bytes(32, "big")
    items = rlp.decode(raw)
    malleated = rlp.encode([high, *items[1:]])
    assert len(malleated) == len(raw)
    with pytest.raises(ENRSignatureError, match="high S"):
        ENR.from_rlp(malleated)
    with pytest.raises(ENRSignatureError, match="high S"):
        ENR.from_text(to_text(malleated))
    # The structure is fine; only verification refuses it.
    assert ENR.from_rlp(malleated, verify=False).ip == ipaddress.IPv4Address("127.0.0.1")


@pytest.mark.parametrize(
    "public_key",
    [
        pytest.param(KEY_A.public_key.compressed[:32], id="32-bytes"),
        pytest.param(KEY_A.public_key.compressed + b"\x00", id="34-bytes"),
        pytest.param(b"\x04" + KEY_A.public_key.uncompressed, id="65-bytes-uncompressed"),
        pytest.param(KEY_A.public_key.uncompressed, id="64-bytes"),
        pytest.param(b"", id="empty"),
    ],
)
def test_public_key_not_33_bytes(public_key: bytes) -> None:
    raw = make_record([(b"secp256k1", public_key)])
    with pytest.raises(ENRSignatureError, match=f"must be 33 bytes, got {len(public_key)}"):
        ENR.from_rlp(raw)
    record = ENR.from_rlp(raw, verify=False)
    assert record.public_key is None
    assert record.entry_problems() == {"secp256k1": "public key must be 33 bytes"}


def test_public_key_is_a_list() -> None:
    raw = make_record([(b"secp256k1", [KEY_A.public_key.compressed])])
    with pytest.raises(ENRSignatureError, match="must be 33 bytes, got a list"):
        ENR.from_rlp(raw)


@pytest.mark.parametrize(
    "public_key",
    [
        pytest.param(b"\x02" + off_curve_x().to_bytes(32, "big"), id="x-not-on-curve"),
        pytest.param(b"\x03" + b"\xff" * 32, id="x-above-p"),
        pytest.param(b"\x05" + KEY_A.public_key.compressed[1:], id="bad-prefix"),
    ],
)
def test_public_key_not_on_curve(public_key: bytes) -> None:
    raw = make_record([(b"secp256k1", public_key)])
    with pytest.raises(ENRSignatureError, match="not a point on the secp256k1 curve"):
        ENR.from_rlp(raw)
    record = ENR.from_rlp(raw, verify=False)
    assert record.public_key is None
    assert record.entry_problems() == {"secp256k1": "public key is not on the secp256k1 curve"}
    with pytest.raises(ENRSignatureError, match="not a point on the secp256k1 curve"):
        _ = record.node_id


def test_unverified_record_node_id() -> None:
    raw = make_record([(b"udp", b"\x76\x5f")], signature=bytes(64))
    record = ENR.from_rlp(raw, verify=False)
    assert not record.verified
    assert record.node_id == KEY_A.public_key.node_id


# --- malformed values of known keys in validly signed records -----------------------------------


@pytest.mark.parametrize(
    ("key", "value", "accessor", "reason"),
    [
        pytest.param(b"ip", b"\x01\x02\x03\x04\x05", "ip", "must be 4 bytes, got 5", id="ip-5"),
        pytest.param(b"ip", b"\x7f\x00\x01", "ip", "must be 4 bytes, got 3", id="ip-3"),
        pytest.param(b"ip", [b"\x7f\x00\x00\x01"], "ip", "is a list", id="ip-list"),
        pytest.param(b"ip6", b"\x00" * 4, "ip6", "must be 16 bytes, got 4", id="ip6-4"),
        pytest.param(b"tcp", uint(65536), "tcp", "65536 is larger than 65535", id="tcp-65536"),
        pytest.param(b"udp", uint(2**24), "udp", "larger than 65535", id="udp-3-bytes"),
        pytest.param(b"udp", b"\x00\x50", "udp", "leading zero", id="udp-leading-zero"),
        pytest.param(b"tcp6", [b"\x01"], "tcp6", "is a list", id="tcp6-list"),
        pytest.param(b"udp6", uint(70000), "udp6", "larger than 65535", id="udp6-big"),
        pytest.param(b"onion3", ONION.upper().encode(), "onion3", "lower case", id="onion-upper"),
        pytest.param(
            b"onion3", BAD_CHECKSUM_ONION.encode(), "onion3", "checksum mismatch", id="onion-sum"
        ),
        pytest.param(
            b"onion3", VERSION_2_ONION.encode(), "onion3", "version is 2, want 3", id="onion-v"
        ),
        pytest.param(b"onion3", ONION[:-6].encode(), "onion3", "suffix", id="onion-no-suffix"),
        pytest.param(b"onion3", b"\xff" * 62, "onion3", "ASCII", id="onion-binary"),
        pytest.param(b"onion3", b"expyuzz4wqqyqhjn.onion", "onion3", "56 base32", id="onion-v2"),
        pytest.param(b"onion3", [b"x"], "onion3", "is a list", id="onion-list"),
    ],
)
def test_malformed_known_entry_still_decodes(
    key: bytes, value: Item, accessor: str, reason: str
) -> None:
    raw = make_record([(key, value), (b"zz-unknown", b"kept")])
    record = ENR.from_rlp(raw)  # validly signed: decoding succeeds
    assert record.verified
    assert record.to_rlp() == raw
    assert getattr(record, accessor) is None
    problems = record.entry_problems()
    assert list(problems) == [key.decode()]
    assert reason in problems[key.decode()]
    assert record.get(key) == value
    assert record.get("zz-unknown") == b"kept"
    if key == b"onion3":
        assert record.onion3_problem == problems["onion3"]
    repr(record)  # never raises


def test_malformed_entry_does_not_hide_good_ones() -> None:
    raw = make_record([(b"ip", b"\x7f\x00\x00\x01"), (b"tcp", uint(70000)), (b"udp", uint(30303))])
    record = ENR.from_rlp(raw)
    assert record.endpoint() == (ipaddress.IPv4Address("127.0.0.1"), 30303, None)
    assert record.entry_problems() == {"tcp": "port 70000 is larger than 65535"}


def test_port_zero_and_max() -> None:
    raw = make_record([(b"tcp", b""), (b"udp", uint(65535))])
    record = ENR.from_rlp(raw)
    assert record.tcp == 0
    assert record.udp == 65535
    assert record.entry_problems() == {}


def test_onion3_stored_as_lowercase_text() -> None:
    record = ENR.build(KEY_A, onion3=ONION, tcp=30303)
    assert record.get("onion3") == ONION.encode("ascii")
    assert record.onion3 == ONION
    assert ENR.build(KEY_A, onion3=ONION.encode()).get("onion3") == ONION.encode()
    assert f"onion3={ONION}" in repr(record)


# --- endpoint selection beyond the vectors ------------------------------------------------------


def test_endpoint_ipv6_falls_back_to_ipv4_ports() -> None:
    record = ENR.build(KEY_A, ip6="2001:db8::5", udp=1000, tcp=2000)
    assert record.endpoint() == (ipaddress.IPv6Address("2001:db8::5"), 1000, 2000)


def test_endpoint_multicast_is_ignored() -> None:
    record = ENR.build(KEY_A, ip="224.0.0.1", ip6="ff02::1", udp=1, udp6=2)
    assert record.endpoint() == (None, 1, None)
    record = ENR.build(KEY_A, ip="224.0.0.1", ip6="2001:db8::1", udp=1, udp6=2)
    assert record.endpoint() == (ipaddress.IPv6Address("2001:db8::1"), 2, None)


def test_endpoint_tie_goes_to_ipv4() -> None:
    record = ENR.build(KEY_A, ip="8.8.8.8", ip6="2001:4860::8888", udp=1, udp6=2, tcp=3, tcp6=4)
    assert record.endpoint() == (ipaddress.IPv4Address("8.8.8.8"), 1, 3)
