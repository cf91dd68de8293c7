#!/usr/bin/env python3
"""Side-by-side benchmark: Carnac against the peer runtimes installed by
../shared/peers/install.sh (Wasmtime, wasmi, wasm3, WAMR's iwasm).

Every program in programs/ exports `run(n: i32) -> i32` and is invoked the same
way on every runtime; runs are interleaved (one round = every runtime once per
program), the median wall time per runtime is reported with the ratio
peer/Carnac (> 1 means Carnac is faster), then the geometric mean of the ratios.
Results must agree across runtimes, so a fast wrong answer never counts.

    python3 benches/bench.py [--rounds 5] [--peers /tmp/carnac-peers] [--only fib,sieve]
                             [--suite wasi|wat|simd|startup|all] [--baseline OLD_CARNAC_BINARY]
                             [--runtimes carnac-clif-nc,carnac-base-interp,...]

`--suite simd` runs programs/rust/src/bin/simd.rs built with `+simd128` on Carnac,
wasmi and Wasmtime (the peers with SIMD), beside the same source built without
SIMD on Carnac (`carnac-scalar`). `carnac` is Carnac's interpreter (`-C tier=interp`), `carnac-clif` its compiled tier
(`-C tier=cranelift`), `carnac-auto` the default (automatic tiering, code cache on) and `carnac-auto-nc` the default
without the code cache (every run starts interpreted and tiers up). `--baseline` adds another Carnac binary
(`carnac-base`, e.g. built from an older commit) to every table, to show a
change's effect in the same sitting, with `carnac-base-interp` and
`carnac-base-clif-nc` beside `carnac` and `carnac-clif-nc` (the wat and WASI
suites); `--runtimes` keeps only the named columns (and `carnac`).

`--suite startup` times whole processes that do little but start: compiling and
instantiating a generated 1 MiB module (gen_big_module.py; `run` touches one
function) and a hello-world WASI program. Carnac runs twice: validating every
body up front (its default, as the specification prescribes) and with
`--lazy-validation`; wasmi twice: its default (eager validation, lazy
translation) and `--compilation-mode lazy` (no validation until first call).

Whole-process wall time, so it includes start-up (small next to these runs).
This is a benchmark, not a test: the machine is shared and noisy, so compare
ratios from one sitting, never absolute times across sittings.
"""
import argparse
import math
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Hand-written .wat programs: program -> argument n of `run(n)` (about a second on Carnac).
PROGRAMS = {
    "fib": 32,
    "arith": 60_000_000,
    "sieve": 10_000_000,
    "matmul": 200,
}

# Rust programs (programs/rust, built for wasm32-wasip1): program -> argv[1].
WASI_PROGRAMS = {
    "fib": 32,
    "nbody": 300_000,
    "spectral": 500,
    "sort": 1_000_000,
    "sha256": 48,
    "hashmap": 600_000,
    "json": 20_000,
    "sieve": 10_000_000,
    "matmul": 200,
}


BASELINE = None  # --baseline: another carnac binary, shown as "carnac-base"
RUNTIMES = set()  # --runtimes: the columns to run besides "carnac" (all when empty)


