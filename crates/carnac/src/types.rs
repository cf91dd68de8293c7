//! The WebAssembly type vocabulary of the public API: value, function, table,
//! memory, global and extern types, and the import/export descriptors of a module.
//!
//! These are plain data, independent of any store or tier. Conversion from
//! `wasmparser`'s types lives here so that the rest of the crate never names them.

use std::fmt;
use std::sync::Arc;

/// The type of a WebAssembly value.
///
/// A reference type is [`ValType::Ref`]: a [`RefType`], nullable or not, to a
/// [`HeapType`] (typed function references). [`ValType::FUNCREF`] and
/// [`ValType::EXTERNREF`] (also spelled [`ValType::FuncRef`] and
/// [`ValType::ExternRef`], the names of Carnac's WebAssembly 2.0 API) are the
/// nullable abstract ones, `funcref` and `externref`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit IEEE 754 float.
    F32,
    /// 64-bit IEEE 754 float.
    F64,
    /// 128-bit vector (fixed-width SIMD).
    V128,
    /// A reference.
    Ref(RefType),
}

/// A reference type: whether it admits null, and the heap type it refers to;
/// as Wasmtime's `RefType`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RefType {
    nullable: bool,
    heap_type: HeapType,
}

/// What a reference refers to; as Wasmtime's `HeapType` (GC adds variants).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeapType {
    /// Any function (`func`).
    Func,
    /// Any host value (`extern`).
    Extern,
    /// No function: only null (`nofunc`), below every function type.
    NoFunc,
    /// No host value: only null (`noextern`).
    NoExtern,
    /// A function of this type (`(ref $t)`); types are compared structurally,
    /// so the same type defined in two modules is one type.
    Concrete(FuncType),
    /// Any exception (`exn`, the exception-handling proposal).
    Exn,
    /// No exception: only null (`noexn`).
    NoExn,
}

impl HeapType {
    /// Whether a reference to `self` is a reference to `other` (subtyping).
    pub fn matches(&self, other: &HeapType) -> bool {
        match (self, other) {
            (a, b) if a == b => true,
            (HeapType::Concrete(_) | HeapType::NoFunc, HeapType::Func) => true,
            (HeapType::NoFunc, HeapType::Concrete(_)) => true,
            (HeapType::NoExtern, HeapType::Extern) => true,
            (HeapType::NoExn, HeapType::Exn) => true,
            _ => false,
        }
    }

    /// Whether its references are function references (at run time a
    /// function or null).
    pub fn is_func(&self) -> bool {
        matches!(self, HeapType::Func | HeapType::NoFunc | HeapType::Concrete(_))
    }

    /// Whether its references are exception references (`exn`, `noexn`).
    pub fn is_exn(&self) -> bool {
        matches!(self, HeapType::Exn | HeapType::NoExn)
    }

    /// The most general heap type of its hierarchy: `func`, `extern` or `exn`.
    pub fn top(&self) -> HeapType {
        if self.is_func() {
            HeapType::Func
        } else if self.is_exn() {
            HeapType::Exn
        } else {
            HeapType::Extern
        }
    }
}

impl fmt::Display for HeapType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeapType::Func => f.write_str("func"),
            HeapType::Extern => f.write_str("extern"),
            HeapType::NoFunc => f.write_str("nofunc"),
            HeapType::NoExtern => f.write_str("noextern"),
            HeapType::Exn => f.write_str("exn"),
            HeapType::NoExn => f.write_str("noexn"),
            HeapType::Concrete(t) => write!(f, "{t}"),
        }
    }
}

impl RefType {
    /// `funcref`: `(ref null func)`.
    pub const FUNCREF: RefType = RefType { nullable: true, heap_type: HeapType::Func };
    /// `externref`: `(ref null extern)`.
    pub const EXTERNREF: RefType = RefType { nullable: true, heap_type: HeapType::Extern };
    /// `exnref`: `(ref null exn)`.
    pub const EXNREF: RefType = RefType { nullable: true, heap_type: HeapType::Exn };

