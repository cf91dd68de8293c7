#!/usr/bin/env python3
"""Side-by-side run of the realistic WASI program (crates/carnac-wasi/tests/guests,
`realistic`: std::fs + HashMap-heavy work) on Carnac and the peers installed by
../shared/peers/install.sh. Interleaved rounds, median whole-process wall time, ratio peer/Carnac (> 1: Carnac faster). Output lines must agree.

    python3 benches/wasi_bench.py [--rounds 5] [--words 400000] [--peers /tmp/carnac-peers]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--words", type=int, default=400_000)
    ap.add_argument("--peers", default=os.environ.get("CARNAC_PEERS", "/tmp/carnac-peers"))
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "carnac-cli"], cwd=ROOT, check=True)
    tdir = os.path.join(ROOT, "target", "wasi-bench")
    subprocess.run(["cargo", "build", "--release", "-q", "--target", "wasm32-wasip1",
                    "--manifest-path", os.path.join(ROOT, "crates/carnac-wasi/tests/guests/Cargo.toml"),
                    "--target-dir", tdir], check=True)
    wasm = os.path.join(tdir, "wasm32-wasip1", "release", "realistic.wasm")
    b = os.path.join(args.peers, "bin")
    work = tempfile.mkdtemp(prefix="carnac-wasi-bench-")
    n = str(args.words)
    rts = {"carnac": [os.path.join(ROOT, "target/release/carnac"), "run", "--dir", f"{work}::/d", wasm, "/d", n]}
    if os.path.exists(os.path.join(b, "wasmtime")):
        rts["wasmtime"] = [os.path.join(b, "wasmtime"), "run", "--dir", f"{work}::/d", wasm, "/d", n]
    if os.path.exists(os.path.join(b, "wasmi")):
        rts["wasmi"] = [os.path.join(b, "wasmi"), "--dir", work, wasm, work, n]
    tools = os.path.join(b, "wasm-tools")
    if os.path.exists(os.path.join(b, "iwasm-fast")) and os.path.exists(tools):
        # The 2020 WAMR rejects current LLVM's long LEB encodings: re-encode first.
        w3 = os.path.join(tdir, "realistic.w3.wasm")
        text = subprocess.run([tools, "print", wasm], capture_output=True, check=True).stdout
        subprocess.run([tools, "parse", "-o", w3, "/dev/stdin"], input=text, check=True)
        rts["iwasm-fast"] = [os.path.join(b, "iwasm-fast"), f"--dir={work}", w3, work, n]
    times = {r: [] for r in rts}
    outs = {}
    for rnd in range(args.rounds):
        for r, cmd in rts.items():
            t0 = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True)
            dt = time.perf_counter() - t0
            if res.returncode != 0:
                print(f"{r} failed: {res.stderr.strip()[:200]}", file=sys.stderr)
                continue
            times[r].append(dt)
            outs.setdefault(r, res.stdout.strip().splitlines()[0] if res.stdout.strip() else "")
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    c = statistics.median(times["carnac"])
    print(f"realistic ({args.words} words), median of {args.rounds}:")
    for r in rts:
        if not times[r]:
            print(f"  {r:<11} failed")
            continue
        m = statistics.median(times[r])
        print(f"  {r:<11} {m:7.3f}s   ratio peer/carnac {m / c:5.2f}x")
    agree = len(set(outs.values())) == 1
    print("outputs agree:", agree)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
