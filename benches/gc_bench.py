#!/usr/bin/env python3
"""GC benchmark: the allocation-heavy programs in gc_bench/ (binary-trees:
many short-lived trees of GC structs, one long-lived) on Carnac and on
Wasmtime with the GC proposal (`wasmtime run -W gc=y`), side by side.

Every program exports `run(n: i32) -> i32`; runs are interleaved (one round =
every runtime once per program), the median wall time per runtime is reported
with the ratio peer/Carnac-config (> 1 means Carnac is faster) and the peak
resident memory of each process (the collector's footprint; the forked
child counts the launching Python's pages before exec, so about 15 MiB is a
floor: compare differences above it). Results must agree
across runtimes, so a fast wrong answer never counts.

`carnac` is the interpreter (`-C tier=interp`), `carnac-clif` the compiled
tier (GC functions run interpreted inside it: the per-function fallback),
`carnac-auto` the default. Peers come from ../shared/peers/install.sh DIR
(`--peers DIR`, default /tmp/carnac-peers).

    python3 benches/gc_bench.py [--rounds 5] [--peers /tmp/carnac-peers] [--n 16] [--no-build]

A benchmark, not a test: compare ratios from one sitting on an idle machine.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PROGRAMS = {"binary_trees": 16}


def run_once(cmd):
    """Wall time, stdout and the child's own peak resident set (KiB)."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out = p.stdout.read()
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {err.strip()[:300]}")
    return dt, out.strip(), usage.ru_maxrss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--peers", default="/tmp/carnac-peers")
    ap.add_argument("--n", type=int, default=None, help="tree depth (default per program)")
    ap.add_argument("--carnac", default=os.path.join(ROOT, "target/release/carnac"))
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "carnac-cli"], cwd=ROOT, check=True)
    c = args.carnac
    rts = {
        "carnac": lambda w, n: [c, "run", "-W", "gc=y", "-C", "tier=interp", "--invoke", "run", w, str(n)],
        "carnac-clif": lambda w, n: [c, "run", "-W", "gc=y", "-C", "tier=cranelift", "--invoke", "run", w, str(n)],
        "carnac-auto": lambda w, n: [c, "run", "-W", "gc=y", "--invoke", "run", w, str(n)],
    }
    wt = os.path.join(args.peers, "bin", "wasmtime")
    if os.path.exists(wt):
        rts["wasmtime"] = lambda w, n: [wt, "run", "-W", "gc=y", "--invoke", "run", w, str(n)]
    else:
        print(f"(no Wasmtime at {wt}: run `bash ../shared/peers/install.sh {args.peers}`)", file=sys.stderr)
    times = {(p, r): [] for p in PROGRAMS for r in rts}
    rss = {}
    outs = {}
    for rnd in range(args.rounds):
        for prog, default_n in PROGRAMS.items():
            n = args.n or default_n
            wat = os.path.join(HERE, "gc_bench", prog + ".wat")
            for name, cmd in rts.items():
                dt, out, peak = run_once(cmd(wat, n))
                times[(prog, name)].append(dt)
                rss[(prog, name)] = peak
                outs.setdefault(prog, {})[name] = out
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)
    for prog in PROGRAMS:
        answers = set(outs[prog].values())
        if len(answers) != 1:
            sys.exit(f"{prog}: runtimes disagree: {outs[prog]}")
        print(f"\n{prog} (n={args.n or PROGRAMS[prog]}, result {answers.pop()})")
        print(f"  {'runtime':<14}{'median s':>10}{'min s':>9}{'max s':>9}{'peak RSS MiB':>14}")
        med = {r: statistics.median(times[(prog, r)]) for r in rts}
        for r in rts:
            ts = times[(prog, r)]
            print(f"  {r:<14}{med[r]:>10.3f}{min(ts):>9.3f}{max(ts):>9.3f}{rss[(prog, r)] / 1024:>14.1f}")
        if "wasmtime" in med:
            print("  ratios wasmtime / carnac-config (> 1: Carnac faster):")
            for r in rts:
                if r != "wasmtime":
                    print(f"    {r:<12} {med['wasmtime'] / med[r]:.2f}")


if __name__ == "__main__":
    main()