    /// A reference to `heap_type`, null included when `nullable`.
    pub fn new(nullable: bool, heap_type: HeapType) -> RefType {
        RefType { nullable, heap_type }
    }

    /// Whether null is a value of this type.
    pub fn is_nullable(&self) -> bool {
        self.nullable
    }

    /// What it refers to.
    pub fn heap_type(&self) -> &HeapType {
        &self.heap_type
    }

    /// Subtyping: every value of `self` is a value of `other`.
    pub fn matches(&self, other: &RefType) -> bool {
        (!self.nullable || other.nullable) && self.heap_type.matches(&other.heap_type)
    }
}

impl fmt::Display for RefType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.nullable, &self.heap_type) {
            (true, HeapType::Func) => f.write_str("funcref"),
            (true, HeapType::Extern) => f.write_str("externref"),
            (true, HeapType::Exn) => f.write_str("exnref"),
            (true, h) => write!(f, "(ref null {h})"),
            (false, h) => write!(f, "(ref {h})"),
        }
    }
}

#[allow(non_upper_case_globals)]
impl ValType {
    /// `funcref`, a nullable reference to any function.
    pub const FUNCREF: ValType = ValType::Ref(RefType::FUNCREF);
    /// `externref`, a nullable reference to any host value.
    pub const EXTERNREF: ValType = ValType::Ref(RefType::EXTERNREF);
    /// `exnref`, a nullable reference to any exception.
    pub const EXNREF: ValType = ValType::Ref(RefType::EXNREF);
    /// `funcref` under its name in Carnac's WebAssembly 2.0 API (also a pattern).
    pub const FuncRef: ValType = ValType::FUNCREF;
    /// `externref` under its name in Carnac's WebAssembly 2.0 API (also a pattern).
    pub const ExternRef: ValType = ValType::EXTERNREF;

    /// Whether this is a reference type.
    pub fn is_ref(&self) -> bool {
        matches!(self, ValType::Ref(_))
    }

    /// The reference type, if this is one.
    pub fn as_ref(&self) -> Option<&RefType> {
        match self {
            ValType::Ref(r) => Some(r),
            _ => None,
        }
    }

    /// Whether its values are function references (of any type, null or not).
    pub fn is_func_ref(&self) -> bool {
        matches!(self, ValType::Ref(r) if r.heap_type.is_func())
    }

    /// Whether its values are references into the store's arena of host
    /// values and exceptions (null or not): `extern` and `exn` references,
    /// which the same collector keeps (see `runtime::gc`).
    pub fn is_extern_ref(&self) -> bool {
        matches!(self, ValType::Ref(r) if !r.heap_type.is_func())
    }

    /// Whether its values are exception references (null or not).
    pub fn is_exn_ref(&self) -> bool {
        matches!(self, ValType::Ref(r) if r.heap_type.is_exn())
    }

    /// Whether null is a value of this type (a nullable reference type).
    pub fn is_nullable(&self) -> bool {
        matches!(self, ValType::Ref(r) if r.nullable)
    }

    /// Subtyping: every value of `self` is a value of `other` (equal
    /// numeric and vector types; reference subtyping).
    pub fn matches(&self, other: &ValType) -> bool {
        match (self, other) {
            (ValType::Ref(a), ValType::Ref(b)) => a.matches(b),
            (a, b) => a == b,
        }
    }

    /// How many 64-bit interpreter slots a value of this type takes.
    pub(crate) fn slots(&self) -> usize {
        if *self == ValType::V128 {
            2
        } else {
            1
        }
    }

    /// `types`: the function types the module defined so far, by type index.
    pub(crate) fn from_wasmparser(ty: wasmparser::ValType, types: &[FuncType]) -> Result<Self, String> {
        Ok(match ty {
            wasmparser::ValType::I32 => ValType::I32,
            wasmparser::ValType::I64 => ValType::I64,
            wasmparser::ValType::F32 => ValType::F32,
            wasmparser::ValType::F64 => ValType::F64,
            wasmparser::ValType::V128 => ValType::V128,
            wasmparser::ValType::Ref(r) => ValType::Ref(RefType::from_wasmparser(r, types)?),
        })
    }
}

