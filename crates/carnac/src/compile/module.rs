//! A module's machine code once it exists: every defined function's code
//! and the host-to-wasm trampolines in one executable region, linked, and
//! registered so that its traps and frames can be found by pc.
//!
//! Why one region per module: direct calls between the module's functions are
//! plain pc-relative `call`s, linked before the region is made executable;
//! nothing is writable and executable at once (W^X). The region lives as long
//! as the module (`ModuleInner` owns this), and every instance holds the
//! module, so code never goes away under a running call.
//!
//! Two halves: compiling (`super::compiler`, only in builds with Cranelift)
//! produces a position-independent image plus its [`CodeLayout`];
//! `CompiledModule::publish`, here, maps, patches, publishes and registers
//! them. Loading an artifact (`super::artifact`) is the second half alone, in
//! place: [`CompiledModule::from_artifact`] makes the code executable where
//! it lies in the (mapped) artifact, patched the same way, and reads its trap
//! sites and source locations there, in the layout's encoding. A build
//! without the compiler (the `loader` feature) has this half only. Both
//! register their code through [`Region`], as does tiering's standalone code
//! (`super::compiler::StandaloneCode`).

use std::ops::Range;
use std::sync::Arc;

use super::artifact::{self, Parsed};
use super::code_memory::{ArtifactImage, CodeMemory, Patch, WritableCode};
use super::traps::{self, CodeInfo, CodeRegistration, TrapTable};
use crate::error::Error;
use crate::module::SharedBytes;
use crate::runtime::vmctx::VMContext;

/// The host-to-wasm entry of one function: `(wasm_call, vmctx, slots)`, with
/// the raw parameters in `slots` on entry and the raw results on return.
pub(crate) type ArrayCall = unsafe extern "C" fn(wasm_call: *const u8, vmctx: *mut VMContext, slots: *mut u64);

/// What the signal handler and backtraces need to know about the region: where
/// each function is, where its traps are, and which wasm offset each
/// instruction came from. Immutable once published.
pub(super) struct RegionInfo {
    /// The region's first address.
    base: usize,
    /// Each defined function's code, as offsets into the region (sorted).
    funcs: Vec<Range<u32>>,
    traps: TrapTable,
    srclocs: SrcLocs,
}

/// (code offset where a run of instructions starts, wasm offset or
/// `u32::MAX`), sorted by code offset, as records of
/// [`artifact::SRCLOC_RECORD`] bytes: as an artifact stores them, so that a
/// loaded artifact's (often the largest of its tables) are used where they
/// lie. Only backtraces read them: an artifact's are checked on first use,
/// not at load, and if damaged, frames go without wasm offsets.
struct SrcLocs {
    records: SharedBytes,
    /// Bytes of code they describe.
    code_len: usize,
    valid: std::sync::OnceLock<bool>,
}

impl SrcLocs {
    #[cfg(carnac_compiled)]
    fn new(srclocs: &[(u32, u32)], code_len: usize) -> SrcLocs {
        let records: Vec<u8> =
            srclocs.iter().flat_map(|&(at, wasm)| [at.to_le_bytes(), wasm.to_le_bytes()]).flatten().collect();
        SrcLocs { records: records.into(), code_len, valid: true.into() }
    }

    fn from_artifact(records: SharedBytes, code_len: usize) -> SrcLocs {
        SrcLocs { records, code_len, valid: std::sync::OnceLock::new() }
    }

    fn iter(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.records.chunks_exact(artifact::SRCLOC_RECORD).map(|r| (le32(r), le32(&r[4..])))
    }

