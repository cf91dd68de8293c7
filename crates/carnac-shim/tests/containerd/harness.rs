//! The containerd harness of the shim's tests: tools installed when missing,
//! a private containerd (its own root, state, socket, namespace and cgroup
//! directories under a temporary directory, the shim on its `PATH`) stopped
//! by PID with everything it started, OCI images imported with `ctr`, and
//! children killed when dropped. Each test uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const RUNTIME: &str = "io.containerd.carnac.v1";
pub const SHIM: &str = env!("CARGO_BIN_EXE_containerd-shim-carnac-v1");

/// Why this machine cannot run the test, if it cannot.
pub fn unsupported() -> Option<String> {
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

pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false)
        || Path::new("/usr/sbin").join(tool).is_file()
}

/// containerd, ctr and runc from the Debian packages, when missing.
pub fn install_tools() {
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

/// A statically linked busybox (for a Linux pause container in an empty
/// image): Debian's `busybox-static`, installed when `/bin/busybox` is not one.
pub fn static_busybox() -> PathBuf {
    let path = PathBuf::from("/bin/busybox");
    if !is_static_elf(&path) {
        eprintln!("installing busybox-static with apt-get (the pod's pause container)");
        let status = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "busybox-static"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get");
        assert!(status.success(), "apt-get install busybox-static failed");
        assert!(is_static_elf(&path), "{} is not statically linked", path.display());
    }
    path
}

/// An ELF executable without a program interpreter (PT_INTERP): it runs
/// in a root filesystem with nothing else in it.
fn is_static_elf(path: &Path) -> bool {
    let Ok(elf) = std::fs::read(path) else { return false };
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |o: usize| elf.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
    // 64-bit little-endian ELF only (what Debian ships on x86-64 and arm64).
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else { return false };
    (0..phnum).all(|i| elf.get(phoff + i * phentsize..phoff + i * phentsize + 4) != Some(&3u32.to_le_bytes()[..]))
}

/// Sends `signal` to `pid` if it is still there.
pub fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a pid we started (or read from a pid file of our
    // own containerd's state) and a valid signal number; it touches no memory.
    unsafe { libc::kill(pid, signal) };
}

pub fn alive(pid: i32) -> bool {
    // A zombie still answers kill(0): look at its state too.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// Waits for a child, up to `limit`: its status, or `None` if it still runs.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
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
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            kill(self.0.id() as i32, libc::SIGKILL);
            let _ = self.0.wait();
        }
    }
}

/// Our containerd: its directory, socket, namespace and process.
pub struct Containerd {
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub namespace: String,
    pub snapshotter: String,
    pub daemon: Option<Child>,
    /// The cgroup directory (in every hierarchy) its containers go under:
    /// `ctr` uses the namespace, the CRI plugin the pod's cgroup parent.
    pub cgroup_dir: String,
    /// `/run/containerd` did not exist before: the empty directories the shim
    /// and `ctr` make there (`s`, `fifo`, `carnac`) are removed at the end.
    made_run_dir: bool,
}

impl Containerd {
    /// containerd for `ctr` (namespace `carnac-test-PID`), without the CRI plugin.
    pub fn start() -> Containerd {
        Self::start_with(None)
    }

    /// containerd with its CRI plugin (the kubelet's API, on the same socket;
    /// namespace `k8s.io`) running pod sandboxes from `sandbox_image`, and the
    /// RuntimeClass handler `carnac` mapped to the shim. Pods are to be put
    /// under the cgroup parent `/carnac-cri-PID` ([`Containerd::cgroup_dir`]).
    pub fn start_cri(sandbox_image: &str) -> Containerd {
        Self::start_with(Some(sandbox_image))
    }

