#!/usr/bin/env python3
"""Parallel speedup under wasi-threads: the guest `parallel`
(crates/carnac-wasi/tests/threads-guests/src/bin/parallel.rs: a CPU-bound
xorshift/multiply job split evenly over N threads, each on its own state, no
sharing in the hot loop) run as `carnac run parallel.wasm N WORK` with 1 and 2
threads, in the default tier (`-C tier=auto`), the compiled tier and the
interpreter, interleaved over several rounds in one sitting. Prints the median
wall time per configuration and the speedup (1-thread time / 2-thread time;
the goal is >= 1.7x on 2 threads), the spread of the runs (min..max of the
per-round speedups) as a measure of machine noise, the CPU time the 2-thread
run used over the 1-thread run's (what threading costs, whatever the load:
1.00 is none), and the load average before and after (other processes on the
cores take the speedup away). A benchmark, not a test:
compare numbers from one sitting on an otherwise idle machine with >= 2 cores.

    python3 benches/threads_bench.py [--rounds 5] [--work 2000] [--interp-work 200] [--threads 2]
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = "wasm32-wasip1-threads"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--work", type=int, default=2000, help="millions of steps, compiled tiers")
    ap.add_argument("--interp-work", type=int, default=200, help="millions of steps, interpreter")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--carnac", default=os.path.join(ROOT, "target/release/carnac"))
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    tdir = os.path.join(ROOT, "target", "threads-bench")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "carnac-cli"], cwd=ROOT, check=True)
        subprocess.run(["cargo", "build", "--release", "-q", "--target", TARGET, "--manifest-path",
                        os.path.join(ROOT, "crates/carnac-wasi/tests/threads-guests/Cargo.toml"),
                        "--target-dir", tdir], check=True)
    wasm = os.path.join(tdir, TARGET, "release", "parallel.wasm")
    n = args.threads
    tiers = {"auto": args.work, "cranelift": args.work, "interp": args.interp_work}
    configs = [(tier, t) for tier in tiers for t in (1, n)]
    times = {c: [] for c in configs}
    cpu = {c: [] for c in configs}
    outs = {}
    load_before = os.getloadavg()
    for rnd in range(args.rounds):
        for tier, t in configs:
            cmd = [args.carnac, "run", "-C", f"tier={tier}", wasm, str(t), str(tiers[tier])]
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True)
            dt = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[(tier, t)].append(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime)
            if res.returncode != 0:
                print(f"{tier}/{t} failed: {res.stderr.strip()[:300]}", file=sys.stderr)
                return 1
            times[(tier, t)].append(dt)
            outs.setdefault(tier, set()).add(res.stdout.strip())
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    load_after = os.getloadavg()
    print(f"parallel job, {n} threads vs 1, median of {args.rounds} rounds ({os.cpu_count()} cores, "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after):")
    ok = True
    for tier, work in tiers.items():
        one = statistics.median(times[(tier, 1)])
        many = statistics.median(times[(tier, n)])
        per_round = [a / b for a, b in zip(times[(tier, 1)], times[(tier, n)])]
        cpu_ratio = statistics.median(cpu[(tier, n)]) / statistics.median(cpu[(tier, 1)])
        print(f"  {tier:<10} work {work:>4}M: 1 thread {one:7.3f}s  {n} threads {many:7.3f}s  "
              f"speedup {one / many:4.2f}x (rounds {min(per_round):4.2f}..{max(per_round):4.2f})  "
              f"cpu {n}t/1t {cpu_ratio:4.2f}")
        if len(outs[tier]) != 1:
            ok = False
    print("outputs agree:", ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
