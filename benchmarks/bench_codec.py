"""Wire codec throughput: ordinary message packets with an established session key.

Run:  python benchmarks/bench_codec.py [--seconds 1.0]

"decode" is the whole receive path for an ordinary packet: unmask + header checks
(decode_packet_untrusted), AES-GCM decrypt (decrypt_message_untrusted) and message parsing
(decode_message_untrusted). "encode" is encode_message + encode_message_packet. The stage rows
split the decode path up. Not a CI gate (docs/architecture.md "Benchmarks").
"""

from __future__ import annotations

import argparse
import ipaddress
import time
from collections.abc import Callable

from discv5._messages import (
    FindNode,
    Message,
    Nodes,
    Ping,
    Pong,
    TalkResponse,
    decode_message_untrusted,
    encode_message,
)
from discv5._packet import decode_packet_untrusted, decrypt_message_untrusted, encode_message_packet
from enr import ENR, PrivateKey

DEST_ID = bytes.fromhex("bbbb9d047f0488c0b5a93c1c3f2d8bafc7c8ff337024a55434a0d0555de64db9")
SRC_ID = bytes.fromhex("aaaa8419e9f49d0083561b48287df592939a8d19947d8c0ef88f2a4856a69fbb")
KEY = bytes(range(16))
IV = bytes(range(16, 32))
NONCE = bytes(range(12))


def rate(fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(calls per second, microseconds per call), timed for about ``seconds``."""
    fn()
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed, elapsed / n * 1e6
        n = max(n * 2, int(n * seconds / max(elapsed, 1e-9) * 1.1))


def datagram_for(message: Message) -> bytes:
    return encode_message_packet(
        dest_id=DEST_ID,
        src_id=SRC_ID,
        masking_iv=IV,
        nonce=NONCE,
        key=KEY,
        plaintext=encode_message(message),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    seconds = parser.parse_args().seconds

    records = tuple(
        ENR.build(PrivateKey(bytes(31) + bytes((i,))), seq=i, ip=f"10.0.0.{i}", udp=30303)
        for i in range(1, 4)
    )
    cases: list[tuple[str, Message]] = [
        ("PING", Ping(b"\x01" * 8, 42)),
        ("PONG", Pong(b"\x01" * 8, 42, ipaddress.IPv4Address("203.0.113.7"), 30303)),
        ("FINDNODE [256,255,254]", FindNode(b"\x01" * 8, (256, 255, 254))),
        ("TALKRESP 1000 B", TalkResponse(b"\x01" * 8, bytes(1000))),
        ("NODES 3 records (verify)", Nodes(b"\x01" * 8, 1, records)),
    ]

    print(f"{'message':28} {'size':>5} {'decode/s':>10} {'us':>7} {'encode/s':>10} {'us':>7}")
    for name, message in cases:
        data = datagram_for(message)

        def decode(data: bytes = data) -> object:
            packet = decode_packet_untrusted(data, DEST_ID)
            return decode_message_untrusted(decrypt_message_untrusted(packet, KEY))

        def encode(message: Message = message) -> bytes:
            return datagram_for(message)

        assert decode() == message
        dec_rate, dec_us = rate(decode, seconds)
        enc_rate, enc_us = rate(encode, seconds)
        columns = f"{dec_rate:10,.0f} {dec_us:7.2f} {enc_rate:10,.0f} {enc_us:7.2f}"
        print(f"{name:28} {len(data):5} {columns}")

    data = datagram_for(cases[0][1])
    packet = decode_packet_untrusted(data, DEST_ID)
    plaintext = decrypt_message_untrusted(packet, KEY)
    print("\nPING decode path by stage:")
    stages: list[tuple[str, Callable[[], object]]] = [
        ("unmask + header checks", lambda: decode_packet_untrusted(data, DEST_ID)),
        ("AES-GCM decrypt", lambda: decrypt_message_untrusted(packet, KEY)),
        ("message decode (RLP)", lambda: decode_message_untrusted(plaintext)),
    ]
    for name, fn in stages:
        per_second, us = rate(fn, seconds)
        print(f"  {name:26} {per_second:12,.0f}/s {us:7.2f} us")


if __name__ == "__main__":
    main()
