//! Compiled modules as files (`.cwasm`): [`serialize`] writes a module's
//! machine code with everything needed to run it again, [`parse`] checks it
//! for loading without running the compiler (`carnac compile`, the code cache).
//!
//! Why: compiling a large module with Cranelift takes seconds; loading its
//! code takes a checksum and an `mprotect`: the file is mapped, its code
//! made executable where it lies (at a page-aligned offset), its tables and
//! wasm used where they lie (`CompiledModule::from_artifact`,
//! `code_memory::ArtifactImage`). An artifact stores what compiling
//! produced (the code image, linked position-independent, and its
//! [`CodeLayout`](super::module::CodeLayout): function ranges, trampolines, trap sites, source locations)
//! and the module's original wasm bytes, from which the loader rebuilds the
//! [`crate::module::ModuleInfo`] (types, imports, exports, data, names) by
//! decoding them again: one decoder for both paths, so an artifact can never
//! describe a module differently from its wasm. Decoding parses and validates
//! every section but not the function bodies (those were validated when the
//! module was compiled, and the code compiled from them is trusted anyway, see
//! below); it costs a small fraction of compiling (see `Module::deserialize`).
//!
//! ## Format (version [`FORMAT_VERSION`], little-endian)
//!
//! ```text
//! magic "\0cwasm\r\n" | u32 format version
//! header: str Carnac version+build | str target triple
//!         u32 n, n x (str name, str value)          Cranelift shared settings
//!         u32 n, n x (str name, u8 is_bool, str value)   ISA settings (CPU features)
//!         u8 strategy | u8 bounds, u64 guard bytes | u8 interrupt | u8 fuel | u8 tracked writes
//!         | u64 wasm features
//! body:   u64 wasm length | zeros up to a multiple of 4 KiB (`WASM_ALIGN`) | wasm
//!         u32 n, n x (u32 start, u32 end)           function ranges
//!         u32 n, n x u32                            array-call trampoline offsets
//!         u32 n, n x (u32 offset, u8 code)          trap sites
//!         u32 n, n x (u32 offset, u32 wasm offset)  source locations
//!         u32 n, n x (u32 at, u32 target)           absolute relocations
//!         u64 code offset | u64 code length | zeros up to the code offset | code
//! u64 checksum: XXH3 (64-bit) of every byte before it
//! ```
//! (`str` and `bytes` are a u32 or u64 length, then the bytes.) The code
//! offset is the first multiple of [`CODE_ALIGN`] after the two lengths, and
//! the code runs to the checksum.
//!
//! ## What loading checks, and what that does and does not make safe
//!
//! Everything read from the file is checked before it is used: the magic, the
//! format version, the checksum, that the artifact was made by this exact
//! build of Carnac (version plus a hash of its sources), for this target,
//! with the Cranelift settings and the code-changing [`crate::Config`]
//! settings of this engine, and with no CPU feature this host lacks (each
//! mismatch refused with a one-line error naming what differs; a build without
//! Cranelift, the `loader` feature, checks the same header against its own
//! description of the host, see `super::target`); every length
//! and count against the bytes that remain (nothing is allocated from an
//! unchecked count); function ranges sorted, non-empty, disjoint and inside
//! the code, one per defined function of the decoded wasm; trampolines,
//! trap sites (sorted, inside functions, with known trap codes) and
//! relocations inside the code; the code at its aligned offset. Source
//! locations (sorted, inside the code), which only backtraces read, are
//! checked when a backtrace first needs them (without them, if damaged).
//! So a *damaged* or *mismatched* artifact (a truncated download, a flipped
//! bit, a file from another version or CPU) is an error, never a crash, and
//! the loader itself never reads out of bounds.
//!
//! None of that makes an *untrusted* artifact safe to run. The checksum is
//! not a signature: anyone can write a file with valid lengths, offsets and
//! checksum whose "machine code" does anything at all, and it will be mapped
//! executable and run with the host's privileges. No check can tell compiled
//! wasm from arbitrary code. **Artifacts are trusted code**: load only those
//! you (or your build pipeline, or your own cache directory) produced, as with
//! Wasmtime's `.cwasm` (whose `Module::deserialize` is `unsafe` for this
//! reason). The checks protect against damage and mismatch, not malice.

use std::ops::Range;

use super::module::CompiledModule;
use super::target::{settings, BoundsChecks, Interrupt};
use super::traps::TRAP_RECORD;
use crate::engine::Engine;
use crate::error::Error;
use crate::Strategy;

/// The first bytes of every artifact: not `\0asm`, and not text either.
pub(crate) const MAGIC: [u8; 8] = crate::module::ARTIFACT_MAGIC;

/// Bumped whenever the layout above changes.
pub(crate) const FORMAT_VERSION: u32 = 4;

/// The wasm's alignment in the file: data segments that a module lays out
/// page-aligned in its binary (as `carnac snapshot` writes them) lie on page
/// boundaries of the file too, so that memories map them straight from it.
pub(crate) const WASM_ALIGN: usize = 4 << 10;

/// The code's alignment in the file: a multiple of the page size of every
/// host we run on but those with 64 KiB pages (x86_64: 4 KiB; aarch64: 4, 16
/// or 64 KiB), so that the code can be mapped from the file where it lies.
/// Loading copies the code instead where it is not page-aligned.
pub(crate) const CODE_ALIGN: usize = 16 << 10;

/// The size of a source location's record: u32 code offset, u32 wasm offset.
pub(crate) const SRCLOC_RECORD: usize = 8;

/// This build of Carnac: its version and a hash of its sources and lock file
/// (see `build.rs`), so that code from a modified build with the same version
/// number is not taken for its own.
pub(crate) const CARNAC_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (build ", env!("CARNAC_BUILD_ID"), ")");