def wasi_runtimes(peers):
    b = os.path.join(peers, "bin")
    py = os.path.join(peers, "venv", "bin", "python")
    w3 = os.path.join(ROOT, "..", "shared", "peers", "wasm3-run.py")
    carnac = os.path.join(ROOT, "target", "release", "carnac")
    rts = {"carnac": lambda w, w3m, n: [carnac, "run", "-C", "tier=interp", w, str(n)]}
    rts["carnac-clif"] = lambda w, w3m, n: [carnac, "run", "-C", "tier=cranelift", w, str(n)]
    rts["carnac-clif-nc"] = lambda w, w3m, n: [carnac, "run", "-C", "tier=cranelift", "-C", "cache=n", w, str(n)]
    rts["carnac-auto"] = lambda w, w3m, n: [carnac, "run", w, str(n)]
    rts["carnac-auto-nc"] = lambda w, w3m, n: [carnac, "run", "-C", "cache=n", w, str(n)]
    if BASELINE:
        rts["carnac-base"] = lambda w, w3m, n: [BASELINE, "run", w, str(n)]
        rts["carnac-base-interp"] = lambda w, w3m, n: [BASELINE, "run", "-C", "tier=interp", w, str(n)]
        rts["carnac-base-clif-nc"] = lambda w, w3m, n: [BASELINE, "run", "-C", "tier=cranelift", "-C", "cache=n", w, str(n)]
    cands = {
        "wasmi": (os.path.join(b, "wasmi"), lambda w, w3m, n: [os.path.join(b, "wasmi"), w, str(n)]),
        "wasm3": (py, lambda w, w3m, n: [py, w3, w3m, str(n)]),
        "iwasm-fast": (os.path.join(b, "iwasm-fast"), lambda w, w3m, n: [os.path.join(b, "iwasm-fast"), w3m, str(n)]),
        "wasmtime": (os.path.join(b, "wasmtime"), lambda w, w3m, n: [os.path.join(b, "wasmtime"), "run", w, str(n)]),
        # Wasmtime caches compiled code between runs (on by default); Carnac's
        # compiled tier compiles every time, as Wasmtime does without its cache.
        "wasmtime-nocache": (os.path.join(b, "wasmtime"),
                             lambda w, w3m, n: [os.path.join(b, "wasmtime"), "run", "-C", "cache=n", w, str(n)]),
    }
    for name, (exe, cmd) in cands.items():
        if os.path.exists(exe) and (name != "wasm3" or os.path.exists(w3)):
            rts[name] = cmd
    return rts


def runtimes(peers):
    b = os.path.join(peers, "bin")
    py = os.path.join(peers, "venv", "bin", "python")
    w3 = os.path.join(ROOT, "..", "shared", "peers", "wasm3-run.py")
    carnac = os.path.join(ROOT, "target", "release", "carnac")
    rts = {"carnac": lambda w, n: [carnac, "run", "-C", "tier=interp", "--invoke", "run", w, str(n)]}
    rts["carnac-clif"] = lambda w, n: [carnac, "run", "-C", "tier=cranelift", "--invoke", "run", w, str(n)]
    rts["carnac-clif-nc"] = lambda w, n: [carnac, "run", "-C", "tier=cranelift", "-C", "cache=n", "--invoke", "run", w, str(n)]
    rts["carnac-auto"] = lambda w, n: [carnac, "run", "--invoke", "run", w, str(n)]
    rts["carnac-auto-nc"] = lambda w, n: [carnac, "run", "-C", "cache=n", "--invoke", "run", w, str(n)]
    if BASELINE:
        rts["carnac-base"] = lambda w, n: [BASELINE, "run", "--invoke", "run", w, str(n)]
        rts["carnac-base-interp"] = lambda w, n: [BASELINE, "run", "-C", "tier=interp", "--invoke", "run", w, str(n)]
        rts["carnac-base-clif-nc"] = lambda w, n: [BASELINE, "run", "-C", "tier=cranelift", "-C", "cache=n",
                                                   "--invoke", "run", w, str(n)]
    cands = {
        "wasmi": (os.path.join(b, "wasmi"), lambda w, n: [os.path.join(b, "wasmi"), "--invoke", "run", w, str(n)]),
        "wasm3": (py, lambda w, n: [py, w3, "--invoke", "run", w, str(n)]),
        "iwasm-fast": (os.path.join(b, "iwasm-fast"), lambda w, n: [os.path.join(b, "iwasm-fast"), "-f", "run", w, str(n)]),
        "wasmtime": (os.path.join(b, "wasmtime"), lambda w, n: [os.path.join(b, "wasmtime"), "run", "--invoke", "run", w, str(n)]),
        "wasmtime-nocache": (os.path.join(b, "wasmtime"),
                             lambda w, n: [os.path.join(b, "wasmtime"), "run", "-C", "cache=n", "--invoke", "run", w, str(n)]),
    }
    for name, (exe, cmd) in cands.items():
        if os.path.exists(exe) and (name != "wasm3" or os.path.exists(w3)):
            rts[name] = cmd
    return rts


