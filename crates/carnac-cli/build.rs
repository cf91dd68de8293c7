//! Link options for the `carnac` binary only (the library crates set none).
//!
//! Relative relocations are packed (`DT_RELR`, glibc 2.36+, GNU ld 2.38+, lld):
//! the loader applies some 11,000 relative relocations at every start-up (vtables,
//! string tables, the handlers' jump targets); packed, their records shrink from
//! 270 KB, which every process reads, to a few KB. Set only on Linux with GNU
//! libc, where the linker is known to support it.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