/// The settings an artifact's code depends on, as the header records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    carnac: String,
    triple: String,
    /// Cranelift's shared settings (except the verifier, which changes no code).
    shared: Vec<(String, String)>,
    /// The ISA's settings: (name, whether it is a boolean, value).
    isa: Vec<(String, bool, String)>,
    strategy: u8,
    /// 0 explicit, 1 guard pages.
    bounds: u8,
    guard_bytes: u64,
    /// 0 none, 1 flag, 2 epoch.
    interrupt: u8,
    fuel: bool,
    /// Stores mark the written-chunk map (`Config::track_memory_writes`).
    track_writes: bool,
    features: u64,
}

impl Header {
    /// What this engine would write (and so what it accepts; in a build
    /// without Cranelift, what runs on this host, see `super::target`).
    pub(crate) fn for_engine(engine: &Engine) -> Result<Header, Error> {
        let target = super::target::for_engine(engine)?;
        let s = settings(engine);
        let (bounds, guard_bytes) = match s.bounds {
            BoundsChecks::Explicit => (0, 0),
            BoundsChecks::Guard { guard_bytes } => (1, guard_bytes),
        };
        Ok(Header {
            carnac: CARNAC_VERSION.to_string(),
            triple: target.triple,
            shared: target.shared,
            isa: target.isa,
            // Automatic tiering compiles the same code as the compiled tier.
            strategy: match engine.config().strategy {
                Strategy::Interpreter => 0,
                Strategy::Cranelift | Strategy::Auto => 1,
            },
            bounds,
            guard_bytes,
            interrupt: match s.interrupt {
                Interrupt::None => 0,
                Interrupt::Flag => 1,
                Interrupt::Epoch => 2,
            },
            fuel: s.fuel,
            track_writes: s.track_writes,
            features: engine.config().wasm_features().bits(),
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        put_str(w, &self.carnac);
        put_str(w, &self.triple);
        put_u32(w, self.shared.len() as u32);
        for (name, value) in &self.shared {
            put_str(w, name);
            put_str(w, value);
        }
        put_u32(w, self.isa.len() as u32);
        for (name, is_bool, value) in &self.isa {
            put_str(w, name);
            w.push(*is_bool as u8);
            put_str(w, value);
        }
        w.extend([self.strategy, self.bounds]);
        w.extend(self.guard_bytes.to_le_bytes());
        w.extend([self.interrupt, self.fuel as u8, self.track_writes as u8]);
        w.extend(self.features.to_le_bytes());
    }

    fn read(r: &mut Reader<'_>) -> Result<Header, String> {
        let carnac = r.str()?;
        let triple = r.str()?;
        let n = r.count(8)?;
        let shared = (0..n).map(|_| Ok((r.str()?, r.str()?))).collect::<Result<_, String>>()?;
        let n = r.count(9)?;
        let isa = (0..n).map(|_| Ok((r.str()?, r.u8()? != 0, r.str()?))).collect::<Result<_, String>>()?;
        Ok(Header {
            carnac,
            triple,
            shared,
            isa,
            strategy: r.u8()?,
            bounds: r.u8()?,
            guard_bytes: r.u64()?,
            interrupt: r.u8()?,
            fuel: r.u8()? != 0,
            track_writes: r.u8()? != 0,
            features: r.u64()?,
        })
    }

    /// `Ok` if code described by `self` (an artifact's header) runs on an engine
    /// described by `host`; else what differs, as one line.
    fn compatible_with(&self, host: &Header) -> Result<(), String> {
        if self.carnac != host.carnac {
            return Err(format!("it was compiled by Carnac {}, this is Carnac {}", self.carnac, host.carnac));
        }
        if self.triple != host.triple {
            return Err(format!("it was compiled for {}, this host is {}", self.triple, host.triple));
        }
        let tier = |s: u8| if s == 1 { "cranelift" } else { "interp" };
        if self.strategy != host.strategy {
            return Err(format!(
                "it holds code for tier {}, this engine's tier is {}",
                tier(self.strategy),
                tier(host.strategy)
            ));
        }
        if (self.bounds, self.guard_bytes) != (host.bounds, host.guard_bytes) {
            let bounds = |b: u8, g: u64| match b {
                0 => "explicit bounds checks".to_string(),
                _ => format!("guard-page bounds checks with a {g}-byte guard"),
            };
            return Err(format!(
                "it was compiled with {}, this engine uses {}",
                bounds(self.bounds, self.guard_bytes),
                bounds(host.bounds, host.guard_bytes)
            ));
        }
        if self.fuel != host.fuel {
            let fuel = |f: bool| if f { "with fuel metering" } else { "without fuel metering" };
            return Err(format!("it was compiled {}, this engine runs {}", fuel(self.fuel), fuel(host.fuel)));
        }
        if self.track_writes != host.track_writes {
            let t = |t: bool| if t { "with memory write tracking" } else { "without memory write tracking" };
            return Err(format!("it was compiled {}, this engine runs {}", t(self.track_writes), t(host.track_writes)));
        }
        if self.interrupt != host.interrupt {
            let int = |i: u8| if i == 0 { "without interruption checks" } else { "with interruption checks" };
            return Err(format!("it was compiled {}, this engine runs {}", int(self.interrupt), int(host.interrupt)));
        }
        if self.features != host.features {
            return Err(format!(
                "it was compiled with wasm features {:#x}, this engine enables {:#x}",
                self.features, host.features
            ));
        }
        for (name, value) in &self.shared {
            match host.shared.iter().find(|(n, _)| n == name) {
                Some((_, v)) if v == value => {}
                Some((_, v)) => {
                    return Err(format!(
                        "it was compiled with Cranelift setting {name}={value}, this engine {name}={v}"
                    ))
                }
                None => return Err(format!("it was compiled with Cranelift setting {name}, unknown here")),
            }
        }
        if self.shared.len() != host.shared.len() {
            return Err("it was compiled with a different set of Cranelift settings".into());
        }
        for (name, is_bool, value) in &self.isa {
            match host.isa.iter().find(|(n, _, _)| n == name) {
                // A CPU feature the code may use must be present; one it does not use may be.
                Some((_, true, _)) if *is_bool && value == "false" => {}
                Some((_, _, v)) if v == value => {}
                Some((_, true, _)) if *is_bool => {
                    return Err(format!("it needs CPU feature {name}, which this host lacks"));
                }
                Some((_, _, v)) => {
                    return Err(format!("it was compiled with {name}={value}, this host has {name}={v}"))
                }
                None => return Err(format!("it was compiled with ISA setting {name}, unknown here")),
            }
        }
        Ok(())
    }
}

/// The header of `engine`'s artifacts, encoded (built once per engine).
fn host_header(engine: &Engine) -> Result<&[u8], Error> {
    engine.artifact_header(|| {
        let mut h = Vec::with_capacity(2048);
        Header::for_engine(engine)?.write(&mut h);
        Ok(h)
    })
}

/// A module compiled with Cranelift as artifact bytes.
pub(crate) fn serialize(engine: &Engine, wasm: &[u8], code: &CompiledModule) -> Result<Vec<u8>, Error> {
    let header = host_header(engine)?;
    let (image, layout) = code.image_and_layout();
    let mut w = Vec::with_capacity(wasm.len() + image.len() + 64 * layout.funcs.len() + 2 * CODE_ALIGN);
    w.extend(MAGIC);
    put_u32(&mut w, FORMAT_VERSION);
    w.extend(header);
    w.extend((wasm.len() as u64).to_le_bytes());
    w.resize(w.len().next_multiple_of(WASM_ALIGN), 0);
    w.extend(wasm);
    put_u32(&mut w, layout.funcs.len() as u32);
    for r in &layout.funcs {
        put_u32(&mut w, r.start);
        put_u32(&mut w, r.end);
    }
    put_u32(&mut w, layout.array_calls.len() as u32);
    for &a in &layout.array_calls {
        put_u32(&mut w, a);
    }
    put_u32(&mut w, layout.traps.len() as u32);
    for &(at, code) in &layout.traps {
        put_u32(&mut w, at);
        w.push(code);
    }
    put_u32(&mut w, layout.srclocs.len() as u32);
    for &(at, wasm_offset) in &layout.srclocs {
        put_u32(&mut w, at);
        put_u32(&mut w, wasm_offset);
    }
    put_u32(&mut w, layout.abs_relocs.len() as u32);
    for &(at, target) in &layout.abs_relocs {
        put_u32(&mut w, at);
        put_u32(&mut w, target);
    }
    let code_offset = (w.len() + 16).next_multiple_of(CODE_ALIGN);
    w.extend((code_offset as u64).to_le_bytes());
    w.extend((image.len() as u64).to_le_bytes());
    w.resize(code_offset, 0);
    w.extend(&image);
    let sum = xxh3_64(&w);
    w.extend(sum.to_le_bytes());
    Ok(w)
}

/// An artifact's parts, checked against the file and this engine but not yet
/// against the decoded module (its number of functions, `Module::build`):
/// positions in the artifact's bytes, and the small tables read out.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// The module's wasm.
    pub wasm: Range<usize>,
    /// The code image (position-independent but for `abs_relocs`), at a
    /// multiple of [`CODE_ALIGN`].
    pub code: Range<usize>,
    /// `CodeLayout::funcs`, checked.
    pub funcs: Vec<Range<u32>>,
    /// `CodeLayout::array_calls`, checked.
    pub array_calls: Vec<u32>,
    /// `CodeLayout::traps` as [`TRAP_RECORD`]-byte records (`TrapTable`'s), checked.
    pub traps: Range<usize>,
    /// `CodeLayout::srclocs` as [`SRCLOC_RECORD`]-byte records, not checked
    /// yet: only backtraces read them, and check them first ([`srclocs_valid`]).
    pub srclocs: Range<usize>,
    /// `CodeLayout::abs_relocs`, checked.
    pub abs_relocs: Vec<(u32, u32)>,
}

/// Reads and checks an artifact (see the module docs for what is checked).
pub(crate) fn parse(engine: &Engine, bytes: &[u8]) -> Result<Parsed, Error> {
    let damaged = |m: String| Error::Artifact(format!("damaged artifact: {m}"));
    if !bytes.starts_with(&MAGIC) {
        let what = if bytes.starts_with(b"\0asm") { "a wasm module, not an artifact" } else { "not an artifact" };
        return Err(Error::Artifact(format!("not a Carnac artifact (bad magic: {what})")));
    }
    let mut r = Reader { bytes, pos: MAGIC.len() };
    let version = r.u32().map_err(damaged)?;
    if version != FORMAT_VERSION {
        return Err(Error::Artifact(format!(
            "incompatible artifact: format version {version}, this Carnac reads version {FORMAT_VERSION}"
        )));
    }
    let Some(body_len) = bytes.len().checked_sub(8).filter(|&n| n >= r.pos) else {
        return Err(damaged("truncated (no checksum)".into()));
    };
    let (body, sum) = bytes.split_at(body_len);
    let sum = u64::from_le_bytes(sum.try_into().expect("8 bytes"));
    if xxh3_64(body) != sum {
        return Err(damaged("checksum mismatch (the file is corrupt or truncated)".into()));
    }
    let mut r = Reader { bytes: body, pos: r.pos };
    // Usually the header is exactly what this engine writes: no need to decode it.
    let host = host_header(engine)?;
    if body[r.pos..].starts_with(host) {
        r.pos += host.len();
    } else {
        let header = Header::read(&mut r).map_err(damaged)?;
        header
            .compatible_with(&Header::for_engine(engine)?)
            .map_err(|m| Error::Artifact(format!("incompatible artifact: {m}")))?;
    }
    let parsed = (|| -> Result<Parsed, String> {
        let wasm = r.wasm()?;
        let funcs = r.array(|b: &[u8; 8]| le32(b)..le32(&b[4..]))?;
        let array_calls = r.array(|b: &[u8; 4]| le32(b))?;
        let traps = r.records(TRAP_RECORD)?;
        let srclocs = r.records(SRCLOC_RECORD)?;
        let abs_relocs = r.array(|b: &[u8; 8]| (le32(b), le32(&b[4..])))?;
        let code_offset = r.u64()?;
        let code_len = r.u64()?;
        if code_offset % CODE_ALIGN as u64 != 0 {
            return Err(format!("code at offset {code_offset:#x}, not a multiple of {} KiB", CODE_ALIGN >> 10));
        }
        let expected = r.pos.next_multiple_of(CODE_ALIGN);
        if code_offset != expected as u64 {
            return Err(format!("code at offset {code_offset:#x}, expected at {expected:#x}"));
        }
        r.take(expected - r.pos)?;
        let code = r.bytes_of(code_len)?;
        if r.pos != body.len() {
            return Err(format!("{} unexpected bytes before the checksum", body.len() - r.pos));
        }
        check_layout(&funcs, &array_calls, &body[traps.clone()], &abs_relocs, code.len())?;
        Ok(Parsed { wasm, code, funcs, array_calls, traps, srclocs, abs_relocs })
    })()
    .map_err(damaged)?;
    Ok(parsed)
}

/// Checks every offset of a layout (its trap sites as [`TRAP_RECORD`]-byte
/// records) against a code image of `len` bytes; source locations are
/// checked apart ([`srclocs_valid`]).
fn check_layout(
    funcs: &[Range<u32>],
    array_calls: &[u32],
    traps: &[u8],
    abs_relocs: &[(u32, u32)],
    len: usize,
) -> Result<(), String> {
    if len > u32::MAX as usize {
        return Err("code larger than 4 GiB".into());
    }
    let len = len as u32;
    let mut prev_end = 0;
    for (i, f) in funcs.iter().enumerate() {
        if f.start >= f.end || f.end > len || f.start < prev_end {
            return Err(format!("function {i}'s code {f:?} is empty, out of order or outside {len} bytes of code"));
        }
        prev_end = f.end;
    }
    if array_calls.len() != funcs.len() {
        return Err("not one trampoline per function".into());
    }
    if let Some(a) = array_calls.iter().find(|&&a| a >= len) {
        return Err(format!("trampoline at {a:#x} outside {len} bytes of code"));
    }
    if !trap_sites_valid(traps, funcs) {
        return Err(trap_site_error(traps, funcs));
    }
    for &(at, target) in abs_relocs {
        if at.checked_add(8).is_none_or(|end| end > len) || target >= len {
            return Err(format!("relocation at {at:#x} to {target:#x} outside the code"));
        }
    }
    Ok(())
}

/// Whether trap sites (records) are sorted, each inside one of `funcs`
/// (sorted), with a known trap code ([`trap_site_error`] says what is wrong):
/// a pass without branches, then one that only compares each site with the
/// end of its function (there are tens of thousands of sites in a large
/// module).
fn trap_sites_valid(traps: &[u8], funcs: &[Range<u32>]) -> bool {
    let mut known = [false; 256];
    for (code, known) in known.iter_mut().enumerate() {
        *known = known_trap_code(code as u8);
    }
    let (mut ok, mut next) = (traps.len().is_multiple_of(TRAP_RECORD), 0u64);
    for r in traps.chunks_exact(TRAP_RECORD) {
        let at = le32(r) as u64;
        ok &= (at >= next) & known[r[4] as usize];
        next = at + 1;
    }
    // Sorted: each function's sites follow those of the functions before it,
    // and none may come before its start (between functions).
    let mut sites = traps.chunks_exact(TRAP_RECORD).map(le32).peekable();
    for f in funcs {
        ok &= sites.peek().is_none_or(|&at| at >= f.start);
        while sites.next_if(|&at| at < f.end).is_some() {}
    }
    ok && sites.next().is_none()
}

/// What is wrong with trap sites that are not [`trap_sites_valid`].
#[cold]
fn trap_site_error(traps: &[u8], funcs: &[Range<u32>]) -> String {
    let mut prev = None;
    let mut funcs = funcs.iter().peekable();
    for r in traps.chunks_exact(TRAP_RECORD) {
        let (at, code) = (le32(r), r[4]);
        if prev.is_some_and(|p| p >= at) {
            return format!("trap site {at:#x} out of order");
        }
        prev = Some(at);
        while funcs.next_if(|f| f.end <= at).is_some() {}
        if !funcs.peek().is_some_and(|f| f.contains(&at)) {
            return format!("trap site {at:#x} outside every function");
        }
        if !known_trap_code(code) {
            return format!("unknown trap code {code} at {at:#x}");
        }
    }
    "trap sites not whole records".into()
}

/// Whether `code` is a trap code compiled code may carry.
fn known_trap_code(code: u8) -> bool {
    super::trap_codes::is_known(code)
}

/// Whether `records` are source locations ([`SRCLOC_RECORD`] bytes each: u32
/// code offset, u32 wasm offset) sorted by code offset, inside `len` bytes of
/// code: what reading them (a binary search) needs.
pub(crate) fn srclocs_valid(records: &[u8], len: usize) -> bool {
    if !records.len().is_multiple_of(SRCLOC_RECORD) {
        return false;
    }
    let (mut prev, mut ok) = (0, true);
    for r in records.chunks_exact(SRCLOC_RECORD) {
        let at = le32(r) as usize;
        ok &= prev <= at && at <= len;
        prev = at;
    }
    ok
}

/// The cache key of `wasm` compiled by `engine`: everything the artifact's
/// code depends on (this build, the target, the settings; the header) and the
/// module's bytes, hashed to 128 bits, as 32 hex digits.
#[cfg(carnac_compiled)]
pub(crate) fn cache_key(engine: &Engine, wasm: &[u8]) -> Result<String, Error> {
    let mut h = Vec::with_capacity(1024);
    put_u32(&mut h, FORMAT_VERSION);
    h.extend(host_header(engine)?);
    let (a, b) = (xxh64(&h, 0) ^ xxh64(wasm, 0), xxh64(&h, 1) ^ xxh64(wasm, 0x9e37_79b9).rotate_left(17));
    Ok(format!("{a:016x}{b:016x}"))
}

/// The little-endian u32 at the start of `b` (at least 4 bytes).
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

fn put_u32(w: &mut Vec<u8>, v: u32) {
    w.extend(v.to_le_bytes());
}

fn put_str(w: &mut Vec<u8>, s: &str) {
    put_u32(w, s.len() as u32);
    w.extend(s.as_bytes());
}

/// Bounds-checked reads; every failure says where.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated: {n} bytes wanted at offset {:#x}", self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn str(&mut self) -> Result<String, String> {
        let n = self.u32()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| format!("a string at {:#x} is not UTF-8", self.pos - n))
    }

    /// A u64 length, then that many bytes: where they are.
    /// The wasm: its length, zeros up to the next multiple of [`WASM_ALIGN`], its bytes.
    fn wasm(&mut self) -> Result<Range<usize>, String> {
        let n = self.u64()?;
        self.take(self.pos.next_multiple_of(WASM_ALIGN) - self.pos)?;
        self.bytes_of(n)
    }

    /// The next `n` bytes: where they are.
    fn bytes_of(&mut self, n: u64) -> Result<Range<usize>, String> {
        let n = usize::try_from(n).map_err(|_| "a length beyond the address space".to_string())?;
        let start = self.pos;
        self.take(n)?;
        Ok(start..self.pos)
    }

    /// A u32 count, then that many records of `size` bytes: where they are.
    fn records(&mut self, size: usize) -> Result<Range<usize>, String> {
        let n = self.count(size)?;
        self.bytes_of((n * size) as u64)
    }

    /// A u32 count, then that many items of `N` bytes each, read by `item`
    /// (in one pass over one checked slice: the large tables load at memory speed).
    fn array<const N: usize, T>(&mut self, item: impl Fn(&[u8; N]) -> T) -> Result<Vec<T>, String> {
        let n = self.count(N)?;
        let bytes = self.take(n * N)?;
        Ok(bytes.chunks_exact(N).map(|c| item(c.try_into().expect("N bytes"))).collect())
    }

    /// A count of items of at least `min_size` bytes each, checked against the
    /// bytes that remain (so a damaged count cannot make us allocate much).
    fn count(&mut self, min_size: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.bytes.len() - self.pos {
            return Err(format!("a count of {n} at {:#x} exceeds the file", self.pos - 4));
        }
        Ok(n)
    }
}

