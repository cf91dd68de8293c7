//! What a module's machine code depends on besides the module itself, as
//! artifacts record it and the loader checks it: the engine's code-changing
//! settings ([`CodegenSettings`], from its [`crate::Config`]) and the target
//! the code was compiled for ([`Target`]: the triple, Cranelift's shared
//! settings and the ISA's settings, which are mostly CPU features).
//!
//! Why it is here and not in the translator: a build without Cranelift (the
//! `loader` feature) must still tell whether an artifact's code runs on this
//! host. The full build asks Cranelift (the ISA it compiles with, its flags
//! detected by `cranelift-native`); the loader-only build answers from
//! constants and its own CPU feature detection ([`Target`] of `host`), which
//! a test of the full build checks equal to Cranelift's answer, so the two
//! cannot drift apart. A flag the loader does not know (a CPU feature of a
//! newer Cranelift, say) is not in its answer, and an artifact that records
//! it is refused.

use crate::engine::Engine;
use crate::error::Error;

/// How compiled loads and stores stay inside their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // The integration picks the mode from `Config`; tests use both.
pub(crate) enum BoundsChecks {
    /// Every access compares its end with the memory's current length.
    Explicit,
    /// Memories are reserved with 4 GiB plus `guard_bytes` of address space
    /// (inaccessible beyond the memory's length): an access whose static offset
    /// plus size fits in the guard needs no check, and one that falls outside
    /// faults and is mapped to `MemoryOutOfBounds` by the signal handler.
    Guard { guard_bytes: u64 },
}

/// Which interruption check compiled code makes at function entries and loop headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // The integration picks the mode from `Config`; tests use all.
pub(crate) enum Interrupt {
    None,
    /// The store's interrupt flag (`Config::interruptible`).
    Flag,
    /// The engine's epoch against the store's deadline (`Config::epoch_interruption`).
    Epoch,
}

/// The settings that change the code a function compiles to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CodegenSettings {
    pub bounds: BoundsChecks,
    pub interrupt: Interrupt,
    /// Charge fuel as the interpreter does (see `translate::vm`).
    pub fuel: bool,
    /// Mark every store in the memory's written-chunk map, as the interpreter
    /// does with `Config::track_memory_writes` (see `runtime::memory`).
    pub track_writes: bool,
}

/// The code generation settings an engine's configuration asks for.
pub(crate) fn settings(engine: &Engine) -> CodegenSettings {
    let c = engine.config();
    CodegenSettings {
        bounds: if c.signals_based_traps {
            BoundsChecks::Guard { guard_bytes: c.memory_guard_size }
        } else {
            BoundsChecks::Explicit
        },
        interrupt: if c.epoch_interruption || c.interruptible {
            // The epoch check also sees the interrupt flag (its check word drops to 0).
            Interrupt::Epoch
        } else {
            Interrupt::None
        },
        fuel: c.consume_fuel,
        track_writes: c.track_memory_writes,
    }
}

/// The target compiled code is for, as an artifact's header records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The target triple (`x86_64-unknown-linux-gnu`).
    pub triple: String,
    /// Cranelift's shared settings, (name, value), except the verifier (which
    /// changes no code).
    pub shared: Vec<(String, String)>,
    /// The ISA's settings: (name, whether it is a boolean, value).
    pub isa: Vec<(String, bool, String)>,
}

/// The target `engine` compiles for: Cranelift's ISA.
#[cfg(carnac_compiled)]
pub(crate) fn for_engine(engine: &Engine) -> Result<Target, Error> {
    Ok(of_isa(&**super::compiler::isa(engine)?))
}

/// The target code must be compiled for to run here: without Cranelift, this
/// host as the loader sees it (the same for every engine).
#[cfg(not(carnac_compiled))]
pub(crate) fn for_engine(_engine: &Engine) -> Result<Target, Error> {
    static HOST: std::sync::OnceLock<Target> = std::sync::OnceLock::new();
    Ok(HOST.get_or_init(host::target).clone())
}

/// A Cranelift ISA's target.
#[cfg(carnac_compiled)]
fn of_isa(isa: &dyn cranelift_codegen::isa::TargetIsa) -> Target {
    Target {
        triple: isa.triple().to_string(),
        shared: (isa.flags().iter())
            .filter(|v| v.name != "enable_verifier")
            .map(|v| (v.name.to_string(), v.value_string()))
            .collect(),
        isa: (isa.isa_flags().iter()).map(|v| (v.name.to_string(), v.as_bool().is_some(), v.value_string())).collect(),
    }
}

/// The host as a build without Cranelift describes it (see the module docs).
#[cfg(any(test, not(carnac_compiled)))]
mod host {
    use super::Target;

    /// Cranelift's shared settings as `translate::isa` sets them (the rest at
    /// Cranelift's defaults), in Cranelift's order.
    const SHARED: &[(&str, &str)] = &[
        ("regalloc_algorithm", "backtracking"),
        ("opt_level", "speed"),
        ("tls_model", "none"),
        ("stack_switch_model", "none"),
        ("libcall_call_conv", "isa_default"),
        ("probestack_size_log2", "12"),
        ("probestack_strategy", "outline"),
        ("bb_padding_log2_minus_one", "0"),
        ("log2_min_function_alignment", "0"),
        ("regalloc_checker", "false"),
        ("regalloc_verbose_logs", "false"),
        ("enable_alias_analysis", "true"),
        ("enable_licm", "true"),
        ("is_pic", "false"),
        ("use_colocated_libcalls", "false"),
        ("enable_nan_canonicalization", "false"),
        ("enable_pinned_reg", "false"),
        ("enable_llvm_abi_extensions", "false"),
        ("enable_multi_ret_implicit_sret", "true"),
        ("unwind_info", "true"),
        ("preserve_frame_pointers", "true"),
        ("machine_code_cfg_info", "false"),
        ("enable_probestack", "false"),
        ("enable_heap_access_spectre_mitigation", "true"),
        ("enable_table_access_spectre_mitigation", "true"),
        ("enable_incremental_compilation_cache_checks", "false"),
        ("enable_compact_unwind_abi", "false"),
    ];

