//! Decides whether the compiled tier is built: the `cranelift` feature asks for
//! it, and the host must be one its trap handling supports (Linux on x86_64 or
//! aarch64: signal handling and the unwinder's assembly are written for those).
//! Elsewhere the crate builds as an interpreter, and asking for
//! `Strategy::Cranelift` is an error at module compilation.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(carnac_compiled)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let wanted = std::env::var_os("CARGO_FEATURE_CRANELIFT").is_some();
    if wanted && os == "linux" && (arch == "x86_64" || arch == "aarch64") {
        println!("cargo::rustc-cfg=carnac_compiled");
    }
}