/// XXH64 (Yann Collet's xxHash, 64-bit), the cache-key hash: fast
/// (8 bytes per step in four independent lanes, several GB/s) and well
/// distributed; small enough to keep here rather than add a dependency.
#[cfg(any(carnac_compiled, test))]
pub(crate) fn xxh64(data: &[u8], seed: u64) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    const P3: u64 = 0x1656_67B1_9E37_79F9;
    const P4: u64 = 0x85EB_CA77_C2B2_AE63;
    const P5: u64 = 0x27D4_EB2F_1656_67C5;
    fn round(acc: u64, input: u64) -> u64 {
        acc.wrapping_add(input.wrapping_mul(P2)).rotate_left(31).wrapping_mul(P1)
    }
    fn merge(acc: u64, v: u64) -> u64 {
        (acc ^ round(0, v)).wrapping_mul(P1).wrapping_add(P4)
    }
    let word = |b: &[u8]| u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let mut rest = data;
    let mut h = if data.len() >= 32 {
        let mut v = [seed.wrapping_add(P1).wrapping_add(P2), seed.wrapping_add(P2), seed, seed.wrapping_sub(P1)];
        let mut stripes = rest.chunks_exact(32);
        for s in &mut stripes {
            for (lane, v) in v.iter_mut().enumerate() {
                *v = round(*v, word(&s[lane * 8..]));
            }
        }
        rest = stripes.remainder();
        let h = v[0].rotate_left(1).wrapping_add(v[1].rotate_left(7)).wrapping_add(v[2].rotate_left(12));
        v.iter().fold(h.wrapping_add(v[3].rotate_left(18)), |h, &v| merge(h, v))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(data.len() as u64);
    while rest.len() >= 8 {
        h = (h ^ round(0, word(rest))).rotate_left(27).wrapping_mul(P1).wrapping_add(P4);
        rest = &rest[8..];
    }
    if rest.len() >= 4 {
        let k = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as u64;
        h = (h ^ k.wrapping_mul(P1)).rotate_left(23).wrapping_mul(P2).wrapping_add(P3);
        rest = &rest[4..];
    }
    for &b in rest {
        h = (h ^ (b as u64).wrapping_mul(P5)).rotate_left(11).wrapping_mul(P1);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(P2);
    h ^= h >> 29;
    h = h.wrapping_mul(P3);
    h ^ (h >> 32)
}

/// XXH3 (xxHash's 64-bit XXH3, default secret, seed 0), the checksum: checking
/// it reads every byte of an artifact, so it is the largest cost of loading
/// one after the reading itself; XXH3 takes about three quarters of XXH64's
/// time (its 64-byte stripes vectorize: SSE2 on every x86_64), and detects
/// damage as well.
pub(crate) fn xxh3_64(data: &[u8]) -> u64 {
    const P64_1: u64 = 0x9E37_79B1_85EB_CA87;
    let len = data.len();
    let n = len as u64;
    let r64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let r32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes")) as u64;
    let s64 = |at: usize| r64(&XXH3_SECRET, at);
    let mix16 = |at: usize, secret: usize| fold64(r64(data, at) ^ s64(secret), r64(data, at + 8) ^ s64(secret + 8));
    match len {
        0 => xxh64_avalanche(s64(56) ^ s64(64)),
        1..=3 => {
            let c = (data[0] as u64) << 16 | (data[len >> 1] as u64) << 24 | data[len - 1] as u64 | n << 8;
            xxh64_avalanche(c ^ (r32(&XXH3_SECRET, 0) ^ r32(&XXH3_SECRET, 4)))
        }
        4..=8 => {
            const MX2: u64 = 0x9FB2_1C65_1E98_DF25;
            let mut h = (r32(data, len - 4) | r32(data, 0) << 32) ^ (s64(8) ^ s64(16));
            h ^= h.rotate_left(49) ^ h.rotate_left(24);
            h = h.wrapping_mul(MX2);
            h ^= (h >> 35).wrapping_add(n);
            h = h.wrapping_mul(MX2);
            h ^ (h >> 28)
        }
        9..=16 => {
            let lo = r64(data, 0) ^ (s64(24) ^ s64(32));
            let hi = r64(data, len - 8) ^ (s64(40) ^ s64(48));
            xxh3_avalanche(n.wrapping_add(lo.swap_bytes()).wrapping_add(hi).wrapping_add(fold64(lo, hi)))
        }
        17..=128 => {
            // 16 bytes from each end, then 16 more from each end per 32 bytes beyond 32.
            let mut h = n.wrapping_mul(P64_1);
            for i in 0..=(len - 1) / 32 {
                h = h.wrapping_add(mix16(16 * i, 32 * i)).wrapping_add(mix16(len - 16 * (i + 1), 32 * i + 16));
            }
            xxh3_avalanche(h)
        }
        129..=240 => {
            let mut h = n.wrapping_mul(P64_1);
            for i in 0..8 {
                h = h.wrapping_add(mix16(16 * i, 16 * i));
            }
            h = xxh3_avalanche(h);
            for i in 8..len / 16 {
                h = h.wrapping_add(mix16(16 * i, 16 * (i - 8) + 3));
            }
            xxh3_avalanche(h.wrapping_add(mix16(len - 16, 136 - 17)))
        }
        _ => xxh3_long(data),
    }
}

/// XXH3 of more than 240 bytes: eight accumulators over 64-byte stripes, the
/// secret advancing 8 bytes per stripe, scrambled after every 16 stripes.
fn xxh3_long(data: &[u8]) -> u64 {
    const P32_1: u64 = 0x9E37_79B1;
    const BLOCK: usize = 64 * 16;
    let s64 = |at: usize| u64::from_le_bytes(XXH3_SECRET[at..at + 8].try_into().expect("8 bytes"));
    let len = data.len();
    let mut acc = [
        0xC2B2_AE3D,
        0x9E37_79B1_85EB_CA87,
        0xC2B2_AE3D_27D4_EB4F,
        0x1656_67B1_9E37_79F9,
        0x85EB_CA77_C2B2_AE63,
        0x85EB_CA77,
        0x27D4_EB2F_1656_67C5,
        P32_1,
    ];
    let blocks = (len - 1) / BLOCK;
    for block in data[..blocks * BLOCK].chunks_exact(BLOCK) {
        for (i, stripe) in block.chunks_exact(64).enumerate() {
            xxh3_stripe(&mut acc, stripe, 8 * i);
        }
        for (i, a) in acc.iter_mut().enumerate() {
            *a = (*a ^ (*a >> 47) ^ s64(128 + 8 * i)).wrapping_mul(P32_1);
        }
    }
    let rest = &data[blocks * BLOCK..];
    for (i, stripe) in rest[..(rest.len() - 1) / 64 * 64].chunks_exact(64).enumerate() {
        xxh3_stripe(&mut acc, stripe, 8 * i);
    }
    // The last 64 bytes, overlapping the stripes before unless the length is a multiple of 64.
    xxh3_stripe(&mut acc, &data[len - 64..], 192 - 64 - 7);
    let mut h = (len as u64).wrapping_mul(0x9E37_79B1_85EB_CA87);
    for i in 0..4 {
        h = h.wrapping_add(fold64(acc[2 * i] ^ s64(11 + 16 * i), acc[2 * i + 1] ^ s64(11 + 16 * i + 8)));
    }
    xxh3_avalanche(h)
}

/// Accumulates a 64-byte stripe with the secret from `secret` on.
#[inline(always)]
fn xxh3_stripe(acc: &mut [u64; 8], stripe: &[u8], secret: usize) {
    let word = |b: &[u8], i: usize| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    let key = &XXH3_SECRET[secret..secret + 64];
    for i in 0..8 {
        let v = word(stripe, i);
        let k = v ^ word(key, i);
        acc[i ^ 1] = acc[i ^ 1].wrapping_add(v);
        acc[i] = acc[i].wrapping_add((k & 0xffff_ffff).wrapping_mul(k >> 32));
    }
}

/// The 128-bit product of `a` and `b`, its halves xored.
fn fold64(a: u64, b: u64) -> u64 {
    let p = a as u128 * b as u128;
    p as u64 ^ (p >> 64) as u64
}

fn xxh3_avalanche(mut h: u64) -> u64 {
    h ^= h >> 37;
    h = h.wrapping_mul(0x1656_6791_9E37_79F9);
    h ^ (h >> 32)
}

fn xxh64_avalanche(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h ^= h >> 29;
    h = h.wrapping_mul(0x1656_67B1_9E37_79F9);
    h ^ (h >> 32)
}

/// XXH3's default secret (`kSecret`), a constant of the algorithm.
const XXH3_SECRET: [u8; 192] = [
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c, //
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f, //
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21, //
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c, //
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3, //
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8, //
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d, //
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64, //
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb, //
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e, //
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce, //
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e, //
];

#[cfg(test)]
mod tests {
    use super::super::module::CodeLayout;
    use super::*;
    use crate::Config;

    fn engine() -> Engine {
        Engine::new(Config::new().strategy(Strategy::Cranelift))
    }

    #[test]
    fn a_missing_cpu_feature_or_another_target_is_refused() {
        let host = Header::for_engine(&engine()).unwrap();
        assert_eq!(host.compatible_with(&host), Ok(()));
        // Code that does not use a feature the host has is fine.
        let mut fewer = host.clone();
        if let Some(f) = fewer.isa.iter_mut().find(|(_, is_bool, v)| *is_bool && v == "true") {
            f.2 = "false".into();
            assert_eq!(fewer.compatible_with(&host), Ok(()));
            assert!(host.compatible_with(&fewer).unwrap_err().contains("which this host lacks"));
        }
        let mut other = host.clone();
        other.triple = "riscv64gc-unknown-linux-gnu".into();
        let m = other.compatible_with(&host).unwrap_err();
        assert!(m.contains("compiled for riscv64gc") && !m.contains('\n'), "{m}");
        let mut other = host.clone();
        other.carnac = "0.0.1 (build 0)".into();
        assert!(other.compatible_with(&host).unwrap_err().contains("compiled by Carnac 0.0.1"));
        let mut other = host.clone();
        other.shared[0].1 = "something else".into();
        assert!(other.compatible_with(&host).unwrap_err().contains("Cranelift setting"));
    }

    #[test]
    fn layouts_pointing_outside_the_code_are_refused() {
        let good = CodeLayout {
            funcs: vec![0..16, 16..40],
            array_calls: vec![48, 48],
            traps: vec![(4, super::super::trap_codes::UNREACHABLE)],
            srclocs: vec![(0, 1), (40, u32::MAX)],
            abs_relocs: vec![],
        };
        // As the artifact stores them: trap sites and source locations as records.
        let check = |l: &CodeLayout, len: usize| {
            let traps: Vec<u8> = l.traps.iter().flat_map(|&(at, c)| at.to_le_bytes().into_iter().chain([c])).collect();
            let srclocs: Vec<u8> =
                l.srclocs.iter().flat_map(|&(at, w)| [at.to_le_bytes(), w.to_le_bytes()]).flatten().collect();
            check_layout(&l.funcs, &l.array_calls, &traps, &l.abs_relocs, len)?;
            if srclocs_valid(&srclocs, len) {
                Ok(())
            } else {
                Err("bad source locations".to_string())
            }
        };
        assert_eq!(check(&good, 64), Ok(()));
        let bad = |f: &dyn Fn(&mut CodeLayout)| {
            let mut l = good.clone();
            f(&mut l);
            check(&l, 64).unwrap_err()
        };
        bad(&|l| l.funcs[1] = 16..65);
        bad(&|l| l.funcs[1] = 8..20);
        bad(&|l| l.funcs[1] = 20..20);
        bad(&|l| l.funcs.swap(0, 1));
        bad(&|l| l.array_calls[1] = 64);
        bad(&|l| l.array_calls.pop().map(drop).unwrap_or(()));
        bad(&|l| l.traps[0].0 = 44);
        bad(&|l| l.traps[0].1 = 200);
        bad(&|l| l.traps.push((2, l.traps[0].1)));
        bad(&|l| l.srclocs[1].0 = 65);
        bad(&|l| l.srclocs.swap(0, 1));
        bad(&|l| l.abs_relocs.push((60, 0)));
        bad(&|l| l.abs_relocs.push((0, 64)));
        assert!(check(&good, 32).is_err());
        assert!(!srclocs_valid(&[0; 7], 64), "not whole records");
    }

    /// Rewrites the checksum after damaging an artifact, as a crafted file would.
    #[cfg(carnac_compiled)]
    fn reseal(bytes: &mut [u8]) {
        let n = bytes.len() - 8;
        let sum = xxh3_64(&bytes[..n]);
        bytes[n..].copy_from_slice(&sum.to_le_bytes());
    }

    /// Where an artifact's source locations are, and its code offset field.
    #[cfg(carnac_compiled)]
    fn positions(bytes: &[u8]) -> (Range<usize>, usize) {
        let mut r = Reader { bytes: &bytes[..bytes.len() - 8], pos: MAGIC.len() + 4 };
        Header::read(&mut r).unwrap();
        r.wasm().unwrap();
        r.array(|_: &[u8; 8]| ()).unwrap();
        r.array(|_: &[u8; 4]| ()).unwrap();
        r.records(TRAP_RECORD).unwrap();
        let srclocs = r.records(SRCLOC_RECORD).unwrap();
        r.array(|_: &[u8; 8]| ()).unwrap();
        (srclocs, r.pos)
    }

    #[cfg(carnac_compiled)]
    const DIVIDE: &str =
        r#"(module (func (export "f") (param i32) (result i32) (i32.div_u (i32.const 7) (local.get 0))))"#;

    #[cfg(carnac_compiled)]
    #[test]
    fn the_code_must_lie_at_its_aligned_offset() {
        use crate::Module;
        let engine = engine();
        let bytes = Module::new(&engine, DIVIDE).unwrap().serialize().unwrap();
        let (_, field) = positions(&bytes);
        let offset = u64::from_le_bytes(bytes[field..field + 8].try_into().unwrap());
        let len = u64::from_le_bytes(bytes[field + 8..field + 16].try_into().unwrap());
        assert_eq!(offset, (field as u64 + 16).next_multiple_of(CODE_ALIGN as u64));
        assert_eq!(offset + len, bytes.len() as u64 - 8, "the code runs to the checksum");
        let dir = std::env::temp_dir().join(format!("carnac-artifact-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("moved.cwasm");
        for (moved, expect) in [
            (offset + 1, "not a multiple of 16 KiB"),
            (offset - 8, "not a multiple of 16 KiB"),
            (offset + CODE_ALIGN as u64, "expected at"),
            (0, "expected at"),
        ] {
            let mut damaged = bytes.clone();
            damaged[field..field + 8].copy_from_slice(&moved.to_le_bytes());
            reseal(&mut damaged);
            std::fs::write(&path, &damaged).unwrap();
            for err in [Module::deserialize(&engine, &damaged), Module::deserialize_file(&engine, &path)] {
                let m = err.unwrap_err().to_string();
                assert!(m.contains("damaged artifact") && m.contains(expect) && !m.contains('\n'), "{m}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(carnac_compiled)]
    #[test]
    fn damaged_source_locations_cost_backtraces_their_offsets_only() {
        use crate::Module;
        let engine = engine();
        let bytes = Module::new(&engine, DIVIDE).unwrap().serialize().unwrap();
        let trap_offset = |bytes: &[u8]| {
            let module = Module::deserialize(&engine, bytes).unwrap();
            let mut store = crate::Store::new(&engine, ());
            let instance = crate::Instance::new(&mut store, &module, &[]).unwrap();
            let f = instance.get_typed_func::<i32, i32>(&store, "f").unwrap();
            assert_eq!(f.call(&mut store, 7).unwrap(), 1);
            let err = f.call(&mut store, 0).unwrap_err();
            let frame = &err.as_trap().unwrap().backtrace()[0];
            (frame.module_offset, frame.func_offset)
        };
        let (module_offset, func_offset) = trap_offset(&bytes);
        assert!(module_offset.is_some() && func_offset.is_some());
        let (srclocs, _) = positions(&bytes);
        assert!(srclocs.len() >= 2 * SRCLOC_RECORD);
        // The first run moved past the code: out of order and outside it.
        let mut damaged = bytes.clone();
        damaged[srclocs.start..srclocs.start + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        reseal(&mut damaged);
        assert_eq!(trap_offset(&damaged), (None, None));
    }

    #[cfg(carnac_compiled)]
    #[test]
    fn damage_behind_a_valid_checksum_is_still_an_error_or_harmless() {
        let engine = engine();
        let wat = r#"(module (memory 1) (data (i32.const 0) "x")
            (func (export "f") (param i32) (result i32) (i32.div_u (i32.const 7) (local.get 0)))
            (func (export "g") (result i32) (call 0 (i32.const 1))))"#;
        let bytes = crate::Module::new(&engine, wat).unwrap().serialize().unwrap();
        // Past the header, every byte set to 0xff in turn (lengths and counts
        // become huge, offsets point outside): parsing and loading must return,
        // never panic or allocate wildly. The code is never run.
        let body_start = {
            let mut r = Reader { bytes: &bytes, pos: MAGIC.len() + 4 };
            Header::read(&mut r).unwrap();
            r.pos
        };
        let mut errors = 0;
        for at in body_start..bytes.len() - 8 {
            let mut damaged = bytes.clone();
            damaged[at] = 0xff;
            reseal(&mut damaged);
            errors += crate::Module::deserialize(&engine, &damaged).is_err() as usize;
        }
        assert!(errors > 0);
    }

    #[test]
    fn xxh64_matches_the_reference() {
        // Reference values from xxHash's `xxhsum -H64` / its sanity tests.
        assert_eq!(xxh64(b"", 0), 0xEF46_DB37_51D8_E999);
        assert_eq!(xxh64(b"a", 0), 0xD24E_C4F1_A98C_6E5B);
        assert_eq!(xxh64(b"abc", 0), 0x44BC_2CF5_AD77_0999);
        // Longer than one 32-byte stripe, with 8-, 4- and 1-byte tails.
        assert_eq!(xxh64(b"The quick brown fox jumps over the lazy dog", 0), 0x0B24_2D36_1FDA_71BC);
    }

    #[test]
    fn xxh3_matches_the_reference() {
        // xxHash's sanity test buffer and its XXH3_64bits values (`xsum_sanity_check.c`,
        // seed 0): every length class, and the long input's block and stripe ends.
        let mut buf = vec![0u8; 2367];
        let mut gen: u64 = 2_654_435_761;
        for b in &mut buf {
            *b = (gen >> 56) as u8;
            gen = gen.wrapping_mul(11_400_714_785_074_694_797);
        }
        for (len, expected) in [
            (0, 0x2D06_8005_38D3_94C2),
            (1, 0xC44B_DFF4_074E_ECDB),
            (6, 0x27B5_6A84_CD2D_7325),
            (12, 0xA713_DAF0_DFBB_77E7),
            (24, 0xA3FE_70BF_9D35_10EB),
            (48, 0x397D_A259_ECBA_1F11),
            (80, 0xBCDE_FBBB_2C47_C90A),
            (195, 0xCD94_217E_E362_EC3A),
            (403, 0xCDEB_804D_65C6_DEA4),
            (512, 0x617E_4959_9013_CB6B),
            (2048, 0xDD59_E2C3_A5F0_38E0),
            (2240, 0x6E73_A905_39CF_2948),
            (2367, 0xCB37_AEB9_E5D3_61ED),
        ] {
            assert_eq!(xxh3_64(&buf[..len]), expected, "{len} bytes");
        }
    }
}