    /// The wasm offset of the run of instructions holding code offset `off`.
    fn at(&self, off: u32) -> Option<u32> {
        if !*self.valid.get_or_init(|| artifact::srclocs_valid(&self.records, self.code_len)) {
            return None;
        }
        let records: &[u8] = &self.records;
        let n = records.len() / artifact::SRCLOC_RECORD;
        let start = |k: usize| le32(&records[k * artifact::SRCLOC_RECORD..]);
        // The last run starting at or before `off`.
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if start(mid) <= off {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let k = lo.checked_sub(1)?;
        Some(le32(&records[k * artifact::SRCLOC_RECORD + 4..])).filter(|&w| w != u32::MAX)
    }
}

/// The little-endian u32 at the start of `b`.
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl CodeInfo for RegionInfo {
    fn trap_at(&self, pc: usize) -> Option<u8> {
        self.traps.lookup(pc)
    }

    fn is_wasm_function(&self, pc: usize) -> bool {
        self.func_at(pc).is_some()
    }
}

impl RegionInfo {
    /// The defined function whose code holds `pc`.
    pub(super) fn func_at(&self, pc: usize) -> Option<u32> {
        let off = u32::try_from(pc.checked_sub(self.base)?).ok()?;
        let k = self.funcs.partition_point(|r| r.start <= off).checked_sub(1)?;
        self.funcs[k].contains(&off).then_some(k as u32)
    }

    /// The wasm offset of the instruction at `pc`.
    pub(super) fn wasm_offset_at(&self, pc: usize) -> Option<u32> {
        let off = u32::try_from(pc.checked_sub(self.base)?).ok()?;
        self.srclocs.at(off)
    }
}

/// Code published in a region of its own and registered with the trap
/// handler (unregistered, then unmapped, when dropped).
pub(super) struct Region {
    /// Declared first, so dropped first: the code is unregistered before its
    /// memory is unmapped. (Dropped the other way round, another thread could
    /// map new code at the freed addresses and register it while the old entry
    /// still covers them: the registry refuses overlapping code, a panic that
    /// the differential test hit once on a clean CI machine.)
    _registration: CodeRegistration,
    pub code: CodeMemory,
    pub info: Arc<RegionInfo>,
}

impl Region {
    /// Publishes `code` (linked for its address) with where its functions, trap
    /// sites and source locations are (offsets; see [`CodeLayout`]).
    #[cfg(carnac_compiled)]
    pub fn publish(
        code: WritableCode,
        funcs: Vec<Range<u32>>,
        traps: Vec<(u32, u8)>,
        srclocs: Vec<(u32, u32)>,
    ) -> Result<Region, Error> {
        let code = code.publish().map_err(|e| Error::Compile(e.to_string()))?;
        let srclocs = SrcLocs::new(&srclocs, code.len());
        let traps = TrapTable::new(code.base(), traps);
        Ok(Region::register(code, funcs, traps, srclocs))
    }

    /// Registers published `code` with the trap handler.
    fn register(code: CodeMemory, funcs: Vec<Range<u32>>, traps: TrapTable, srclocs: SrcLocs) -> Region {
        let info = Arc::new(RegionInfo { base: code.base(), funcs, traps, srclocs });
        let registration = traps::register(code.range(), info.clone());
        Region { code, info, _registration: registration }
    }
}

/// A module's machine code (see the module docs).
pub(crate) struct CompiledModule {
    region: Region,
    /// Region offset of each defined function's array-call trampoline.
    array_calls: Vec<u32>,
    /// `CodeLayout::abs_relocs`, kept to serialize the code position-independent.
    abs_relocs: Vec<(u32, u32)>,
    /// For a module loaded from an artifact file: the file, and the address its
    /// byte 0 is mapped at (the module's wasm lies in it).
    mapped_file: Option<(Arc<std::fs::File>, usize)>,
}

impl std::fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledModule").field("bytes", &self.region.code.len()).finish()
    }
}

/// Everything about a module's code besides its bytes, every position an offset
/// into the code: what laying out compiled functions produces, what an
/// artifact stores ([`super::artifact`]), and what `CompiledModule::publish`
/// turns into running code. The code bytes that go with it are
/// position-independent except at `abs_relocs`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CodeLayout {
    /// Each defined function's code (sorted, disjoint).
    pub funcs: Vec<Range<u32>>,
    /// Each defined function's array-call trampoline.
    pub array_calls: Vec<u32>,
    /// Trap sites in the functions: (offset, trap code byte, see `super::trap_codes`), sorted.
    pub traps: Vec<(u32, u8)>,
    /// (offset where a run of instructions starts, wasm offset or `u32::MAX`), sorted.
    pub srclocs: Vec<(u32, u32)>,
    /// 8-byte absolute addresses to patch when the code is placed: (at, target),
    /// both offsets; the patched value is the code's base plus `target`. Cranelift
    /// emits none for the calls the translator makes today (they are pc-relative).
    pub abs_relocs: Vec<(u32, u32)>,
}

