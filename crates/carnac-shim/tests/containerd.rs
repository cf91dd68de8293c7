//! The shim under a real containerd: this test starts its own containerd
//! (private root, state, socket and namespace under a temporary directory,
//! the shim on its PATH), imports OCI images it writes itself with `ctr images
//! import`, runs them with `ctr run --runtime io.containerd.carnac.v1`, and
//! checks what a container's user sees: output and exit status, args and env,
//! files of the image, `ctr task kill`, a memory limit, the function host on
//! the network, and that nothing is left behind.
//!
//! It needs root, cgroups and containerd + runc (installed with apt-get when
//! missing). Without root or cgroups it prints why and passes without running;
//! `CARNAC_SHIM_TEST_SNAPSHOTTER=overlayfs` picks the snapshotter (default
//! `native`). Everything it starts is stopped by PID, also when a check fails
//! (the guards' `Drop`).

#[path = "containerd/guests.rs"]
mod guests;
#[path = "containerd/harness.rs"]
mod harness;
#[path = "containerd/oci.rs"]
mod oci;

use std::process::Stdio;
use std::time::{Duration, Instant};

use harness::*;

/// Runs the serve image with `opts` (`--env ...`) and `args` (the command, if
/// not the image's), waits for it to answer `/hello` on loopback, checks that
/// `path` holds `want`, then stops it with SIGTERM: it drains and exits 0.
fn serve_and_stop(ctd: &Containerd, id: &str, opts: &[&str], args: &[&str], path: &str, want: &str) {
    let addr = format!("127.0.0.1:{}", free_port());
    let listen = format!("CARNAC_LISTEN={addr}");
    let mut all_opts = vec!["--net-host", "--env", &listen];
    all_opts.extend_from_slice(opts);
    let mut serve = Guard(
        ctd.run_cmd("docker.io/carnac-test/serve:1", id, &all_opts, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let response = loop {
        match http_get(&addr, "/hello") {
            Ok(r) => break r,
            Err(e) => {
                assert!(start.elapsed() < Duration::from_secs(30), "{id}: no HTTP answer on {addr} in 30 s: {e}");
                assert!(serve.0.try_wait().unwrap().is_none(), "{id}: the container exited:\n{}", ctd.log_tail());
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("\r\n\r\nHello from a fresh Carnac instance!\n"), "{response}");
    let other = http_get(&addr, path).unwrap();
    assert!(other.contains(want), "{id}: {path} lacks {want}: {other}");
    eprintln!("ok: {id}: the function host answered on {addr} in {:?}, {path} served", start.elapsed());
    ctd.ctr_ok(&["tasks", "kill", id]);
    let status = wait_timeout(&mut serve.0, Duration::from_secs(30)).expect("the host did not stop on SIGTERM");
    assert_eq!(status.code(), Some(0), "{id}: the host drains and exits 0 on SIGTERM");
    eprintln!("ok: {id}: SIGTERM drained the host (exit 0)");
}

#[test]
fn containers_run_on_carnac_under_containerd() {
    if let Some(reason) = unsupported() {
        eprintln!("SKIPPED containerd test: {reason}");
        return;
    }
    install_tools();
    let started = Instant::now();
    let mut ctd = Containerd::start();
    eprintln!("containerd started in {:?} ({} snapshotter)", started.elapsed(), ctd.snapshotter);

    // One standard image: the guest programs and a data file in its root filesystem.
    let (hello, echo, cat, spin, bomb, trap) = (
        wasm(guests::HELLO),
        wasm(guests::ECHO),
        wasm(guests::CAT),
        wasm(guests::SPIN),
        wasm(guests::BOMB),
        wasm(guests::TRAP),
    );
    let recurse = wasm(guests::RECURSE);
    // The same program compiled ahead of time (`carnac compile`): a .cwasm runs compiled.
    let hello_cwasm = {
        let mut config = carnac::Config::new();
        config.strategy(carnac::Strategy::Cranelift);
        carnac::Module::new(&carnac::Engine::new(&config), &hello).unwrap().serialize().unwrap()
    };
    let message = b"a file from the image's root filesystem\n";
    ctd.import(
        "programs.tar",
        &oci::image(
            "docker.io/carnac-test/programs:1",
            json(serde_json::json!({
                "Entrypoint": ["/hello.wasm"],
                "Env": ["PATH=/bin", "FROM_IMAGE=image value"],
            })),
            &[
                oci::File { path: "hello.wasm", data: &hello, mode: 0o644 },
                oci::File { path: "bin/echo.wasm", data: &echo, mode: 0o644 },
                oci::File { path: "cat.wasm", data: &cat, mode: 0o644 },
                oci::File { path: "spin.wasm", data: &spin, mode: 0o644 },
                oci::File { path: "bomb.wasm", data: &bomb, mode: 0o644 },
                oci::File { path: "trap.wasm", data: &trap, mode: 0o644 },
                oci::File { path: "recurse.wasm", data: &recurse, mode: 0o644 },
                oci::File { path: "hello.cwasm", data: &hello_cwasm, mode: 0o644 },
                oci::File { path: "not-wasm.txt", data: b"plain text", mode: 0o644 },
                oci::File { path: "data/message.txt", data: message, mode: 0o644 },
            ],
        ),
    );
    let image = "docker.io/carnac-test/programs:1";

    // 1. The entrypoint's stdout, stderr and exit status, in each tier.
    for tier in ["auto", "interp", "cranelift"] {
        let env = format!("CARNAC_TIER={tier}");
        let (code, out, err) = ctd.run(image, &format!("hello-{tier}"), &["--env", &env], &[]);
        assert_eq!(code, Some(7), "tier {tier}: stdout {out:?} stderr {err:?}\n{}", ctd.log_tail());
        assert_eq!(out, "hello from carnac\n", "tier {tier}");
        assert_eq!(err, "a line on stderr\n", "tier {tier}");
    }
    eprintln!("ok: stdout, stderr and exit status 7 in the auto, interp and cranelift tiers");
    let (code, out, err) = ctd.run(image, "hello-cwasm", &[], &["/hello.cwasm"]);
    assert_eq!((code, out.as_str(), err.as_str()), (Some(7), "hello from carnac\n", "a line on stderr\n"));
    eprintln!("ok: the program compiled ahead of time (.cwasm) runs the same");
    // A trap: status 134 and the trap with its backtrace in the log.
    let (code, out, trap_err) = ctd.run(image, "trap", &[], &["/trap.wasm"]);
    assert_eq!(code, Some(134), "stdout {out:?} stderr {trap_err:?}");
    assert!(trap_err.contains("unreachable"), "{trap_err}");
    // Endless recursion in each tier: the call stack's trap, not a crash of the process.
    for tier in ["interp", "cranelift"] {
        let env = format!("CARNAC_TIER={tier}");
        let (code, _, err) = ctd.run(image, &format!("recurse-{tier}"), &["--env", &env], &["/recurse.wasm"]);
        assert_eq!(code, Some(134), "tier {tier}: {err}");
        assert!(err.contains("stack"), "tier {tier}: {err}");
    }
    // An entrypoint that is no module: the container is refused at creation.
    let (code, _, err) = ctd.run(image, "not-wasm", &[], &["/not-wasm.txt"]);
    assert_ne!(code, Some(0), "a text file ran: {err}");
    assert!(err.contains("can't handle"), "{err}");
    eprintln!(
        "ok: a trap exits 134, stderr: {:?}; endless recursion traps in both tiers; a text entrypoint is refused",
        trap_err.lines().next().unwrap_or("")
    );

    // 2. Args and env: argv is the command, the environment the image's plus --env.
    let (code, out, err) =
        ctd.run(image, "echo", &["--env", "GREETING=hi there"], &["echo.wasm", "one", "two words", "--flag"]);
    assert_eq!(code, Some(0), "stderr: {err}");
    let (args, env) = out.split_once("ENV\n").expect("ENV section");
    assert_eq!(args, "ARGS\necho.wasm\none\ntwo words\n--flag\n");
    let env: Vec<&str> = env.lines().collect();
    for want in ["PATH=/bin", "FROM_IMAGE=image value", "GREETING=hi there"] {
        assert!(env.contains(&want), "{want} missing from {env:?}");
    }
    eprintln!("ok: args (entrypoint found on the image's PATH) and env");

    // 3. A file of the image, read through the preopened `/`.
    let (code, out, err) = ctd.run(image, "cat", &[], &["/cat.wasm"]);
    assert_eq!(code, Some(0), "stderr: {err}");
    assert_eq!(out.as_bytes(), [b"/\n".as_slice(), message].concat());
    eprintln!("ok: a file read from the image's root filesystem");

    // 4. `ctr task kill` (SIGTERM) ends a spinning guest: 128 + 15.
    let bg = Background::start(ctd.run_cmd(image, "spin", &[], &["/spin.wasm"]));
    bg.expect_line("spinning", Duration::from_secs(30));
    let killed = Instant::now();
    ctd.ctr_ok(&["tasks", "kill", "spin"]);
    let mut child = bg.child;
    let status = wait_timeout(&mut child.0, Duration::from_secs(20)).expect("the spinning guest survived SIGTERM");
    assert_eq!(status.code(), Some(143), "SIGTERM's exit status");
    eprintln!("ok: ctr task kill ended a spinning guest in {:?} (status 143)", killed.elapsed());
    // ... and SIGKILL too (what the kubelet sends when the grace period is over).
    let bg = Background::start(ctd.run_cmd(image, "spin9", &[], &["/spin.wasm"]));
    bg.expect_line("spinning", Duration::from_secs(30));
    ctd.ctr_ok(&["tasks", "kill", "-s", "SIGKILL", "spin9"]);
    let mut child = bg.child;
    let status = wait_timeout(&mut child.0, Duration::from_secs(20)).expect("the spinning guest survived SIGKILL");
    assert_eq!(status.code(), Some(137), "SIGKILL's exit status");
    eprintln!("ok: SIGKILL ended a spinning guest (status 137)");

    // 5. A memory limit stops a memory bomb; the daemon does not notice.
    let limit = 64u64 << 20;
    let limit_arg = format!("--memory-limit={limit}");
    // With the cgroup visible in the container (as Kubernetes mounts it), the
    // guest's memory.grow is refused below the limit.
    let (code, out, err) = ctd.run(
        image,
        "bomb",
        &[&limit_arg, "--mount", "type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro:nosuid:nodev:noexec"],
        &["/bomb.wasm"],
    );
    assert_eq!(code, Some(42), "stdout {out:?} stderr {err:?}");
    let mib: u64 =
        out.trim().strip_prefix("refused after ").and_then(|s| s.strip_suffix(" MiB")).unwrap().parse().unwrap();
    assert!((16..64).contains(&mib), "grew {mib} MiB under a 64 MiB limit");
    eprintln!("ok: memory bomb refused after {mib} MiB under a 64 MiB cgroup limit (exit 42)");
    // Without it, the kernel's cgroup limit ends the process (OOM kill).
    let (code, out, err) = ctd.run(image, "bomb-oom", &[&limit_arg], &["/bomb.wasm"]);
    assert_eq!(code, Some(137), "stdout {out:?} stderr {err:?}");
    let daemon_pid = ctd.daemon.as_ref().unwrap().id() as i32;
    assert!(alive(daemon_pid), "containerd died");
    ctd.ctr_ok(&["version"]);
    let (code, out, _) = ctd.run(image, "after-bomb", &[], &[]);
    assert_eq!((code, out.as_str()), (Some(7), "hello from carnac\n"));
    eprintln!("ok: without the cgroup mount the OOM killer ends the bomb (137); containerd still serves");

    // 6. A `carnac serve` image, the one `deploy/kubernetes/example/Dockerfile`
    // builds: its carnac.toml as entrypoint, a handler beside it.
    let config = include_bytes!("../../../deploy/kubernetes/example/carnac.toml");
    let handler = include_bytes!("../../../examples/hello-handler.wat");
    ctd.import(
        "serve.tar",
        &oci::image(
            "docker.io/carnac-test/serve:1",
            json(serde_json::json!({ "Entrypoint": ["/app/carnac.toml"] })),
            &[
                oci::File { path: "app/carnac.toml", data: config, mode: 0o644 },
                oci::File { path: "app/hello-handler.wat", data: handler, mode: 0o644 },
            ],
        ),
    );
    serve_and_stop(&ctd, "serve", &[], &[], "/metrics", "carnac_tier_info");
    // A module on every path, chosen by the container's env (CARNAC_SERVE; a
    // pod annotation through the downward API), interpreted (CARNAC_TIER).
    serve_and_stop(
        &ctd,
        "serve-module",
        &["--env", "CARNAC_SERVE=1", "--env", "CARNAC_TIER=interp"],
        &["/app/hello-handler.wat"],
        "/metrics",
        "carnac_tier_info{tier=\"interp\"} 1",
    );

    // 7. runwasi's Wasm OCI artifact: the module is a layer of the image (no
    // root filesystem); runwasi's library reads it from containerd's content
    // store. containerd 1.6 cannot unpack such an image (1.7 skips non-tar
    // layers), so the container gets an empty root filesystem and its image
    // is set through the API, as the CRI plugin of a newer containerd does.
    ctd.import_with(
        "artifact.tar",
        &oci::wasm_artifact("docker.io/carnac-test/artifact:1", &echo),
        &["--all-platforms", "--no-unpack"],
    );
    let empty_root = ctd.dir.join("empty-rootfs");
    std::fs::create_dir_all(&empty_root).unwrap();
    ctd.ctr_ok(&[
        "containers",
        "create",
        "--runtime",
        RUNTIME,
        "--rootfs",
        empty_root.to_str().unwrap(),
        "artifact",
        "/module.wasm",
        "from",
        "a layer",
    ]);
    ctd.set_image("artifact", "docker.io/carnac-test/artifact:1");
    let out = ctd.ctr(&["tasks", "start", "artifact"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout} {}\n{}", String::from_utf8_lossy(&out.stderr), ctd.log_tail());
    assert!(stdout.starts_with("ARGS\n/module.wasm\nfrom\na layer\nENV\n"), "{stdout}");
    ctd.ctr_ok(&["containers", "rm", "artifact"]);
    eprintln!("ok: a Wasm OCI artifact's module layer ran");

    // 7. Cleanup: no task, no container, no shim, no mount left.
    ctd.remove_all();
    let tasks = ctd.ctr_ok(&["tasks", "ls", "-q"]);
    assert_eq!(String::from_utf8_lossy(&tasks.stdout).trim(), "", "tasks left");
    let containers = ctd.ctr_ok(&["containers", "ls", "-q"]);
    assert_eq!(String::from_utf8_lossy(&containers.stdout).trim(), "", "containers left");
    ctd.stop_and_check_clean();
    eprintln!("ok: containerd stopped, no process, mount or cgroup left; whole test {:?}", started.elapsed());
}
