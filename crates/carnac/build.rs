//! Decides whether the compiled tier is built: the `cranelift` feature asks for
//! it, and the host must be one its trap handling supports (Linux on x86_64 or
//! aarch64: signal handling and the unwinder's assembly are written for those).
//! Elsewhere the crate builds as an interpreter, and asking for
//! `Strategy::Cranelift` is an error at module compilation.
//!
//! Also names this build (`CARNAC_BUILD_ID`, a hash of the crate's sources, its
//! manifest and the workspace's lock file): compiled artifacts and the code
//! cache record it, so code compiled by a different build (a changed
//! translator, another Cranelift) is never taken for this one's, even when
//! the version number is the same.
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo::rustc-check-cfg=cfg(carnac_compiled)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let wanted = std::env::var_os("CARGO_FEATURE_CRANELIFT").is_some();
    if wanted && os == "linux" && (arch == "x86_64" || arch == "aarch64") {
        println!("cargo::rustc-cfg=carnac_compiled");
    }

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
