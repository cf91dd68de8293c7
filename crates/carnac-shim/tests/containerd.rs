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
#[path = "containerd/oci.rs"]
mod oci;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const RUNTIME: &str = "io.containerd.carnac.v1";
const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-carnac-v1");

/// Why this machine cannot run the test, if it cannot.
fn unsupported() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (containerd and the shim need root)".into());
    }
    let v1 = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists();
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if !v1 && !v2 {
        return Some("no memory cgroup mounted at /sys/fs/cgroup".into());
    }
    None
}

fn have(tool: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file()
}

/// containerd, ctr and runc from the Debian packages, when missing.
fn install_tools() {
    if have("containerd") && have("ctr") && have("runc") {
        return;
    }
    eprintln!("containerd test: installing containerd and runc with apt-get");
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "containerd", "runc"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .expect("apt-get (containerd and runc are needed by this test)");
    if !status.success() {
        let update = Command::new("apt-get").arg("update").status().expect("apt-get update");
        assert!(update.success(), "apt-get update failed");
        let status = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "containerd", "runc"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get");
        assert!(status.success(), "apt-get install containerd runc failed");
    }
}

/// Sends `signal` to `pid` if it is still there.
fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a pid we started (or read from a pid file of our
    // own containerd's state) and a valid signal number; it touches no memory.
    unsafe { libc::kill(pid, signal) };
}

fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0): look at its state too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// Waits for a child, up to `limit`: its status, or `None` if it still runs.
fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed (and reaped) when dropped, if still running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            kill(self.0.id() as i32, libc::SIGKILL);
            let _ = self.0.wait();
        }
    }
}

/// Our containerd: its directory, socket, namespace and process.
struct Containerd {
    dir: PathBuf,
    sock: PathBuf,
    namespace: String,
    snapshotter: String,
    daemon: Option<Child>,
    /// `/run/containerd` did not exist before: the empty directories the shim
    /// and `ctr` make there (`s`, `fifo`, `carnac`) are removed at the end.
    made_run_dir: bool,
}