impl RefType {
    /// `types`: the function types the module defined so far, by type index.
    pub(crate) fn from_wasmparser(r: wasmparser::RefType, types: &[FuncType]) -> Result<Self, String> {
        use wasmparser::{AbstractHeapType as A, HeapType as H};
        let heap_type = match r.heap_type() {
            H::Abstract { shared: false, ty: A::Func } => HeapType::Func,
            H::Abstract { shared: false, ty: A::Extern } => HeapType::Extern,
            H::Abstract { shared: false, ty: A::NoFunc } => HeapType::NoFunc,
            H::Abstract { shared: false, ty: A::NoExtern } => HeapType::NoExtern,
            H::Abstract { shared: false, ty: A::Exn } => HeapType::Exn,
            H::Abstract { shared: false, ty: A::NoExn } => HeapType::NoExn,
            H::Concrete(i) => match i.as_module_index().and_then(|i| types.get(i as usize)) {
                Some(t) => HeapType::Concrete(t.clone()),
                None => return Err(format!("unsupported reference type {r:?}")),
            },
            _ => return Err(format!("unsupported reference type {r:?}")),
        };
        Ok(RefType { nullable: r.is_nullable(), heap_type })
    }
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ValType::I32 => "i32",
            ValType::I64 => "i64",
            ValType::F32 => "f32",
            ValType::F64 => "f64",
            ValType::V128 => "v128",
            ValType::Ref(r) => return write!(f, "{r}"),
        })
    }
}

/// A function signature: parameter and result types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FuncType {
    params_results: Arc<[ValType]>,
    num_params: usize,
    /// Interpreter slots taken by the parameters and by the results.
    param_slots: u32,
    result_slots: u32,
}

impl FuncType {
    /// A function type taking `params` and returning `results`.
    pub fn new(params: impl IntoIterator<Item = ValType>, results: impl IntoIterator<Item = ValType>) -> Self {
        let mut v: Vec<ValType> = params.into_iter().collect();
        let num_params = v.len();
        v.extend(results);
        let count = |t: &[ValType]| t.iter().map(|t| t.slots() as u32).sum();
        let (param_slots, result_slots) = (count(&v[..num_params]), count(&v[num_params..]));
        FuncType { params_results: v.into(), num_params, param_slots, result_slots }
    }

    /// 64-bit interpreter slots the parameters take (a v128 takes two).
    pub(crate) fn param_slots(&self) -> usize {
        self.param_slots as usize
    }

    /// 64-bit interpreter slots the results take.
    pub(crate) fn result_slots(&self) -> usize {
        self.result_slots as usize
    }

    /// The parameter types.
    pub fn params(&self) -> &[ValType] {
        &self.params_results[..self.num_params]
    }

    /// The result types.
    pub fn results(&self) -> &[ValType] {
        &self.params_results[self.num_params..]
    }
}

impl fmt::Display for FuncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(func")?;
        if !self.params().is_empty() {
            write!(f, " (param")?;
            for p in self.params() {
                write!(f, " {p}")?;
            }
            write!(f, ")")?;
        }
        if !self.results().is_empty() {
            write!(f, " (result")?;
            for r in self.results() {
                write!(f, " {r}")?;
            }
            write!(f, ")")?;
        }
        write!(f, ")")
    }
}

/// Size bounds of a table or memory, in elements or 64 KiB pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The initial (declared) or current size.
    pub min: u64,
    /// The most it may grow to, if bounded.
    pub max: Option<u64>,
}

impl Limits {
    /// Import matching: `self` (the provided extern's current limits) fits `required`.
    pub(crate) fn matches(&self, required: &Limits) -> bool {
        if self.min < required.min {
            return false;
        }
        match (self.max, required.max) {
            (_, None) => true,
            (Some(a), Some(b)) => a <= b,
            (None, Some(_)) => false,
        }
    }
}

