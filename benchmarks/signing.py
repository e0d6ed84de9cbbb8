"""Cost of signed wire messages: ECDSA P-256 signing and verification (``cryptography``) of the
header entry plus the SHA-256 of the payload, as :mod:`parsefl.security.frames` does, per MB of
payload and per message. Usage: ``python benchmarks/signing.py [--mb 8] [--repeat 5]``."""

from __future__ import annotations

import argparse
import tempfile
import time

from parsefl.security import FrameAuth, Identities, init_keys


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--mb", type=float, default=8.0, help="payload size of one message")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        init_keys(folder, 2)
        signer, verifier = FrameAuth(Identities(folder, [0])), FrameAuth(Identities(folder))
    region = bytes(int(args.mb * 2**20))
    head = {"src": 0, "dst": 1, "kind": "params", "component": "c", "path": [0, 1]}
    best_sign = best_verify = float("inf")
    for call in range(1, args.repeat + 1):
        t0 = time.perf_counter()
        signed = signer.stamp(head, region, call)
        t1 = time.perf_counter()
        verifier.check(signed, region, call)
        t2 = time.perf_counter()
        best_sign, best_verify = min(best_sign, t1 - t0), min(best_verify, t2 - t1)
    small = {**head, "src": 0}
    t0 = time.perf_counter()
    for call in range(args.repeat + 1, args.repeat + 1001):
        verifier.check(signer.stamp(small, b"x" * 64, call), b"x" * 64, call)
    per_msg = (time.perf_counter() - t0) / 1000
    print(f"payload {args.mb:g} MB: sign {best_sign / args.mb * 1e3:.2f} ms/MB, "
          f"verify {best_verify / args.mb * 1e3:.2f} ms/MB (best of {args.repeat})")
    print(f"per message (64-byte payload): sign + verify {per_msg * 1e6:.0f} us")


if __name__ == "__main__":
    main()