impl CompiledModule {
    /// Copies `image` into new executable memory, patches its absolute
    /// relocations, publishes it W^X and registers it with the trap handler:
    /// what compiling ends with (an artifact's code runs in place instead,
    /// [`CompiledModule::from_artifact`], copied the same way only where it
    /// cannot). The layout must be consistent with the image (offsets inside
    /// it, functions sorted and disjoint), as compiled layouts are by
    /// construction.
    #[cfg(carnac_compiled)]
    pub fn publish(image: &[u8], layout: CodeLayout) -> Result<Self, Error> {
        let CodeLayout { funcs, array_calls, traps, srclocs, abs_relocs } = layout;
        let mut writable = WritableCode::from_image(image).map_err(|e| Error::Compile(e.to_string()))?;
        let base = writable.base();
        patch_abs_relocs(&mut writable, base, &abs_relocs);
        let region = Region::publish(writable, funcs, traps, srclocs)?;
        Ok(CompiledModule { region, array_calls, abs_relocs, mapped_file: None })
    }

    /// Publishes the code of an artifact (its bytes in `image`, checked by
    /// `artifact::parse` into `parsed`): runs it where it lies in the image
    /// (mapped from its file), patched if it has absolute relocations, or
    /// where that is impossible (a `noexec` file system, pages larger than the
    /// code's alignment) from a copy; its trap sites and source locations are
    /// read where they lie too. Returns the image's bytes, which the module
    /// keeps (its wasm is there).
    pub fn from_artifact(mut image: ArtifactImage, parsed: Parsed) -> Result<(Self, SharedBytes), Error> {
        let Parsed { code: range, funcs, array_calls, traps, srclocs, abs_relocs, .. } = parsed;
        let patch = |code: &mut [u8], base: usize| patch_abs_relocs(code, base, &abs_relocs);
        let patch: Option<Patch<'_>> = if abs_relocs.is_empty() { None } else { Some(&patch) };
        let in_place = image.make_executable(range.clone(), patch).is_ok();
        let mapped_file = image.file().map(|f| (f.clone(), image.bytes().as_ptr() as usize));
        let image = Arc::new(image);
        let bytes = SharedBytes::new(image.clone(), 0..image.bytes().len());
        let code = if in_place {
            CodeMemory::in_image(image)
        } else {
            copy_and_publish(&image.bytes()[range.clone()], &abs_relocs)?
        };
        let srclocs = SrcLocs::from_artifact(bytes.slice(srclocs), code.len());
        let traps = TrapTable::from_records(code.base(), bytes.slice(traps));
        let region = Region::register(code, funcs, traps, srclocs);
        Ok((CompiledModule { region, array_calls, abs_relocs, mapped_file }, bytes))
    }

    /// The artifact file the module was loaded from, and where its byte 0 is mapped.
    pub fn mapped_file(&self) -> Option<(&std::fs::File, usize)> {
        self.mapped_file.as_ref().map(|(f, base)| (&**f, *base))
    }

    /// The code as an artifact stores it: position-independent (absolute
    /// relocations zeroed), with its layout.
    pub fn image_and_layout(&self) -> (Vec<u8>, CodeLayout) {
        let mut image = self.region.code.as_slice().to_vec();
        for &(at, _) in &self.abs_relocs {
            image[at as usize..at as usize + 8].fill(0);
        }
        let layout = CodeLayout {
            funcs: self.region.info.funcs.clone(),
            array_calls: self.array_calls.clone(),
            traps: self.region.info.traps.sites().collect(),
            srclocs: self.region.info.srclocs.iter().collect(),
            abs_relocs: self.abs_relocs.clone(),
        };
        (image, layout)
    }

