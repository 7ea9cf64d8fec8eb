"""Node-record throughput: decode+verify and build+sign per second, with eth-enr as a baseline.

Usage::

    python benchmarks/bench_enr.py                 # this project's enr (+ eth-enr if importable)
    python benchmarks/bench_enr.py --profile       # also cProfile one decode+verify run
    python benchmarks/bench_enr.py --json          # one JSON object instead of the table

Method (timeit's): every operation runs over the same set of realistic records (ip, udp, tcp,
onion3: about the size of a relay's record) in passes until at least ``--seconds`` have elapsed;
that is one sample, the best of ``--repeat`` samples is reported. The garbage collector is off
while timing, the process is pinned to one CPU (``--cpu``; Linux only), and everything runs in
this one process and thread.

The goal this project set is at least 20,000 decode+verify per second (``ENR.from_rlp`` with the
signature check), on one core of the CI machine.

eth-enr (the older Python ENR library) is measured only when it is importable. It pins
``rlp<3`` while this project needs ``rlp>=4``, so it cannot live in the same environment:
install it in a separate virtualenv and run this script there; the ``enr`` half is then skipped
with a note. Both halves build the same records (same keys, same entries, deterministic RFC 6979
signatures), and the "record set" digest printed with the table shows when they did.

``enr`` keeps a memo of the records it has already verified. The decode+verify and build+sign
rows empty it before every pass, so they measure records never seen before; an extra
"memo hit" row shows what a record seen again costs.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gc
import hashlib
import importlib
import io
import json
import os
import platform
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

GOAL_DECODE_VERIFY_PER_SECOND: Final = 20_000
_SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


# --- inputs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    """What one record holds, independent of the library that builds it."""

    secret: bytes
    seq: int
    ip: bytes
    udp: int
    tcp: int
    onion3: str


def _onion3(public_key: bytes) -> str:
    # rend-spec-v3 address of a 32-byte ed25519 key (written out here so the script needs only
    # the library under test).
    checksum = hashlib.sha3_256(b".onion checksum" + public_key + b"\x03").digest()[:2]
    return base64.b32encode(public_key + checksum + b"\x03").decode().lower() + ".onion"


def make_specs(count: int) -> list[Spec]:
    """``count`` deterministic record specs (keys from SHA-256 of the index)."""
    specs = []
    for i in range(count):
        secret = hashlib.sha256(b"bench-enr key %d" % i).digest()
        assert 0 < int.from_bytes(secret, "big") < _SECP256K1_N
        onion_key = hashlib.sha256(b"bench-enr onion %d" % i).digest()
        ip = bytes([10, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF])
        specs.append(Spec(secret, 1 + i % 7, ip, 30303, 30303 + i % 3, _onion3(onion_key)))
    return specs


# --- timing -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    library: str
    operation: str
    per_second: float

    @property
    def microseconds(self) -> float:
        return 1e6 / self.per_second


def measure(run_pass: Callable[[], int], seconds: float, repeat: int) -> float:
    """Best operations/second over ``repeat`` samples of at least ``seconds`` each.

    ``run_pass`` performs one pass over the inputs and returns how many operations it did.
    """
    run_pass()  # warm up caches and lazy imports
    best = 0.0
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            done = 0
            start = time.perf_counter()
            elapsed = 0.0
            while elapsed < seconds:
                done += run_pass()
                elapsed = time.perf_counter() - start
            best = max(best, done / elapsed)
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


# --- this project's enr -------------------------------------------------------------------------


def enr_cases(specs: Sequence[Spec]) -> tuple[list[bytes], dict[str, Callable[[], int]]]:
    """Records built with ``enr`` and the operations to time on them."""
    from enr import ENR, PrivateKey

    # enr memoizes records it has verified (bytes -> record), so decoding the same bytes again
    # costs a dict lookup. The "cold" cases must measure real work on records never seen
    # before, so they empty that memo before every pass (a few µs per pass of 256 records); the
    # "memo hit" row shows what a repeated record costs.
    memo = getattr(importlib.import_module("enr._record"), "_VERIFIED", None)

    def forget() -> None:
        if memo is not None:
            memo.clear()

    keys = [PrivateKey(s.secret) for s in specs]

    def build(spec: Spec, key: PrivateKey) -> ENR:
        return ENR.build(key, spec.seq, ip=spec.ip, udp=spec.udp, tcp=spec.tcp, onion3=spec.onion3)

    records = [build(s, k) for s, k in zip(specs, keys, strict=True)]
    raws = [r.to_rlp() for r in records]
    texts = [r.to_text() for r in records]
    from_rlp, from_text = ENR.from_rlp, ENR.from_text

    def decode_verify() -> int:
        forget()
        for raw in raws:
            from_rlp(raw)
        return len(raws)

    def decode_verify_text() -> int:
        forget()
        for text in texts:
            from_text(text)
        return len(texts)

    def decode_only() -> int:
        for raw in raws:
            from_rlp(raw, verify=False)
        return len(raws)

    def build_sign() -> int:
        forget()
        for spec, key in zip(specs, keys, strict=True):
            build(spec, key).to_rlp()
        return len(specs)

    def memo_hit() -> int:
        for raw in raws:
            from_rlp(raw)
        return len(raws)

    cases = {
        "decode+verify (RLP bytes)": decode_verify,
        "decode+verify (enr: text)": decode_verify_text,
        "decode only (no verify)": decode_only,
        "build+sign": build_sign,
    }
    if memo is not None:
        cases["decode+verify (memo hit)"] = memo_hit
    return raws, cases


# --- eth-enr baseline ---------------------------------------------------------------------------


def eth_enr_cases(specs: Sequence[Spec]) -> tuple[list[bytes], dict[str, Callable[[], int]]]:
    """The same records and operations with eth-enr (``rlp.decode(raw, ENR)`` + signature)."""
    import rlp
    from eth_enr import ENR, UnsignedENR  # type: ignore[import-not-found, unused-ignore]
    from eth_keys import keys as eth_keys  # type: ignore[import-not-found, unused-ignore]

    compressed = [eth_keys.PrivateKey(s.secret).public_key.to_compressed_bytes() for s in specs]

    def pairs(spec: Spec, public: bytes) -> dict[bytes, Any]:
        return {
            b"id": b"v4",
            b"secp256k1": public,
            b"ip": spec.ip,
            b"udp": spec.udp,
            b"tcp": spec.tcp,
            b"onion3": spec.onion3.encode(),
        }

    def build(spec: Spec, public: bytes) -> bytes:
        unsigned = UnsignedENR(spec.seq, pairs(spec, public))
        return bytes(rlp.encode(unsigned.to_signed_enr(spec.secret)))

    raws = [build(s, p) for s, p in zip(specs, compressed, strict=True)]
    texts = ["enr:" + base64.urlsafe_b64encode(r).decode().rstrip("=") for r in raws]

    def decode_verify() -> int:
        for raw in raws:
            rlp.decode(raw, ENR).validate_signature()
        return len(raws)

    def decode_verify_text() -> int:
        for text in texts:
            ENR.from_repr(text).validate_signature()
        return len(texts)

    def decode_only() -> int:
        for raw in raws:
            rlp.decode(raw, ENR)
        return len(raws)

    def build_sign() -> int:
        for spec, public in zip(specs, compressed, strict=True):
            build(spec, public)
        return len(specs)

    return raws, {
        "decode+verify (RLP bytes)": decode_verify,
        "decode+verify (enr: text)": decode_verify_text,
        "decode only (no verify)": decode_only,
        "build+sign": build_sign,
    }


LIBRARIES: Final = {"enr": enr_cases, "eth-enr": eth_enr_cases}


# --- main ---------------------------------------------------------------------------------------


def _pin(cpu: int | None) -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this OS)"
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[0] if cpu is None else cpu
    os.sched_setaffinity(0, {chosen})
    return f"pinned to CPU {chosen}"


def _profile(run_pass: Callable[[], int], seconds: float) -> str:
    profiler = cProfile.Profile()
    deadline = time.perf_counter() + seconds
    profiler.enable()
    while time.perf_counter() < deadline:
        run_pass()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(18)
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--records", type=int, default=256, help="distinct records (256)")
    parser.add_argument("--seconds", type=float, default=0.25, help="length of a sample (0.25)")
    parser.add_argument("--repeat", type=int, default=15, help="samples per case, best kept (15)")
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (first allowed)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument(
        "--library", choices=[*LIBRARIES, "all"], default="all", help="what to measure (all)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile decode+verify and print where time goes"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    pinning = "not pinned" if args.no_pin else _pin(args.cpu)
    specs = make_specs(args.records)
    results: list[Result] = []
    notes: list[str] = []
    digests: dict[str, str] = {}
    sizes: dict[str, float] = {}
    profiles: dict[str, str] = {}
    for name, factory in LIBRARIES.items():
        if args.library not in ("all", name):
            continue
        try:
            raws, cases = factory(specs)
        except ImportError as exc:
            notes.append(f"{name}: skipped, not importable here ({exc})")
            continue
        digests[name] = hashlib.sha256(b"".join(raws)).hexdigest()[:16]
        sizes[name] = sum(map(len, raws)) / len(raws)
        for operation, run_pass in cases.items():
            per_second = measure(run_pass, args.seconds, args.repeat)
            results.append(Result(name, operation, per_second))
        if args.profile:
            profiles[name] = _profile(cases["decode+verify (RLP bytes)"], args.seconds)

    ours = next(
        (r for r in results if r.library == "enr" and r.operation.startswith("decode+verify")),
        None,
    )
    goal = None if ours is None else ours.per_second >= GOAL_DECODE_VERIFY_PER_SECOND
    header = (
        f"bench_enr: {args.records} records, best of {args.repeat} x {args.seconds:g} s,"
        f" {pinning}, {platform.python_implementation()} {platform.python_version()}"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "setup": header,
                    "record_set": digests,
                    "average_record_bytes": sizes,
                    "results": [
                        {"library": r.library, "operation": r.operation, "per_second": r.per_second}
                        for r in results
                    ],
                    "goal_decode_verify_per_second": GOAL_DECODE_VERIFY_PER_SECOND,
                    "goal_met": goal,
                    "notes": notes,
                }
            )
        )
        return 0
    print(header)
    for name, digest in digests.items():
        print(f"record set ({name}): sha256 {digest}…, {sizes[name]:.0f} bytes on average")
    print()
    print(f"{'library':<8}  {'operation':<26}  {'ops/s':>10}  {'µs/op':>8}")
    for r in results:
        print(f"{r.library:<8}  {r.operation:<26}  {r.per_second:>10,.0f}  {r.microseconds:>8.1f}")
    for note in notes:
        print(f"note: {note}")
    print()
    if ours is None:
        print("goal: not checked (this project's enr was not measured)")
    else:
        verdict = "met" if goal else "NOT met"
        print(
            f"goal: decode+verify >= {GOAL_DECODE_VERIFY_PER_SECOND:,}/s: {verdict}"
            f" ({ours.per_second:,.0f}/s)"
        )
    for name, text in profiles.items():
        print(f"\n--- cProfile of {name} decode+verify (sorted by own time) ---")
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
