//! Decides which parts of the compiled tier are built, as two cfgs:
//! `carnac_native_code` (load and run machine code: `.cwasm` artifacts, with
//! the signal handling, trampolines' callers and builtins it needs), asked for
//! by the `loader` feature, and `carnac_compiled` (also compile it, with
//! Cranelift), asked for by the `cranelift` feature, which implies `loader`.
//! Either needs a host its trap handling supports (Linux on x86_64 or
//! aarch64: signal handling and the unwinder's assembly are written for
//! those). Elsewhere, or with neither feature, the crate builds as an
//! interpreter, and asking for `Strategy::Cranelift` or loading an artifact is
//! an error.
//!
//! Also names this build (`CARNAC_BUILD_ID`, a hash of the crate's sources, its
//! manifest and the workspace's lock file): compiled artifacts and the code
//! cache record it, so code compiled by a different build (a changed
//! translator, another Cranelift) is never taken for this one's, even when
//! the version number is the same. The build id does not depend on the
//! features: a loader-only build of the same sources runs the artifacts the
//! full build compiles (the runtime both share is the same code). And names the
//! target (`CARNAC_TARGET`, the target triple), which a loader-only build
//! records as its own where the full build asks Cranelift.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(carnac_compiled)");
    println!("cargo::rustc-check-cfg=cfg(carnac_native_code)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let feature = |name: &str| std::env::var_os(format!("CARGO_FEATURE_{name}")).is_some();
    // `cranelift` turns `loader` on (Cargo.toml); both are checked all the same.
    let supported = os == "linux" && (arch == "x86_64" || arch == "aarch64");
    if supported && (feature("LOADER") || feature("CRANELIFT")) {
        println!("cargo::rustc-cfg=carnac_native_code");
    }
    if supported && feature("CRANELIFT") {
        println!("cargo::rustc-cfg=carnac_compiled");
    }
    println!("cargo::rustc-env=CARNAC_TARGET={}", std::env::var("TARGET").unwrap_or_default());

    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect(&dir.join("src"), &mut files);
    files.sort();
    files.push(dir.join("Cargo.toml"));
    files.push(dir.join("../../Cargo.lock"));
    // FNV-1a over each file's path (relative) and contents.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    for f in &files {
        eat(f.strip_prefix(&dir).unwrap_or(f).to_string_lossy().as_bytes());
        eat(&std::fs::read(f).unwrap_or_default());
    }
    println!("cargo::rustc-env=CARNAC_BUILD_ID={h:016x}");
    println!("cargo::rerun-if-changed=src");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=Cargo.toml");
    println!("cargo::rerun-if-changed=../../Cargo.lock");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}