impl Containerd {
    fn start() -> Containerd {
        let made_run_dir = !Path::new("/run/containerd").exists();
        let dir = PathBuf::from(format!("/tmp/carnac-shim-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        // The shim on containerd's PATH under the name that maps to io.containerd.carnac.v1.
        std::os::unix::fs::symlink(SHIM, dir.join("bin/containerd-shim-carnac-v1")).unwrap();
        let sock = dir.join("containerd.sock");
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
  level = "info"
[metrics]
  address = ""
"#,
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = sock.display(),
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let path = format!("{}:{}", dir.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .env("PATH", path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd");
        let snapshotter = std::env::var("CARNAC_SHIM_TEST_SNAPSHOTTER").unwrap_or_else(|_| "native".into());
        let mut c = Containerd {
            dir,
            sock,
            namespace: format!("carnac-test-{}", std::process::id()),
            snapshotter,
            daemon: Some(daemon),
            made_run_dir,
        };
        let start = Instant::now();
        loop {
            if c.ctr(&["version"]).output().is_ok_and(|o| o.status.success()) {
                break;
            }
            if let Some(status) = c.daemon.as_mut().unwrap().try_wait().unwrap() {
                panic!("containerd exited ({status}) at start:\n{}", c.log());
            }
            assert!(start.elapsed() < Duration::from_secs(30), "containerd did not answer in 30 s:\n{}", c.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// The last lines of containerd's log (where the shim's log goes too).
    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn ctr(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.sock).arg("--namespace").arg(&self.namespace).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    fn ctr_ok(&self, args: &[&str]) -> Output {
        let out = self.ctr(args).output().expect("ctr");
        assert!(
            out.status.success(),
            "ctr {args:?} failed: {}\n{}\ncontainerd log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        out
    }

    /// Writes an OCI layout tarball and imports it.
    fn import(&self, file: &str, tarball: &[u8]) {
        self.import_with(file, tarball, &[]);
    }

    /// [`Self::import`] with more `ctr images import` options.
    fn import_with(&self, file: &str, tarball: &[u8], opts: &[&str]) {
        let path = self.dir.join(file);
        std::fs::write(&path, tarball).unwrap();
        let snap = format!("--snapshotter={}", self.snapshotter);
        let mut args = vec!["images", "import", &snap];
        args.extend_from_slice(opts);
        args.push(path.to_str().unwrap());
        self.ctr_ok(&args);
    }

    /// Sets container `id`'s image (what runwasi reads the module layers of).
    fn set_image(&self, id: &str, image: &str) {
        use containerd_client::services::v1::containers_client::ContainersClient;
        use containerd_client::services::v1::{GetContainerRequest, UpdateContainerRequest};
        use containerd_client::tonic::Request;
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let channel = containerd_client::connect(&self.sock).await.expect("connecting to containerd");
            let mut client = ContainersClient::new(channel);
            let req = GetContainerRequest { id: id.to_string() };
            let mut container = client
                .get(containerd_client::with_namespace!(req, self.namespace))
                .await
                .expect("get container")
                .into_inner()
                .container
                .expect("container");
            container.image = image.to_string();
            // No mask: every field is replaced, by the values just read.
            let req = UpdateContainerRequest { container: Some(container), update_mask: None };
            client.update(containerd_client::with_namespace!(req, self.namespace)).await.expect("update container");
        });
    }

    /// `ctr run --rm` in the foreground: status, stdout, stderr (60 s at most).
    fn run(&self, image: &str, id: &str, opts: &[&str], args: &[&str]) -> (Option<i32>, String, String) {
        let mut child =
            Guard(self.run_cmd(image, id, opts, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
        let mut out = child.0.stdout.take().unwrap();
        let mut err = child.0.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let status = wait_timeout(&mut child.0, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("ctr run {id} did not end in 60 s; containerd log:\n{}", self.log_tail()));
        (status.code(), reader.join().unwrap(), err_reader.join().unwrap())
    }

    fn run_cmd(&self, image: &str, id: &str, opts: &[&str], args: &[&str]) -> Command {
        let snap = format!("--snapshotter={}", self.snapshotter);
        let mut all = vec!["run", "--rm", "--runtime", RUNTIME, &snap];
        all.extend_from_slice(opts);
        all.push(image);
        all.push(id);
        all.extend_from_slice(args);
        self.ctr(&all)
    }

    /// Shim processes of this containerd (from their pid files) still running.
    fn shim_pids(&self) -> Vec<i32> {
        let tasks = self.dir.join("state/io.containerd.runtime.v2.task").join(&self.namespace);
        let mut pids = Vec::new();
        for entry in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
            if let Ok(pid) = std::fs::read_to_string(entry.path().join("shim.pid")) {
                if let Ok(pid) = pid.trim().parse::<i32>() {
                    if alive(pid) {
                        pids.push(pid);
                    }
                }
            }
        }
        pids
    }

    /// Processes anywhere whose command line names this containerd's socket:
    /// its shims (`-address ...`) and anything else it left.
    fn leftover_processes(&self) -> Vec<(i32, String)> {
        let needle = self.sock.to_string_lossy().into_owned();
        let me = std::process::id() as i32;
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
            if pid == me {
                continue;
            }
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) && !cmdline.starts_with("ctr ") && alive(pid) {
                found.push((pid, cmdline));
            }
        }
        found
    }

    /// Mount points under our directory (snapshots, container root filesystems).
    fn leftover_mounts(&self) -> Vec<String> {
        let dir = self.dir.to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&dir))
            .collect()
    }

    /// Cgroup directories named after our namespace (`ctr` puts a container in
    /// `/NAMESPACE/ID` of every hierarchy): what removing the containers leaves.
    fn leftover_cgroups(&self) -> Vec<PathBuf> {
        let root = Path::new("/sys/fs/cgroup");
        let mut found: Vec<PathBuf> = std::iter::once(root.join(&self.namespace))
            .chain(std::fs::read_dir(root).into_iter().flatten().flatten().map(|e| e.path().join(&self.namespace)))
            .filter(|p| p.is_dir())
            .collect();
        found.sort();
        found.dedup();
        found
    }

    /// Removes every task and container of our namespace (SIGKILL first).
    fn remove_all(&self) {
        if let Ok(out) = self.ctr(&["tasks", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()) {
                let _ = self.ctr(&["tasks", "kill", "-s", "SIGKILL", id]).output();
                let _ = self.ctr(&["tasks", "delete", "-f", id]).output();
            }
        }
        if let Ok(out) = self.ctr(&["containers", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()) {
                let _ = self.ctr(&["containers", "rm", id]).output();
            }
        }
    }

    /// Stops containerd (SIGTERM, then SIGKILL after 10 s) and every shim left.
    fn stop(&mut self) {
        self.remove_all();
        let shims = self.shim_pids();
        if let Some(mut daemon) = self.daemon.take() {
            kill(daemon.id() as i32, libc::SIGTERM);
            if wait_timeout(&mut daemon, Duration::from_secs(10)).is_none() {
                kill(daemon.id() as i32, libc::SIGKILL);
                let _ = daemon.wait();
            }
        }
        // Shims end once their last task is deleted; any still here are stopped.
        let start = Instant::now();
        while shims.iter().any(|&p| alive(p)) && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in shims.into_iter().filter(|&p| alive(p)) {
            kill(pid, libc::SIGKILL);
        }
        for (pid, _) in self.leftover_processes() {
            kill(pid, libc::SIGKILL);
        }
    }

    /// Unmounts what is left under our directory and removes it, with the
    /// shim's container state (youki's root) for our namespace.
    fn remove_files(&self) {
        for m in self.leftover_mounts().iter().rev() {
            let c = std::ffi::CString::new(m.as_str()).unwrap();
            // SAFETY: umount2 with a NUL-terminated path that lives across the call.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(Path::new("/run/containerd/carnac").join(&self.namespace));
        // Cgroup directories go with rmdir, children first (only empty ones can).
        for dir in self.leftover_cgroups() {
            let mut dirs = vec![dir.clone()];
            let mut i = 0;
            while i < dirs.len() {
                let children = std::fs::read_dir(&dirs[i]).into_iter().flatten().flatten().map(|e| e.path());
                dirs.extend(children.filter(|p| p.is_dir()).collect::<Vec<_>>());
                i += 1;
            }
            for d in dirs.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
        if self.made_run_dir {
            // Only what is empty: another containerd may have started meanwhile.
            for d in ["carnac", "fifo", "s", ""] {
                let _ = std::fs::remove_dir(Path::new("/run/containerd").join(d));
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            if std::thread::panicking() {
                eprintln!("containerd log (last lines):\n{}", self.log_tail());
            }
            self.stop();
        }
        self.remove_files();
    }
}

fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("guest program")
}

fn json(v: serde_json::Value) -> serde_json::Value {
    v
}

/// A `ctr run` in the background, with its stdout lines on a channel.
struct Background {
    child: Guard,
    lines: mpsc::Receiver<String>,
}

impl Background {
    fn start(mut cmd: Command) -> Background {
        let mut child = Guard(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap());
        let out = child.0.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Background { child, lines }
    }

    fn expect_line(&self, want: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == want => return,
                Ok(_) => {}
                Err(_) => panic!("no line `{want}` from the container in {limit:?}"),
            }
        }
    }
}

fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    Ok(response)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

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
    // An entrypoint that is no module: the container is refused at creation.
    let (code, _, err) = ctd.run(image, "not-wasm", &[], &["/not-wasm.txt"]);
    assert_ne!(code, Some(0), "a text file ran: {err}");
    assert!(err.contains("can't handle"), "{err}");
    eprintln!(
        "ok: a trap exits 134, stderr: {:?}; a text entrypoint is refused",
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
    ctd.stop();
    let start = Instant::now();
    loop {
        let procs = ctd.leftover_processes();
        let mounts = ctd.leftover_mounts();
        if procs.is_empty() && mounts.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "left behind: processes {procs:?}, mounts {mounts:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The containers' cgroups are gone; what is left is the namespace's
    // parent directory in each hierarchy (empty: removed at the end).
    for dir in ctd.leftover_cgroups() {
        let children: Vec<_> =
            std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        assert!(children.is_empty(), "container cgroups left in {}: {children:?}", dir.display());
    }
    ctd.remove_files();
    assert_eq!(ctd.leftover_cgroups(), Vec::<PathBuf>::new(), "cgroup directories left");
    eprintln!("ok: containerd stopped, no process, mount or cgroup left; whole test {:?}", started.elapsed());
}