    /// How many defined functions the code has.
    pub fn defined_funcs(&self) -> usize {
        self.region.info.funcs.len()
    }

    /// Native code of defined function `def` (see `VMFuncRef::wasm_call`).
    pub fn wasm_call(&self, def: u32) -> *const u8 {
        self.region.code.ptr_at(self.region.info.funcs[def as usize].start as usize)
    }

    /// The host-to-wasm entry of defined function `def`.
    pub fn array_call(&self, def: u32) -> ArrayCall {
        let p = self.region.code.ptr_at(self.array_calls[def as usize] as usize);
        // SAFETY: the trampoline at this offset was compiled with exactly this
        // signature (the platform's C convention, `compile_array_to_wasm_trampoline`;
        // an artifact holds the same code) and lives, executable, as long as `self`.
        unsafe { std::mem::transmute::<*const u8, ArrayCall>(p) }
    }

    /// The defined function and wasm offset of the instruction at `pc`, if `pc`
    /// is in one of this module's functions.
    pub fn frame_at(&self, pc: usize) -> Option<(u32, Option<u32>)> {
        let def = self.region.info.func_at(pc)?;
        Some((def, self.region.info.wasm_offset_at(pc)))
    }
}

/// Copies `image` into new executable memory, patches its absolute relocations
/// and publishes it.
fn copy_and_publish(image: &[u8], abs_relocs: &[(u32, u32)]) -> Result<CodeMemory, Error> {
    let mut writable = WritableCode::from_image(image).map_err(|e| Error::Compile(e.to_string()))?;
    let base = writable.base();
    patch_abs_relocs(&mut writable, base, abs_relocs);
    writable.publish().map_err(|e| Error::Compile(e.to_string()))
}

/// Writes each absolute relocation's address into `code`, which runs at `base`
/// (`CodeLayout::abs_relocs`; checked to lie inside the code).
fn patch_abs_relocs(code: &mut [u8], base: usize, abs_relocs: &[(u32, u32)]) {
    for &(at, target) in abs_relocs {
        let (at, target) = (at as usize, target as usize);
        code[at..at + 8].copy_from_slice(&((base + target) as u64).to_le_bytes());
    }
}

#[cfg(all(test, carnac_compiled))]
mod tests {
    use super::*;
    use crate::{Config, Engine, Module, Strategy};

    /// An artifact's code that cannot run where it lies (not on a page
    /// boundary, as on hosts with pages over 16 KiB) is copied, and runs from
    /// the copy, its tables still read where they lie.
    #[test]
    fn code_that_cannot_run_in_place_is_copied() {
        let engine = Engine::new(Config::new().strategy(Strategy::Cranelift));
        let wat = r#"(module (func (export "f") (param i32) (result i32) (i32.div_u (i32.const 7) (local.get 0))))"#;
        let bytes = Module::new(&engine, wat).unwrap().serialize().unwrap();
        let parsed = artifact::parse(&engine, &bytes).unwrap();
        let code = parsed.code.clone();
        // The same artifact one byte further into its image.
        let shifted = [&[0u8][..], &bytes].concat();
        let shift = |r: Range<usize>| r.start + 1..r.end + 1;
        let parsed = Parsed {
            wasm: shift(parsed.wasm),
            code: shift(parsed.code),
            traps: shift(parsed.traps),
            srclocs: shift(parsed.srclocs),
            ..parsed
        };
        let image = ArtifactImage::copy_of(&shifted).unwrap();
        let image_at = image.bytes().as_ptr() as usize..image.bytes().as_ptr() as usize + shifted.len();
        let (compiled, _) = CompiledModule::from_artifact(image, parsed).unwrap();
        assert!(!image_at.contains(&compiled.region.code.base()), "a copy");
        assert_eq!(compiled.region.code.as_slice(), &bytes[code]);
        // The division's trap site, its function and wasm offset.
        let (site, _) = compiled.region.info.traps.sites().next().unwrap();
        let (def, offset) = compiled.frame_at(compiled.region.code.base() + site as usize).unwrap();
        assert_eq!(def, 0);
        assert!(offset.is_some(), "source locations read in the image");
    }
}