def normalize(out):
    """The program's answer: its output, with iwasm's `0x..:i32` results as signed integers."""
    lines = out.strip().splitlines()
    line = lines[-1].strip() if lines else ""
    if line.endswith(":i32"):
        v = int(line[:-4], 16)
        return str(v - (1 << 32) if v >= 1 << 31 else v)
    return out.strip()


TIME = "/usr/bin/time"


def run_once(cmd):
    """Runs a command; returns (seconds, peak RSS in KB or None, result)."""
    import tempfile
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rssf:
        wrapped = [TIME, "-f", "%M", "-o", rssf.name] + cmd if os.path.exists(TIME) else cmd
        t0 = time.perf_counter()
        res = subprocess.run(wrapped, capture_output=True, text=True)
        dt = time.perf_counter() - t0
        lines = rssf.read().strip().splitlines()
    return dt, (int(lines[-1]) if lines and lines[-1].isdigit() else None), res


def measure(progs, rts, cmds, rounds, label):
    """Interleaved rounds; prints a table of medians and ratios; returns whether outputs agree."""
    rts = [r for r in rts if r == "carnac" or not RUNTIMES or r in RUNTIMES]
    times = {p: {r: [] for r in rts} for p in progs}
    rss = {p: {r: [] for r in rts} for p in progs}
    answers = {p: {} for p in progs}
    for rnd in range(rounds):
        for p in progs:
            for r in rts:
                dt, kb, res = run_once(cmds(r, p))
                if res.returncode != 0:
                    print(f"{r} failed on {p}: {res.stderr.strip()[:200]}", file=sys.stderr)
                    continue
                answers[p].setdefault(r, normalize(res.stdout))
                times[p][r].append(dt)
                if kb:
                    rss[p][r].append(kb)
        print(f"{label}: round {rnd + 1}/{rounds} done", file=sys.stderr)
    peers = [r for r in rts if r != "carnac"]
    print(f"\n{label}")
    print(f"{'program':<9} {'carnac':>9}" + "".join(f" {r:>18}" for r in peers))
    ratios = {r: [] for r in peers}
    ok = True
    for p in progs:
        c = statistics.median(times[p]["carnac"]) if times[p]["carnac"] else float("nan")
        row = f"{p:<9} {c:>8.3f}s"
        for r in peers:
            if not times[p][r]:
                row += f" {'failed':>18}"
                continue
            m = statistics.median(times[p][r])
            ratios[r].append(m / c)
            row += f" {m:>8.3f}s ({m / c:>5.2f}x)"
        print(row)
        if len(set(answers[p].values())) != 1:
            ok = False
            print(f"  MISMATCH on {p}: {answers[p]}")
    geo = "".join(
        f" {'':>9}({math.exp(sum(map(math.log, v)) / len(v)):>5.2f}x)" if v else f" {'-':>18}"
        for v in ratios.values()
    )
    print(f"{'geomean':<9} {'':>9}{geo}")
    print("ratio = peer time / Carnac time (higher is better for Carnac); results agree:", ok)
    print(f"peak RSS, median MB: {'program':<9}" + "".join(f" {r:>11}" for r in rts))
    for p in progs:
        row = f"                     {p:<9}"
        for r in rts:
            row += f" {statistics.median(rss[p][r]) / 1024:>10.1f}M" if rss[p][r] else f" {'-':>11}"
        print(row)
    return ok


