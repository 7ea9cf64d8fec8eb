"""Hypothesis properties: build/encode/decode round trips, and untrusted input raising only the
documented errors (ENRError subclasses), never IndexError, TypeError, UnicodeError and friends.

Runs derandomized with modest example counts so the file takes a few seconds and is repeatable.
"""

from __future__ import annotations

import base64
import ipaddress
from typing import Any

import pytest
import rlp
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from enr import (
    ENR,
    EnodeError,
    ENRDecodeError,
    ENRError,
    ENRTooLargeError,
    Item,
    PrivateKey,
    enode_from_enr,
    onion3_from_public_key,
    onion3_problem,
    onion3_public_key,
    parse_enode,
)

from ._helpers import KEY_A, SECP256K1_N, make_record, to_text

PROPS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.too_slow],
)
FAST = settings(PROPS, max_examples=200)

EIP778_RAW = bytes.fromhex(
    "f884b8407098ad865b00a582051940cb9cf36836572411a47278783077011599ed5cd16b76f2635f4e234738f3"
    "0813a89eb9137e3e3df5266e3a1f11df72ecf1145ccb9c01826964827634826970847f00000189736563703235"
    "366b31a103ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd31388375647082765f"
)
_KNOWN = {b"id", b"secp256k1", b"ip", b"ip6", b"tcp", b"udp", b"tcp6", b"udp6", b"quic"}
_KNOWN |= {b"quic6", b"onion3"}

private_keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(
    lambda n: PrivateKey(n.to_bytes(32, "big"))
)
ports = st.integers(min_value=0, max_value=65535)
rlp_items: st.SearchStrategy[Item] = st.recursive(
    st.binary(max_size=40), lambda inner: st.lists(inner, max_size=4), max_leaves=12
)
extra_keys = st.binary(min_size=0, max_size=12).filter(lambda k: k not in _KNOWN)