/// `n` with `unit` in the singular or plural, as messages say it: "1 page", "2 pages".
pub(crate) fn count(n: u64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// The type of a table: its element type and its size bounds in elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableType {
    /// `FuncRef` or `ExternRef`.
    pub element: ValType,
    /// Size bounds, in elements.
    pub limits: Limits,
    /// Whether the table is indexed with `i64` (table64, of the memory64
    /// proposal) rather than `i32`.
    pub table64: bool,
}

impl TableType {
    /// A table of `element` references (`ValType::FuncRef` or `ValType::ExternRef`)
    /// with `min` elements, growable up to `max`; as Wasmtime's `TableType::new`.
    pub fn new(element: ValType, min: u32, max: Option<u32>) -> TableType {
        TableType { element, limits: Limits { min: min as u64, max: max.map(u64::from) }, table64: false }
    }

    /// A table indexed with `i64` (the memory64 proposal's table64), of
    /// `element` references, with `min` elements, growable up to `max`; as
    /// Wasmtime's `TableType::new64`.
    pub fn new64(element: ValType, min: u64, max: Option<u64>) -> TableType {
        TableType { element, limits: Limits { min, max }, table64: true }
    }

    /// Whether the table is indexed with `i64` (table64).
    pub fn is_64(&self) -> bool {
        self.table64
    }

    /// The type of the table's indices and sizes: `I64` for a 64-bit table, else `I32`.
    pub fn index_type(&self) -> ValType {
        if self.table64 {
            ValType::I64
        } else {
            ValType::I32
        }
    }

    /// The element type.
    pub fn element(&self) -> ValType {
        self.element.clone()
    }

    /// The minimum size in elements (of a live table, as [`crate::Table::ty`]
    /// reports it: its current size).
    pub fn minimum(&self) -> u64 {
        self.limits.min
    }

    /// The maximum size in elements, if bounded.
    pub fn maximum(&self) -> Option<u64> {
        self.limits.max
    }
}

/// The type of a linear memory: its size bounds in 64 KiB pages
/// ([`crate::WASM_PAGE`] bytes each), and whether it is *shared* between
/// threads (the threads proposal; see [`crate::SharedMemory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryType {
    /// Size bounds, in pages.
    pub limits: Limits,
    /// Whether the memory is shared: usable by several threads (stores) at
    /// once, with a maximum the threads proposal requires.
    pub shared: bool,
    /// Whether the memory is indexed with `i64` (the memory64 proposal):
    /// addresses, sizes and `memory.grow`'s operand and result are `i64`.
    pub memory64: bool,
}

impl MemoryType {
    /// A memory of `min` pages, growable up to `max` pages (64 KiB each); as
    /// Wasmtime's `MemoryType::new`.
    pub fn new(min: u32, max: Option<u32>) -> MemoryType {
        MemoryType { limits: Limits { min: min as u64, max: max.map(u64::from) }, shared: false, memory64: false }
    }

    /// A 64-bit memory (the memory64 proposal: `i64` addresses) of `min`
    /// pages, growable up to `max` pages (which may exceed 4 GiB; the host
    /// reserves at most 4 GiB (65536 pages) of it, and growing past that
    /// fails, see [`crate::Config::wasm_memory64`]); as Wasmtime's `MemoryType::new64`.
    pub fn new64(min: u64, max: Option<u64>) -> MemoryType {
        MemoryType { limits: Limits { min, max }, shared: false, memory64: true }
    }

    /// A shared 64-bit memory of `min` pages, growable up to `max` pages (see
    /// [`MemoryType::shared`] and [`MemoryType::new64`]); as Wasmtime's
    /// `MemoryType::shared64`.
    pub fn shared64(min: u64, max: u64) -> MemoryType {
        MemoryType { limits: Limits { min, max: Some(max) }, shared: true, memory64: true }
    }

    /// Whether the memory is indexed with `i64` (memory64).
    pub fn is_64(&self) -> bool {
        self.memory64
    }