def startup_suite(args, out_dir):
    """Start-up: a 1 MiB module (compile + instantiate + one tiny call) and hello world."""
    b = os.path.join(args.peers, "bin")
    wasm_tools = os.path.join(b, "wasm-tools")
    big_wat = os.path.join(out_dir, "big.wat")
    big = os.path.join(out_dir, "big.wasm")
    subprocess.run([sys.executable, os.path.join(HERE, "gen_big_module.py"), big_wat], check=True)
    if not os.path.exists(wasm_tools):
        print("startup suite needs wasm-tools from the peers folder", file=sys.stderr)
        return True
    subprocess.run([wasm_tools, "parse", big_wat, "-o", big], check=True)
    tdir = os.path.join(ROOT, "target", "bench-programs")
    subprocess.run(["cargo", "build", "--release", "-q", "--target", "wasm32-wasip1", "--bin", "hello",
                    "--manifest-path", os.path.join(HERE, "programs", "rust", "Cargo.toml"),
                    "--target-dir", tdir], check=True)
    hello = os.path.join(tdir, "wasm32-wasip1", "release", "hello.wasm")
    carnac = os.path.join(ROOT, "target", "release", "carnac")
    wasmi = os.path.join(b, "wasmi")
    def cmd(*opts):
        return lambda p: ([carnac, "run", *opts, "--invoke", "run", big, "5"] if p == "1MiB"
                          else [carnac, "run", *opts, hello])
    rts = {
        "carnac": cmd("-C", "tier=interp"),
        "carnac-lazyval": cmd("-C", "tier=interp", "--lazy-validation"),
        "carnac-auto": cmd(),
        "carnac-auto-nc": cmd("-C", "cache=n"),
    }
    if BASELINE:
        rts["carnac-base"] = lambda p: [BASELINE, "run", "--invoke", "run", big, "5"] if p == "1MiB" else [BASELINE, "run", hello]
    if os.path.exists(wasmi):
        rts["wasmi"] = lambda p: [wasmi, "--invoke", "run", big, "5"] if p == "1MiB" else [wasmi, hello]
        rts["wasmi-lazy"] = lambda p: ([wasmi, "--compilation-mode", "lazy", "--invoke", "run", big, "5"]
                                       if p == "1MiB" else [wasmi, "--compilation-mode", "lazy", hello])
    wt = os.path.join(b, "wasmtime")
    if os.path.exists(wt):
        rts["wasmtime"] = lambda p: [wt, "run", "--invoke", "run", big, "5"] if p == "1MiB" else [wt, "run", hello]
    progs = {"1MiB": None, "hello": None}
    return measure(progs, rts, lambda r, p: rts[r](p), max(args.rounds, 11),
                   "start-up: compile + instantiate a 1 MiB module / hello world (whole process)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--peers", default=os.environ.get("CARNAC_PEERS", "/tmp/carnac-peers"))
    ap.add_argument("--only", default="")
    ap.add_argument("--suite", choices=["wasi", "wat", "simd", "startup", "all"], default="all")
    ap.add_argument("--baseline", default="")
    ap.add_argument("--runtimes", default="", help="comma-separated columns to run besides carnac (default: all)")
    args = ap.parse_args()
    global BASELINE, RUNTIMES
    BASELINE = os.path.abspath(args.baseline) if args.baseline else None
    RUNTIMES = set(filter(None, args.runtimes.split(",")))
    only = set(filter(None, args.only.split(",")))

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "carnac-cli"], cwd=ROOT, check=True)
    wasm_tools = os.path.join(args.peers, "bin", "wasm-tools")
    out_dir = os.path.join(ROOT, "target", "bench-wasm")
    os.makedirs(out_dir, exist_ok=True)
    ok = True

    if args.suite in ("wasi", "all"):
        tdir = os.path.join(ROOT, "target", "bench-programs")
        subprocess.run(["cargo", "build", "--release", "-q", "--target", "wasm32-wasip1",
                        "--manifest-path", os.path.join(HERE, "programs", "rust", "Cargo.toml"),
                        "--target-dir", tdir], check=True)
        built = os.path.join(tdir, "wasm32-wasip1", "release")
        progs = {k: v for k, v in WASI_PROGRAMS.items() if not only or k in only}
        rts = wasi_runtimes(args.peers)
        # The same sources built for this machine: the native baseline.
        native = subprocess.run(["cargo", "build", "--release", "-q"] + [a for p in progs for a in ("--bin", p)]
                                + ["--manifest-path", os.path.join(HERE, "programs", "rust", "Cargo.toml"),
                                   "--target-dir", tdir])
        if native.returncode == 0:
            ndir = os.path.join(tdir, "release")
            rts["native"] = lambda w, w3m, n: [os.path.join(ndir, os.path.basename(w)[:-5]), str(n)]
        w3 = {}
        for p in progs:
            w = os.path.join(built, p + ".wasm")
            w3[p] = w
            if os.path.exists(wasm_tools):
                # wasm3 0.5 and the 2020 WAMR reject current LLVM's long LEB encodings.
                w3[p] = os.path.join(out_dir, p + ".w3.wasm")
                text = subprocess.run([wasm_tools, "print", w], capture_output=True, check=True).stdout
                subprocess.run([wasm_tools, "parse", "-o", w3[p], "/dev/stdin"], input=text, check=True)
        cmds = lambda r, p: rts[r](os.path.join(built, p + ".wasm"), w3[p], progs[p])
        ok &= measure(progs, rts, cmds, args.rounds, "WASI programs (Rust, wasm32-wasip1)")

    if args.suite in ("simd", "all"):
        manifest = os.path.join(HERE, "programs", "rust", "Cargo.toml")
        builds = {}
        for flavour, flags in (("scalar", ""), ("simd128", "-C target-feature=+simd128")):
            tdir = os.path.join(ROOT, "target", "bench-simd-" + flavour)
            env = dict(os.environ, RUSTFLAGS=flags)
            subprocess.run(["cargo", "build", "--release", "-q", "--target", "wasm32-wasip1", "--bin", "simd",
                            "--manifest-path", manifest, "--target-dir", tdir], check=True, env=env)
            builds[flavour] = os.path.join(tdir, "wasm32-wasip1", "release", "simd.wasm")
        b = os.path.join(args.peers, "bin")
        carnac = os.path.join(ROOT, "target", "release", "carnac")
        rts = {"carnac": lambda w, n: [carnac, "run", "-C", "tier=interp", w, str(n)]}
        if BASELINE:
            rts["carnac-base"] = lambda w, n: [BASELINE, "run", w, str(n)]
        rts["carnac-scalar"] = lambda w, n: [carnac, "run", builds["scalar"], str(n)]
        for name, cmd in (("wasmi", lambda w, n: [os.path.join(b, "wasmi"), w, str(n)]),
                          ("wasmtime", lambda w, n: [os.path.join(b, "wasmtime"), "run", w, str(n)])):
            if os.path.exists(os.path.join(b, name)):
                rts[name] = cmd
        progs = {"simd": 20}
        cmds = lambda r, p: rts[r](builds["simd128"], progs[p])
        ok &= measure(progs, rts, cmds, args.rounds,
                      "SIMD program (Rust +simd128; carnac-scalar = same source without SIMD, on Carnac)")

    if args.suite in ("startup", "all"):
        ok &= startup_suite(args, out_dir)

    if args.suite in ("wat", "all"):
        rts = runtimes(args.peers)
        progs = {k: v for k, v in PROGRAMS.items() if not only or k in only}
        wasm = {}
        for p in progs:
            src = os.path.join(HERE, "programs", p + ".wat")
            dst = os.path.join(out_dir, p + ".wasm")
            if os.path.exists(wasm_tools):
                subprocess.run([wasm_tools, "parse", src, "-o", dst], check=True)
                wasm[p] = dst
            else:
                wasm[p] = src  # Carnac reads text; peers need wasm-tools to get binaries
                rts = {"carnac": rts["carnac"]}
        cmds = lambda r, p: rts[r](wasm[p], progs[p])
        ok &= measure(progs, rts, cmds, args.rounds, "hand-written .wat programs (--invoke run N)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