@st.composite
def record_fields(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if draw(st.booleans()):
        fields["ip"] = draw(st.ip_addresses(v=4))
    if draw(st.booleans()):
        fields["ip6"] = draw(st.ip_addresses(v=6))
    for name in ("tcp", "udp", "tcp6", "udp6"):
        if draw(st.booleans()):
            fields[name] = draw(ports)
    if draw(st.booleans()):
        fields["onion3"] = onion3_from_public_key(draw(st.binary(min_size=32, max_size=32)))
    fields["extra"] = draw(st.dictionaries(extra_keys, rlp_items, max_size=3))
    return fields


@PROPS
@given(
    key=private_keys,
    seq=st.integers(min_value=0, max_value=2**64 - 1),
    fields=record_fields(),
)
def test_build_encode_decode_roundtrip(key: PrivateKey, seq: int, fields: dict[str, Any]) -> None:
    try:
        record = ENR.build(key, seq, **fields)
    except ENRTooLargeError:
        assume(False)
        return
    raw = record.to_rlp()
    assert len(raw) <= 300
    again = ENR.from_rlp(raw)
    assert again == record
    assert again.to_rlp() == raw
    from_text = ENR.from_text(record.to_text())
    assert from_text.to_rlp() == raw
    assert from_text.to_text() == record.to_text()
    assert again.seq == seq
    assert again.node_id == key.public_key.node_id
    assert again.public_key == key.public_key
    assert again.entry_problems() == {}
    for name in ("ip", "ip6"):
        want = fields.get(name)
        assert getattr(again, name) == (None if want is None else ipaddress.ip_address(want))
    for name in ("tcp", "udp", "tcp6", "udp6", "onion3"):
        assert getattr(again, name) == fields.get(name)
    for k, v in fields["extra"].items():
        assert again.get(k) == v
    assert again.keys() == sorted(again.keys())
    # Updating keeps everything else and bumps seq.
    if seq < 2**64 - 1:
        try:
            newer = again.updated(key, udp=1)
        except ENRTooLargeError:
            return
        assert newer.seq == seq + 1
        assert newer.udp == 1
        for k, v in fields["extra"].items():
            assert newer.get(k) == v


@PROPS
@given(fields=record_fields())
def test_enode_from_built_record_roundtrips(fields: dict[str, Any]) -> None:
    try:
        record = ENR.build(KEY_A, **fields)
    except ENRTooLargeError:
        assume(False)
        return
    endpoint = record.endpoint()
    host = record.onion3 or endpoint.ip
    tcp = record.tcp if record.onion3 else endpoint.tcp
    if host is None or not tcp:
        with pytest.raises(EnodeError, match=r"neither an IP address|no tcp port"):
            enode_from_enr(record)
        return
    enode = enode_from_enr(record)
    assert enode.host == str(host)
    assert enode.tcp == tcp
    again = parse_enode(str(enode))
    assert again == enode
    assert again.node_id == record.node_id


@PROPS
@given(
    pairs=st.dictionaries(extra_keys, rlp_items, max_size=5),
    seq=st.integers(min_value=0, max_value=2**64 - 1),
)
def test_hand_made_records_roundtrip_exactly(pairs: dict[bytes, Item], seq: int) -> None:
    """Records made outside ENR.build (unknown keys, nested lists) come back byte for byte."""
    raw = make_record(list(pairs.items()), seq=seq.to_bytes((seq.bit_length() + 7) // 8, "big"))
    assume(len(raw) <= 300)
    record = ENR.from_rlp(raw)
    assert record.to_rlp() == raw
    assert record.to_text() == to_text(raw)
    assert ENR.from_text(to_text(raw)).to_rlp() == raw
    for k, v in pairs.items():
        assert record.get(k) == v


# --- untrusted input raises only ENRError -------------------------------------------------------


def _decode_or_enr_error(data: bytes) -> None:
    for verify in (True, False):
        try:
            record = ENR.from_rlp(data, verify=verify)
        except ENRError:
            continue
        # Whatever decodes must re-encode exactly and have usable accessors.
        assert record.to_rlp() == data
        record.entry_problems()
        repr(record)
        record.endpoint()
        _ = (record.ip, record.ip6, record.tcp, record.udp, record.onion3, record.public_key)
        try:
            enode_from_enr(record)
        except EnodeError:
            pass


@FAST
@given(data=st.binary(max_size=400))
@example(data=b"")
@example(data=b"\xc0")
@example(data=b"\xf9\x01\x2c")
@example(data=EIP778_RAW)
def test_random_bytes_from_rlp(data: bytes) -> None:
    _decode_or_enr_error(data)


@FAST
@given(item=rlp_items)
def test_random_rlp_structures_from_rlp(item: Item) -> None:
    _decode_or_enr_error(bytes(rlp.encode(item)))


@FAST
@given(
    position=st.integers(min_value=0, max_value=len(EIP778_RAW) - 1),
    value=st.integers(min_value=0, max_value=255),
    cut=st.integers(min_value=1, max_value=len(EIP778_RAW)),
)
def test_mutated_valid_record(position: int, value: int, cut: int) -> None:
    data = bytearray(EIP778_RAW)
    data[position] = value
    _decode_or_enr_error(bytes(data))
    _decode_or_enr_error(bytes(data[:cut]))


_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@FAST
@given(
    text=st.one_of(
        st.text(max_size=450),
        st.text(alphabet=_BASE64URL + "+/= \n", max_size=420).map(lambda t: "enr:" + t),
        st.binary(max_size=310).map(
            lambda b: "enr:" + base64.urlsafe_b64encode(b).decode().rstrip("=")
        ),
    )
)
@example(text="enr:")
@example(text="enr:" + base64.urlsafe_b64encode(EIP778_RAW).decode())
def test_random_text_from_text(text: str) -> None:
    for verify in (True, False):
        try:
            record = ENR.from_text(text, verify=verify)
        except ENRError:
            continue
        assert ENR.from_rlp(record.to_rlp(), verify=False) == record
    try:
        ENR.from_any(text)
    except ENRError:
        pass


@FAST
@given(text=st.text(max_size=300))
def test_random_text_is_a_decode_error_without_prefix(text: str) -> None:
    assume(not text.startswith("enr:"))
    with pytest.raises(ENRDecodeError, match="missing 'enr:' prefix"):
        ENR.from_text(text)


_PUB = KEY_A.public_key.uncompressed.hex()
_URL_ALPHABET = "0123456789abcdefABCDEF.:[]@?&=%-_/ enodvxyz"


@FAST
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.text(max_size=120).map(lambda t: "enode://" + t),
        st.text(alphabet=_URL_ALPHABET, max_size=80).map(lambda t: f"enode://{_PUB}@" + t),
        st.text(alphabet=_URL_ALPHABET, max_size=40).map(lambda t: f"enode://{_PUB}" + t),
        st.tuples(
            st.text(max_size=30),
            st.text(alphabet="0123456789", max_size=7),
            st.text(max_size=20),
        ).map(lambda t: f"enode://{_PUB}@{t[0]}:{t[1]}?discport={t[2]}"),
    )
)
@example(text=f"enode://{_PUB}@[fe80::1%eth0]:1")
@example(text=f"enode://{_PUB}@[::ffff:1.2.3.4]:1")
@example(text=f"enode://{_PUB}@1.2.3.4:1?discport")
@example(text=f"enode://{_PUB}@.onion:1")
@example(text=f"enode://{_PUB}@.:1")
def test_random_strings_parse_enode(text: str) -> None:
    try:
        enode = parse_enode(text)
    except EnodeError:
        return
    # Whatever parses formats back to something that parses to the same enode.
    again = parse_enode(str(enode))
    assert again == enode
    assert enode.host_kind in (None, "ipv4", "ipv6", "dns", "onion3")
    enode.problems()


@FAST
@given(text=st.one_of(st.text(max_size=80), st.binary(max_size=80)))
def test_random_onion3_problem(text: str | bytes) -> None:
    problem = onion3_problem(text)
    assert problem is None or isinstance(problem, str)


@PROPS
@given(public_key=st.binary(min_size=32, max_size=32))
def test_onion3_roundtrip(public_key: bytes) -> None:
    address = onion3_from_public_key(public_key)
    assert onion3_problem(address) is None
    assert onion3_public_key(address) == public_key
