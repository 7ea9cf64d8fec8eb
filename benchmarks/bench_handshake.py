"""Full discv5 handshakes per second, both sides in one process, through the sans-IO core.

One handshake = A sends PING with no session (random packet) -> B answers WHOAREYOU -> A sends
the handshake packet (ephemeral key, id-signature, record) -> B verifies and answers PONG -> A
decrypts it. Every iteration uses a fresh initiator identity, so each one is a real first
contact. Also measures ordinary-message decode with an established session (B decoding PINGs
from A), through ``Protocol.receive_datagram``.

Goals (issue): >= 2,000 handshakes/s and >= 50,000 decodes/s on one core.

    python benchmarks/bench_handshake.py [--handshakes 2000] [--messages 50000]
"""

from __future__ import annotations

import argparse
import os
import random
import time

from discv5 import Ping, Protocol, RequestReceived, ResponseReceived
from discv5._responder import pong_for
from enr import ENR, PrivateKey


def _pump(src: Protocol, dst: Protocol, src_addr: tuple[str, int], now: float) -> int:
    n = 0
    for data, _ in src.datagrams_to_send():
        dst.receive_datagram(data, src_addr, now)
        n += 1
    return n


def bench_handshakes(count: int) -> float:
    rng = random.Random(1)
    b_key = PrivateKey.generate(rng.randbytes)
    b_enr = ENR.build(b_key, 1, ip="127.0.0.1", udp=30001)
    b = Protocol(b_key, b_enr, rng=os.urandom)
    a_addr = ("127.0.0.1", 30000)
    initiators = []
    for _ in range(count):
        key = PrivateKey.generate(rng.randbytes)
        initiators.append((key, ENR.build(key, 1, ip="127.0.0.1", udp=30000)))
    done = 0
    started = time.perf_counter()
    for key, record in initiators:
        a = Protocol(key, record, rng=os.urandom)
        a.send_request(b_enr, Ping(b"", 1), 0.0)
        _pump(a, b, a_addr, 0.0)  # random packet -> WHOAREYOU queued at B
        _pump(b, a, ("127.0.0.1", 30001), 0.0)  # WHOAREYOU -> handshake queued at A
        _pump(a, b, a_addr, 0.0)  # handshake -> B accepts
        while (event := b.next_event()) is not None:
            if isinstance(event, RequestReceived):
                assert isinstance(event.message, Ping)
                b.send_response(event.node, pong_for(event.message, b_enr, *a_addr))
        _pump(b, a, ("127.0.0.1", 30001), 0.0)
        while (event := a.next_event()) is not None:
            if isinstance(event, ResponseReceived):
                done += 1
    elapsed = time.perf_counter() - started
    assert done == count, f"only {done} of {count} handshakes completed"
    return count / elapsed


def bench_decode(count: int) -> float:
    rng = random.Random(2)
    a_key, b_key = PrivateKey.generate(rng.randbytes), PrivateKey.generate(rng.randbytes)
    a_enr = ENR.build(a_key, 1, ip="127.0.0.1", udp=30000)
    b_enr = ENR.build(b_key, 1, ip="127.0.0.1", udp=30001)
    a = Protocol(a_key, a_enr, rng=os.urandom)
    b = Protocol(b_key, b_enr, rng=os.urandom)
    a.send_request(b_enr, Ping(b"", 1), 0.0)
    for _ in range(3):
        _pump(a, b, ("127.0.0.1", 30000), 0.0)
        _pump(b, a, ("127.0.0.1", 30001), 0.0)
    assert a.session_count == b.session_count == 1
    for _ in iter(b.next_event, None):  # the handshake's own PING
        pass
    packets = []
    for _ in range(count):
        a.send_request(b_enr, Ping(b"", 1), 0.0)
        packets.extend(data for data, _ in a.datagrams_to_send())
        request_ids = list(a._pending)
        for rid in request_ids:
            a.cancel_request(rid, 0.0)
    started = time.perf_counter()
    for data in packets:
        b.receive_datagram(data, ("127.0.0.1", 30000), 0.0)
    elapsed = time.perf_counter() - started
    received = sum(1 for e in iter(b.next_event, None) if isinstance(e, RequestReceived))
    assert received == count, f"{received} of {count} decoded"
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--handshakes", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=50000)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    hs = max(bench_handshakes(args.handshakes) for _ in range(args.repeat))
    dec = max(bench_decode(args.messages) for _ in range(args.repeat))
    print(f"full handshakes (incl. PING/PONG): {hs:10,.0f}/s   goal >= 2,000/s"
          f"   {'ok' if hs >= 2000 else 'BELOW GOAL'}")
    print(f"ordinary-message decodes:          {dec:10,.0f}/s   goal >= 50,000/s"
          f"   {'ok' if dec >= 50000 else 'BELOW GOAL'}")


if __name__ == "__main__":
    main()