    /// How the loader knows an ISA flag's value on this host.
    enum Flag {
        /// A CPU feature, detected at run time.
        Cpu(fn() -> bool),
        /// A code generation setting the compiler leaves at this value.
        #[cfg_attr(target_arch = "x86_64", allow(dead_code))]
        Fixed(bool),
    }
    use Flag::{Cpu, Fixed};

    /// Cranelift's x64 flags, in its order, each detected as `cranelift-native` does.
    #[cfg(target_arch = "x86_64")]
    const ISA: &[(&str, Flag)] = &[
        ("has_sse3", Cpu(|| std::arch::is_x86_feature_detected!("sse3"))),
        ("has_ssse3", Cpu(|| std::arch::is_x86_feature_detected!("ssse3"))),
        ("has_cmpxchg16b", Cpu(|| std::arch::is_x86_feature_detected!("cmpxchg16b"))),
        ("has_sse41", Cpu(|| std::arch::is_x86_feature_detected!("sse4.1"))),
        ("has_sse42", Cpu(|| std::arch::is_x86_feature_detected!("sse4.2"))),
        ("has_avx", Cpu(|| std::arch::is_x86_feature_detected!("avx"))),
        ("has_avx2", Cpu(|| std::arch::is_x86_feature_detected!("avx2"))),
        ("has_fma", Cpu(|| std::arch::is_x86_feature_detected!("fma"))),
        ("has_avx_vnni", Cpu(|| std::arch::is_x86_feature_detected!("avxvnni"))),
        ("has_avx512bitalg", Cpu(|| std::arch::is_x86_feature_detected!("avx512bitalg"))),
        ("has_avx512dq", Cpu(|| std::arch::is_x86_feature_detected!("avx512dq"))),
        ("has_avx512vl", Cpu(|| std::arch::is_x86_feature_detected!("avx512vl"))),
        ("has_avx512vbmi", Cpu(|| std::arch::is_x86_feature_detected!("avx512vbmi"))),
        ("has_avx512f", Cpu(|| std::arch::is_x86_feature_detected!("avx512f"))),
        ("has_avx512vnni", Cpu(|| std::arch::is_x86_feature_detected!("avx512vnni"))),
        ("has_popcnt", Cpu(|| std::arch::is_x86_feature_detected!("popcnt"))),
        ("has_bmi1", Cpu(|| std::arch::is_x86_feature_detected!("bmi1"))),
        ("has_bmi2", Cpu(|| std::arch::is_x86_feature_detected!("bmi2"))),
        ("has_lzcnt", Cpu(|| std::arch::is_x86_feature_detected!("lzcnt"))),
    ];

    /// Cranelift's arm64 flags, in its order: CPU features detected as
    /// `cranelift-native` does on Linux, and the return-address signing and
    /// branch-target settings, which it leaves off there.
    #[cfg(target_arch = "aarch64")]
    const ISA: &[(&str, Flag)] = &[
        ("has_lse", Cpu(|| std::arch::is_aarch64_feature_detected!("lse"))),
        ("has_pauth", Cpu(|| std::arch::is_aarch64_feature_detected!("paca"))),
        ("has_fp16", Cpu(|| std::arch::is_aarch64_feature_detected!("fp16"))),
        ("has_dotprod", Cpu(|| std::arch::is_aarch64_feature_detected!("dotprod"))),
        ("has_i8mm", Cpu(|| std::arch::is_aarch64_feature_detected!("i8mm"))),
        ("sign_return_address_all", Fixed(false)),
        ("sign_return_address", Fixed(false)),
        ("sign_return_address_with_bkey", Fixed(false)),
        ("use_bti", Fixed(false)),
        ("use_csdb", Fixed(false)),
    ];

    /// This host's target (see the module docs).
    pub(super) fn target() -> Target {
        let string = |s: &str| s.to_string();
        Target {
            triple: string(env!("CARNAC_TARGET")),
            shared: SHARED.iter().map(|&(name, value)| (string(name), string(value))).collect(),
            isa: (ISA.iter())
                .map(|(name, flag)| {
                    let value = match flag {
                        Cpu(detect) => detect(),
                        Fixed(value) => *value,
                    };
                    (string(name), true, value.to_string())
                })
                .collect(),
        }
    }

    /// The full build's test that the loader's answer is Cranelift's.
    #[cfg(all(test, carnac_compiled))]
    #[test]
    fn the_loaders_host_is_cranelifts() {
        use crate::{Config, Engine, Strategy};
        let engine = Engine::new(Config::new().strategy(Strategy::Cranelift));
        let clif = super::for_engine(&engine).unwrap();
        let ours = target();
        // On a mismatch, what the tables above should say.
        let shared: Vec<String> = clif.shared.iter().map(|(n, v)| format!("(\"{n}\", \"{v}\"),")).collect();
        let isa: Vec<String> = clif.isa.iter().map(|(n, b, v)| format!("{n} bool={b} {v}")).collect();
        assert_eq!(ours.triple, clif.triple, "CARNAC_TARGET is not Cranelift's host triple");
        assert_eq!(ours.shared, clif.shared, "SHARED should be:\n{}", shared.join("\n"));
        assert_eq!(ours.isa, clif.isa, "ISA should be:\n{}", isa.join("\n"));
    }
}