    /// The type of the memory's addresses and sizes: `I64` for a 64-bit memory, else `I32`.
    pub fn index_type(&self) -> ValType {
        if self.memory64 {
            ValType::I64
        } else {
            ValType::I32
        }
    }

    /// A shared memory of `min` pages, growable up to `max` pages (a shared
    /// memory must have a maximum: its whole region is reserved up front and
    /// never moves); as Wasmtime's `MemoryType::shared`.
    pub fn shared(min: u32, max: u32) -> MemoryType {
        MemoryType { limits: Limits { min: min as u64, max: Some(max as u64) }, shared: true, memory64: false }
    }

    /// The minimum size in pages (of a live memory, as [`crate::Memory::ty`]
    /// reports it: its current size).
    pub fn minimum(&self) -> u64 {
        self.limits.min
    }

    /// The maximum size in pages, if bounded.
    pub fn maximum(&self) -> Option<u64> {
        self.limits.max
    }

    /// Whether the memory is shared between threads.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Import matching (the spec's linking rule): the provided memory's current
    /// type `self` fits `required` when their limits match, both are shared
    /// or both are not, and their index types are the same.
    pub(crate) fn matches(&self, required: &MemoryType) -> bool {
        self.shared == required.shared && self.memory64 == required.memory64 && self.limits.matches(&required.limits)
    }
}

/// Whether a global can be set after its creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// Immutable (the text format's plain `i32`).
    Const,
    /// Mutable (the text format's `(mut i32)`).
    Var,
}

/// The type of a global: its value type and mutability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalType {
    /// The type of its value.
    pub content: ValType,
    /// Whether it can be set.
    pub mutability: Mutability,
}

impl GlobalType {
    /// A global holding a `content` value; as Wasmtime's `GlobalType::new`.
    pub fn new(content: ValType, mutability: Mutability) -> GlobalType {
        GlobalType { content, mutability }
    }

    /// The type of its value.
    pub fn content(&self) -> ValType {
        self.content.clone()
    }

    /// Whether it can be set.
    pub fn mutability(&self) -> Mutability {
        self.mutability
    }
}

/// The text format's notation: `i32` or `(mut i32)`.
impl fmt::Display for GlobalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mutability {
            Mutability::Const => write!(f, "{}", self.content),
            Mutability::Var => write!(f, "(mut {})", self.content),
        }
    }
}

/// The type of an importable or exportable entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExternType {
    /// A function.
    Func(FuncType),
    /// A table.
    Table(TableType),
    /// A linear memory.
    Memory(MemoryType),
    /// A global.
    Global(GlobalType),
    /// An exception tag (the exception-handling proposal).
    Tag(TagType),
}

/// The type of an exception tag: the function type whose parameters are the
/// exception's fields (it has no results); as Wasmtime's `TagType`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagType {
    ty: FuncType,
}

impl TagType {
    /// A tag whose exceptions carry values of the parameter types of `ty`
    /// (which must have no results: this is checked when a tag is made).
    pub fn new(ty: FuncType) -> TagType {
        TagType { ty }
    }

    /// The function type (its parameters are the exception's fields).
    pub fn ty(&self) -> &FuncType {
        &self.ty
    }

    /// The types of an exception's fields.
    pub fn params(&self) -> &[ValType] {
        self.ty.params()
    }
}

impl ExternType {
    /// `function`, `table`, `memory`, `global` or `tag`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ExternType::Func(_) => "function",
            ExternType::Table(_) => "table",
            ExternType::Memory(_) => "memory",
            ExternType::Global(_) => "global",
            ExternType::Tag(_) => "tag",
        }
    }
}

/// An import declared by a module.
#[derive(Debug, Clone)]
pub struct ImportType {
    /// The module name it is imported from.
    pub module: String,
    /// The import's name within that module.
    pub name: String,
    /// The type it must have.
    pub ty: ExternType,
}

/// An export declared by a module.
#[derive(Debug, Clone)]
pub struct ExportType {
    /// The export's name.
    pub name: String,
    /// The type of what is exported.
    pub ty: ExternType,
}
