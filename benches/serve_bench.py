#!/usr/bin/env python3
"""`carnac serve` under load, beside a native hyper hello world (the ceiling).

Starts `carnac serve` in quick mode on the Rust hello handler
(crates/carnac-wasi/tests/guests/src/bin/handler.rs, path /hello: a fresh
instance and a full `_start` per request) and the native hyper server
(crates/carnac-serve/examples/native_hello.rs, same tokio/hyper setup, no
WebAssembly), then alternates `wrk` runs against them (Debian's `wrk`,
`wrk -t2 -c32 -d5s --latency` by default) and prints per server the median
over rounds of: requests/s, p50 and p99 latency, server CPU time per request
(user + system, from /proc), and for Carnac the mean instantiation time per
request (from its Prometheus /metrics). `--baseline OLD_CARNAC_BINARY` adds an
older build as `carnac-base` to show a change's effect in the same sitting.

    python3 benches/serve_bench.py [--rounds 3] [--duration 5] [--connections 32]
                                   [--baseline OLD_CARNAC_BINARY]

The load generator shares the machine with the server, so the numbers are only
comparable within one sitting: this is a benchmark, not a test.
"""
import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICK = os.sysconf("SC_CLK_TCK")


def build():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "carnac-cli"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "carnac-serve", "--example", "native_hello"],
                   cwd=ROOT, check=True)
    tdir = os.path.join(ROOT, "target", "wasi-bench")
    subprocess.run(["cargo", "build", "--release", "-q", "--target", "wasm32-wasip1", "--bin", "handler",
                    "--manifest-path", os.path.join(ROOT, "crates/carnac-wasi/tests/guests/Cargo.toml"),
                    "--target-dir", tdir], check=True)
    return os.path.join(tdir, "wasm32-wasip1", "release", "handler.wasm")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"server exited early with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("server did not start listening")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def to_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    v = float(m.group(1))
    return {"us": v / 1e3, "ms": v, "s": v * 1e3}[m.group(2)]


def metric(port, name):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    m = re.search(rf"^{name} ([\d.e+-]+)$", data.decode(), re.M)
    return float(m.group(1)) if m else None


def run_one(name, cmd, path, args):
    port = free_port()
    proc = subprocess.Popen(cmd + [f"127.0.0.1:{port}"] if name == "native" else cmd + ["--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        url = f"http://127.0.0.1:{port}{path}"
        # Warm-up: compiled code paths, pooled memories, connections.
        subprocess.run(["wrk", "-t2", "-c8", "-d1s", url], capture_output=True, check=True)
        cpu0 = cpu_seconds(proc.pid)
        inst0 = metric(port, "carnac_instantiate_seconds_sum") if name != "native" else None
        cnt0 = metric(port, "carnac_instantiate_seconds_count") if name != "native" else None
        out = subprocess.run(["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
                              "--latency", url], capture_output=True, text=True, check=True).stdout
        cpu = cpu_seconds(proc.pid) - cpu0
        reqs = int(re.search(r"(\d+) requests in", out).group(1))
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
        if errors:
            sys.exit(f"{name}: wrk reported errors: {errors.group(0)}")
        r = {
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": to_ms(re.search(r"\s50%\s+(\S+)", out).group(1)),
            "p99": to_ms(re.search(r"\s99%\s+(\S+)", out).group(1)),
            "cpu_us": cpu / max(reqs, 1) * 1e6,
        }
        if name != "native":
            inst = metric(port, "carnac_instantiate_seconds_sum") - inst0
            cnt = metric(port, "carnac_instantiate_seconds_count") - cnt0
            r["inst_us"] = inst / max(cnt, 1) * 1e6
        return r
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--baseline", help="an older carnac binary, shown as carnac-base")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("needs wrk (Debian: apt-get install wrk)")
    handler = build()
    carnac = os.path.join(ROOT, "target/release/carnac")
    servers = {"carnac": ([carnac, "serve", handler], "/hello"),
               "carnac-clif": ([carnac, "serve", "-C", "tier=cranelift", handler], "/hello")}
    if args.baseline:
        servers["carnac-base"] = ([os.path.abspath(args.baseline), "serve", handler], "/hello")
    servers["native"] = ([os.path.join(ROOT, "target/release/examples/native_hello")], "/")
    results = {name: [] for name in servers}
    for rnd in range(args.rounds):
        for name, (cmd, path) in servers.items():
            r = run_one(name, cmd, path, args)
            results[name].append(r)
            print(f"round {rnd + 1} {name:12} {r['rps']:9.0f} req/s  p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms"
                  f"  cpu {r['cpu_us']:6.1f} us/req" + (f"  instantiate {r['inst_us']:5.1f} us" if "inst_us" in r else ""),
                  file=sys.stderr)
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, median of {args.rounds} rounds")
    print(f"{'server':12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'cpu us/req':>11} {'instantiate us':>15} {'of native':>10}")
    native_rps = statistics.median(r["rps"] for r in results["native"])
    for name, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        inst = f"{med['inst_us']:15.1f}" if "inst_us" in med else f"{'-':>15}"
        print(f"{name:12} {med['rps']:9.0f} {med['p50']:8.2f} {med['p99']:8.2f} {med['cpu_us']:11.1f} {inst}"
              f" {med['rps'] / native_rps:9.1%}")


if __name__ == "__main__":
    main()