    fn start_with(cri: Option<&str>) -> Containerd {
        let made_run_dir = !Path::new("/run/containerd").exists();
        let dir = PathBuf::from(format!("/tmp/carnac-shim-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        // The shim on containerd's PATH under the name that maps to io.containerd.carnac.v1.
        std::os::unix::fs::symlink(SHIM, dir.join("bin/containerd-shim-carnac-v1")).unwrap();
        let sock = dir.join("containerd.sock");
        let snapshotter = std::env::var("CARNAC_SHIM_TEST_SNAPSHOTTER").unwrap_or_else(|_| "native".into());
        let mut config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [{cri_plugin}"io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
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
            cri_plugin = if cri.is_some() { "" } else { "\"io.containerd.grpc.v1.cri\", " },
        );
        if let Some(sandbox_image) = cri {
            // Host-network pods only (no CNI plugin is configured).
            // restrict_oom_score_adj clamps a sandbox's oom_score_adj of -998
            // to containerd's own (as for rootless containerd): lowering it
            // needs CAP_SYS_RESOURCE, which root lacks on the machines this
            // test was written on (creating any pod fails there otherwise,
            // whatever the runtime).
            config.push_str(&format!(
                r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "{snapshotter}"
    # (no runc here: the only runtime is the default; pods still name it)
    default_runtime_name = "carnac"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.carnac]
      runtime_type = "io.containerd.carnac.v1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni}/bin"
    conf_dir = "{cni}/net.d"
"#,
                cni = dir.join("cni").display(),
            ));
        }
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
        let (namespace, cgroup_dir) = match cri {
            Some(_) => ("k8s.io".to_string(), format!("carnac-cri-{}", std::process::id())),
            None => (format!("carnac-test-{}", std::process::id()), format!("carnac-test-{}", std::process::id())),
        };
        let mut c = Containerd { dir, sock, namespace, cgroup_dir, snapshotter, daemon: Some(daemon), made_run_dir };
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

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// The last lines of containerd's log (where the shim's log goes too).
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn ctr(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(&self.sock).arg("--namespace").arg(&self.namespace).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    pub fn ctr_ok(&self, args: &[&str]) -> Output {
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
    pub fn import(&self, file: &str, tarball: &[u8]) {
        self.import_with(file, tarball, &[]);
    }

    /// [`Self::import`] with more `ctr images import` options.
    pub fn import_with(&self, file: &str, tarball: &[u8], opts: &[&str]) {
        let path = self.dir.join(file);
        std::fs::write(&path, tarball).unwrap();
        let snap = format!("--snapshotter={}", self.snapshotter);
        let mut args = vec!["images", "import", &snap];
        args.extend_from_slice(opts);
        args.push(path.to_str().unwrap());
        self.ctr_ok(&args);
    }

    /// Sets container `id`'s image (what runwasi reads the module layers of).
    pub fn set_image(&self, id: &str, image: &str) {
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
    pub fn run(&self, image: &str, id: &str, opts: &[&str], args: &[&str]) -> (Option<i32>, String, String) {
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

    pub fn run_cmd(&self, image: &str, id: &str, opts: &[&str], args: &[&str]) -> Command {
        let snap = format!("--snapshotter={}", self.snapshotter);
        let mut all = vec!["run", "--rm", "--runtime", RUNTIME, &snap];
        all.extend_from_slice(opts);
        all.push(image);
        all.push(id);
        all.extend_from_slice(args);
        self.ctr(&all)
    }

    /// Shim processes of this containerd (from their pid files) still running.
    pub fn shim_pids(&self) -> Vec<i32> {
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
    pub fn leftover_processes(&self) -> Vec<(i32, String)> {
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
    pub fn leftover_mounts(&self) -> Vec<String> {
        let dir = self.dir.to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&dir))
            .collect()
    }

    /// Our cgroup directories ([`Containerd::cgroup_dir`] in every
    /// hierarchy): what removing the containers leaves.
    pub fn leftover_cgroups(&self) -> Vec<PathBuf> {
        let root = Path::new("/sys/fs/cgroup");
        let mut found: Vec<PathBuf> = std::iter::once(root.join(&self.cgroup_dir))
            .chain(std::fs::read_dir(root).into_iter().flatten().flatten().map(|e| e.path().join(&self.cgroup_dir)))
            .filter(|p| p.is_dir())
            .collect();
        found.sort();
        found.dedup();
        found
    }

    /// Removes every task and container of our namespace (SIGKILL first).
    pub fn remove_all(&self) {
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
    pub fn stop(&mut self) {
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
    pub fn remove_files(&self) {
        for m in self.leftover_mounts().iter().rev() {
            let c = std::ffi::CString::new(m.as_str()).unwrap();
            // SAFETY: umount2 with a NUL-terminated path that lives across the call.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        // The shim's container state (youki's root) for the namespace: ours
        // entirely; `k8s.io` (shared with a node's own containerd, if any) only if empty.
        let youki_root = Path::new("/run/containerd/carnac").join(&self.namespace);
        if self.namespace.starts_with("carnac-test-") {
            let _ = std::fs::remove_dir_all(youki_root);
        } else {
            let _ = std::fs::remove_dir(youki_root);
        }
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

impl Containerd {
    /// Stops containerd and everything it started, then checks that no
    /// process, mount or container cgroup is left, and removes our files.
    pub fn stop_and_check_clean(&mut self) {
        self.stop();
        let start = Instant::now();
        loop {
            let procs = self.leftover_processes();
            let mounts = self.leftover_mounts();
            if procs.is_empty() && mounts.is_empty() {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "left behind: processes {procs:?}, mounts {mounts:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        // The containers' cgroups are gone; what is left is our parent
        // directory in each hierarchy (empty: removed with our files).
        for dir in self.leftover_cgroups() {
            let children: Vec<_> =
                std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
            assert!(children.is_empty(), "container cgroups left in {}: {children:?}", dir.display());
        }
        self.remove_files();
        assert_eq!(self.leftover_cgroups(), Vec::<PathBuf>::new(), "cgroup directories left");
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

pub fn wasm(text: &str) -> Vec<u8> {
    wat::parse_str(text).expect("guest program")
}

pub fn json(v: serde_json::Value) -> serde_json::Value {
    v
}

/// A `ctr run` in the background, with its stdout lines on a channel.
pub struct Background {
    pub child: Guard,
    lines: mpsc::Receiver<String>,
}

impl Background {
    pub fn start(mut cmd: Command) -> Background {
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

    pub fn expect_line(&self, want: &str, limit: Duration) {
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

pub fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    Ok(response)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
