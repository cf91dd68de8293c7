//! The node installer of `deploy/kubernetes/installer/install.sh`, run on a
//! scratch directory standing for the node's root filesystem (no restart of
//! any containerd, no sleep): it installs the shim binary, registers the
//! `carnac` runtime in containerd's configuration once (version 2 and 3
//! files, or a missing one), keeps the previous file, and is idempotent. When
//! containerd is installed, the configuration it writes is loaded by
//! `containerd config dump` and shows the runtime.

use std::path::{Path, PathBuf};
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/kubernetes/installer/install.sh");

/// A stand-in for the shim binary (the script copies whatever it is given;
/// the debug build of the real one is 360 MB).
fn stand_in(dir: &Path) -> PathBuf {
    let path = dir.join("containerd-shim-carnac-v1");
    std::fs::write(&path, b"#!/bin/sh\necho containerd-shim-carnac-v1 stand-in\n").unwrap();
    path
}

/// A scratch directory, removed when dropped (also when a check fails).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("carnac-shim-installer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

fn install(host: &Path, shim: &Path) -> String {
    let out = Command::new("sh")
        .arg(SCRIPT)
        .env("HOST", host)
        .env("SHIM", shim)
        .env("RESTART_CONTAINERD", "no")
        .env("SLEEP", "no")
        .output()
        .expect("sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "install.sh failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn config(host: &Path) -> String {
    std::fs::read_to_string(host.join("etc/containerd/config.toml")).unwrap()
}

#[test]
fn installs_the_binary_and_registers_the_runtime_once() {
    let host = scratch("v2");
    std::fs::create_dir_all(host.join("etc/containerd")).unwrap();
    let original =
        "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"registry.k8s.io/pause:3.9\"\n";
    std::fs::write(host.join("etc/containerd/config.toml"), original).unwrap();

    let shim_dir = scratch("v2-shim");
    let shim = stand_in(&shim_dir);
    let out = install(&host, &shim);
    assert!(out.contains("registered the carnac runtime"), "{out}");
    let bin = host.join("usr/local/bin/containerd-shim-carnac-v1");
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(&shim).unwrap());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&bin).unwrap().permissions().mode() & 0o777, 0o755);
    let written = config(&host);
    assert!(written.starts_with(original), "the original configuration is kept: {written}");
    assert!(written.contains(
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.carnac]\n  runtime_type = \"io.containerd.carnac.v1\"\n"
    ));
    assert_eq!(std::fs::read_to_string(host.join("etc/containerd/config.toml.before-carnac")).unwrap(), original);

    // Again (a DaemonSet pod restarted): the binary is replaced, the configuration untouched.
    let out = install(&host, &shim);
    assert!(out.contains("already has the carnac runtime"), "{out}");
    assert_eq!(config(&host), written);

    // containerd loads it (when installed: the containerd test installs it).
    if Path::new("/usr/bin/containerd").exists() {
        let dump = Command::new("containerd")
            .arg("--config")
            .arg(host.join("etc/containerd/config.toml"))
            .args(["config", "dump"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&dump.stdout);
        assert!(dump.status.success(), "containerd config dump: {}", String::from_utf8_lossy(&dump.stderr));
        let runtime = text.split("runtimes.carnac]").nth(1).expect("the carnac runtime in containerd's configuration");
        assert!(runtime.contains("runtime_type = \"io.containerd.carnac.v1\""), "{text}");
    } else {
        eprintln!("containerd not installed: its loading of the configuration is not checked here");
    }
}

#[test]
fn a_missing_configuration_is_created_and_version_3_uses_the_new_plugin_name() {
    let shim_dir = scratch("new-shim");
    let shim = stand_in(&shim_dir);
    let host = scratch("new");
    install(&host, &shim);
    let written = config(&host);
    assert!(written.starts_with("version = 2\n"), "{written}");
    assert!(written.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.carnac]"), "{written}");
    drop(host);

    let host = scratch("v3");
    std::fs::create_dir_all(host.join("etc/containerd")).unwrap();
    std::fs::write(host.join("etc/containerd/config.toml"), "version = 3\n").unwrap();
    install(&host, &shim);
    let written = config(&host);
    assert!(written.contains("[plugins.\"io.containerd.cri.v1.runtime\".containerd.runtimes.carnac]"), "{written}");
    assert!(!written.contains("grpc.v1.cri"), "{written}");
}
