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
//! [`CompiledModule::publish`], here, maps, patches, publishes and registers
//! them. Loading an artifact (`super::artifact`) is the second half alone, so
//! compiled and loaded code go through the same steps, and a build without
//! the compiler (the `loader` feature) has this half only.

use std::ops::Range;
use std::sync::Arc;

use super::code_memory::{CodeMemory, WritableCode};
use super::traps::{self, CodeInfo, CodeRegistration, TrapTable};
use crate::error::Error;
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
    /// (code offset where a run of instructions starts, wasm offset), sorted.
    srclocs: Vec<(u32, u32)>,
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
        let k = self.srclocs.partition_point(|&(start, _)| start <= off).checked_sub(1)?;
        Some(self.srclocs[k].1).filter(|&w| w != u32::MAX)
    }
}

/// Code published in a region of its own and registered with the trap
/// handler (unregistered, then unmapped, when dropped).
pub(super) struct Region {
    pub code: CodeMemory,
    pub info: Arc<RegionInfo>,
    _registration: CodeRegistration,
}

impl Region {
    /// Publishes `code` (linked for its address) with where its functions, trap
    /// sites and source locations are (offsets; see [`CodeLayout`]).
    pub fn publish(
        code: WritableCode,
        funcs: Vec<Range<u32>>,
        traps: Vec<(u32, u8)>,
        srclocs: Vec<(u32, u32)>,
    ) -> Result<Region, Error> {
        let code = code.publish().map_err(|e| Error::Compile(e.to_string()))?;
        let info =
            Arc::new(RegionInfo { base: code.base(), funcs, traps: TrapTable::new(code.base(), traps), srclocs });
        let registration = traps::register(code.range(), info.clone());
        Ok(Region { code, info, _registration: registration })
    }
}

/// A module's machine code (see the module docs).
pub(crate) struct CompiledModule {
    region: Region,
    /// Region offset of each defined function's array-call trampoline.
    array_calls: Vec<u32>,
    /// `CodeLayout::abs_relocs`, kept to serialize the code position-independent.
    abs_relocs: Vec<(u32, u32)>,
}

impl std::fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledModule").field("bytes", &self.region.code.len()).finish()
    }
}

/// Everything about a module's code besides its bytes, every position an offset
/// into the code: what laying out compiled functions produces, what an
/// artifact stores ([`super::artifact`]), and what [`CompiledModule::publish`]
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
    /// the half of loading code shared by compiling and deserializing. The
    /// layout must be consistent with the image (offsets inside it, functions
    /// sorted and disjoint): compiled layouts are by construction, artifacts'
    /// are checked before they get here.
    pub fn publish(image: &[u8], layout: CodeLayout) -> Result<Self, Error> {
        let CodeLayout { funcs, array_calls, traps, srclocs, abs_relocs } = layout;
        let mut writable = WritableCode::from_image(image).map_err(|e| Error::Compile(e.to_string()))?;
        let base = writable.base();
        for &(at, target) in &abs_relocs {
            let (at, target) = (at as usize, target as usize);
            writable[at..at + 8].copy_from_slice(&((base + target) as u64).to_le_bytes());
        }
        let region = Region::publish(writable, funcs, traps, srclocs)?;
        Ok(CompiledModule { region, array_calls, abs_relocs })
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
            traps: self.region.info.traps.sites().to_vec(),
            srclocs: self.region.info.srclocs.clone(),
            abs_relocs: self.abs_relocs.clone(),
        };
        (image, layout)
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
