#!/usr/bin/env python3
"""Pre-initialised snapshots, beside Wasmtime (its `wasmtime wizer`), same sitting.

1. From the CLI: `examples/preinit.wat` (a start-up that builds 32 MiB of
   state) run as it is, and its snapshot (`carnac snapshot`; Wasmtime:
   `wasmtime wizer`), each as wasm and compiled ahead of time (`carnac
   compile`; `wasmtime compile`). Median wall time of whole processes.
2. In one process: instantiate + drop of the warm state (the `instantiate`
   example of carnac-wasi with `--init`), interpreter and compiled tier; with
   `--wasmtime-crate`, Wasmtime's pooling allocator with copy-on-write images
   on its wizer output (benches/wasmtime-instantiate, built here: ~10 minutes).
3. `carnac serve`: requests per second of the hello handler
   (examples/hello-handler.wat) and of examples/warm-handler.wat (a ~50-90 ms
   start-up) on a route with `init = "init"`, with `wrk`.

    python3 benches/snapshot_bench.py [--runs 11] [--duration 5] [--wasmtime-crate]

Peers come from ../shared/peers/install.sh (wasmtime on PATH, or
/tmp/carnac-peers/bin); rows for a missing peer are skipped, with a note.
This is a benchmark, not a test: numbers compare within one sitting only.
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CARNAC = os.path.join(ROOT, "target", "release", "carnac")
INSTANTIATE = os.path.join(ROOT, "target", "release", "examples", "instantiate")


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def timed(cmd, runs):
    run(cmd)  # warm-up (and the code cache, where one is used)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        run(cmd)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url, duration):
    out = run(["wrk", "-t2", "-c32", f"-d{duration}s", url]).stdout.decode()
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    sys.exit(f"no rate in wrk's output:\n{out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=11)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--wasmtime-crate", action="store_true")
    args = ap.parse_args()
    run(["cargo", "build", "--release", "-q", "-p", "carnac-cli"], cwd=ROOT)
    run(["cargo", "build", "--release", "-q", "-p", "carnac-wasi", "--example", "instantiate"], cwd=ROOT)
    wasmtime = shutil.which("wasmtime") or (os.path.exists("/tmp/carnac-peers/bin/wasmtime")
                                            and "/tmp/carnac-peers/bin/wasmtime")
    tmp = tempfile.mkdtemp(prefix="carnac-snapshot-bench-")
    env = dict(os.environ, CARNAC_CACHE_DIR=os.path.join(tmp, "cache"))
    wat = os.path.join(ROOT, "examples", "preinit.wat")
    f = lambda name: os.path.join(tmp, name)
    run([CARNAC, "snapshot", "--env", "GREETING=hello", wat, "-o", f("snap.wasm")], env=env)
    run([CARNAC, "compile", f("snap.wasm"), "-o", f("snap.cwasm")], env=env)
    run([CARNAC, "compile", wat, "-o", f("orig.cwasm")], env=env)

    print("== From the CLI: median wall time of the whole process (ms), and its ratio to the original")
    rows = []

    def pair(label, orig_cmd, snap_cmd, e=env):
        o, s = timed(orig_cmd, args.runs), timed(snap_cmd, args.runs)
        rows.append((label, o, s))
        print(f"{label:34} original {o:8.1f}   snapshot {s:8.1f}   ratio {s / o:5.2f}")

    pair("carnac (wasm, -C tier=auto)", [CARNAC, "run", "--env", "GREETING=hello", wat],
         [CARNAC, "run", f("snap.wasm")])
    pair("carnac (wasm, -C tier=interp)", [CARNAC, "run", "-C", "tier=interp", "--env", "GREETING=hello", wat],
         [CARNAC, "run", "-C", "tier=interp", f("snap.wasm")])
    pair("carnac (compiled ahead, .cwasm)", [CARNAC, "run", "--env", "GREETING=hello", f("orig.cwasm")],
         [CARNAC, "run", f("snap.cwasm")])
    if wasmtime:
        run(["wasm-tools", "parse", wat, "-o", f("preinit.wasm")]) if shutil.which("wasm-tools") else \
            run([CARNAC, "snapshot", "--init-func", "_start", wat, "-o", f("unused.wasm")])
        src = f("preinit.wasm") if os.path.exists(f("preinit.wasm")) else wat
        run([wasmtime, "wizer", "-S", "cli=y", "--init-func", "wizer.initialize", "--env", "GREETING=hello",
             src, "-o", f("wizer.wasm")])
        run([wasmtime, "compile", f("wizer.wasm"), "-o", f("wizer.cwasm")])
        run([wasmtime, "compile", src, "-o", f("wt-orig.cwasm")])
        pair("wasmtime (wasm)", [wasmtime, "run", "--env", "GREETING=hello", src], [wasmtime, "run", f("wizer.wasm")])
        pair("wasmtime (compiled ahead, .cwasm)",
             [wasmtime, "run", "--allow-precompiled", "--env", "GREETING=hello", f("wt-orig.cwasm")],
             [wasmtime, "run", "--allow-precompiled", f("wizer.cwasm")])
        pair("carnac on wasmtime wizer's output", [CARNAC, "run", "--env", "GREETING=hello", wat],
             [CARNAC, "run", f("wizer.wasm")])
    else:
        print("(wasmtime not found: its rows skipped; see ../shared/peers/install.sh)")

    print("\n== In one process: instantiate + drop of the warm 32 MiB state (best of 5 rounds)")
    for tier in ["interp", "cranelift"]:
        out = run([INSTANTIATE, wat, "20000", f"--tier={tier}", "--init=wizer.initialize"], env=env).stdout.decode()
        print(f"carnac {tier:10} {out.strip()}")
    if args.wasmtime_crate and wasmtime:
        manifest = os.path.join(HERE, "wasmtime-instantiate", "Cargo.toml")
        run(["cargo", "build", "--release", "-q", "--manifest-path", manifest])
        exe = os.path.join(HERE, "wasmtime-instantiate", "target", "release", "wasmtime-instantiate")
        print(run([exe, f("wizer.wasm"), "20000"]).stdout.decode().strip())

    print("\n== carnac serve: requests/s, hello handler vs a pre-initialised route (wrk -t2 -c32)")
    cfg = f("carnac.toml")
    with open(cfg, "w") as c:
        c.write(f'[[route]]\npath = "/hello"\nmodule = "{ROOT}/examples/hello-handler.wat"\n\n'
                f'[[route]]\npath = "/warm"\nmodule = "{ROOT}/examples/warm-handler.wat"\ninit = "init"\n')
    port = free_port()
    server = subprocess.Popen([CARNAC, "serve", cfg, "--listen", f"127.0.0.1:{port}"], env=env,
                             stdout=subprocess.DEVNULL, stderr=open(f("serve.log"), "w"))
    try:
        end = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.time() > end or server.poll() is not None:
                    sys.exit("the server did not start")
                time.sleep(0.1)
        rates = {"hello": [], "warm": []}
        for _ in range(3):
            for p in rates:
                rates[p].append(wrk(f"http://127.0.0.1:{port}/{p}", args.duration))
        hello, warm = statistics.median(rates["hello"]), statistics.median(rates["warm"])
        init = [l for l in open(f("serve.log")) if l.startswith("init ")]
        print(f"hello: {hello:9.0f} req/s   warm (init at load): {warm:9.0f} req/s   ratio {warm / hello:5.2f}")
        print(init[0].strip() if init else "(no init line in the log)")
    finally:
        server.terminate()
        server.wait()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
