//! The WebAssembly type vocabulary of the public API: value, function, table,
//! memory, global and extern types, and the import/export descriptors of a module.
//!
//! These are plain data, independent of any store or tier. Conversion from
//! `wasmparser`'s types lives here so that the rest of the crate never names them.
//!
//! The GC proposal's composite types ([`FuncType`], [`StructType`],
//! [`ArrayType`]) are shared handles: one the host makes with `new` is plain
//! structural data; one a module declares is registered by its engine
//! (`crate::type_registry`), carries its canonical id, finality and declared
//! supertype chain, and may be recursive (its body refers to handles of its
//! own recursion group, set once the whole group is registered). Registered
//! types of one engine are equal when their ids are; otherwise types compare
//! structurally. Concrete heap types name such handles
//! ([`HeapType::ConcreteFunc`], [`HeapType::ConcreteStruct`],
//! [`HeapType::ConcreteArray`], as in Wasmtime).

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

/// What a reference refers to; as Wasmtime's `HeapType`.
///
/// The abstract heap types form three hierarchies: `any ⊇ eq ⊇ {i31, struct,
/// array} ⊇ none` (GC values; every concrete struct type is below `struct`,
/// every concrete array type below `array`), `func ⊇ (concrete function types)
/// ⊇ nofunc`, and `extern ⊇ noextern`. A concrete heap type names a type an
/// engine registered ([`FuncType`], [`StructType`], [`ArrayType`]): two
/// modules that declare the same recursion group get the same types.
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
    /// A function of this type (`(ref $t)`).
    ConcreteFunc(FuncType),
    /// Any GC value (`any`): `eq`, and host values converted with `any.convert_extern`.
    Any,
    /// GC values comparable with `ref.eq` (`eq`): structs, arrays and `i31`s.
    Eq,
    /// An unboxed 31-bit integer (`i31`).
    I31,
    /// Any struct (`struct`).
    Struct,
    /// Any array (`array`).
    Array,
    /// No GC value: only null (`none`), below every type of `any`'s hierarchy.
    None,
    /// A struct of this type (`(ref $t)` of a struct type).
    ConcreteStruct(StructType),
    /// An array of this type (`(ref $t)` of an array type).
    ConcreteArray(ArrayType),
    /// Any exception (`exn`, the exception-handling proposal).
    Exn,
    /// No exception: only null (`noexn`).
    NoExn,
}

impl HeapType {
    /// Whether a reference to `self` is a reference to `other` (subtyping).
    pub fn matches(&self, other: &HeapType) -> bool {
        use HeapType as H;
        match (self, other) {
            (H::ConcreteFunc(a), H::ConcreteFunc(b)) => a.matches(b),
            (H::ConcreteStruct(a), H::ConcreteStruct(b)) => a.matches(b),
            (H::ConcreteArray(a), H::ConcreteArray(b)) => a.matches(b),
            (a, b) if a == b => true,
            (H::ConcreteFunc(_) | H::NoFunc, H::Func) => true,
            (H::NoFunc, H::ConcreteFunc(_)) => true,
            (H::NoExtern, H::Extern) => true,
            (H::None, b) => b.top() == H::Any,
            (H::Eq | H::I31 | H::Struct | H::Array | H::ConcreteStruct(_) | H::ConcreteArray(_), H::Any) => true,
            (H::I31 | H::Struct | H::Array | H::ConcreteStruct(_) | H::ConcreteArray(_), H::Eq) => true,
            (H::ConcreteStruct(_), H::Struct) => true,
            (H::ConcreteArray(_), H::Array) => true,
            (H::NoExn, H::Exn) => true,
            _ => false,
        }
    }

    /// Whether its references are function references (at run time a
    /// function or null).
    pub fn is_func(&self) -> bool {
        matches!(self, HeapType::Func | HeapType::NoFunc | HeapType::ConcreteFunc(_))
    }

    /// Whether its references are host values (`extern`, `noextern`).
    pub fn is_extern(&self) -> bool {
        matches!(self, HeapType::Extern | HeapType::NoExtern)
    }

    /// Whether its references are exception references (`exn`, `noexn`).
    pub fn is_exn(&self) -> bool {
        matches!(self, HeapType::Exn | HeapType::NoExn)
    }

    /// The most general heap type of its hierarchy: `func`, `extern`, `exn` or `any`.
    pub fn top(&self) -> HeapType {
        if self.is_func() {
            HeapType::Func
        } else if self.is_exn() {
            HeapType::Exn
        } else if self.is_extern() {
            HeapType::Extern
        } else {
            HeapType::Any
        }
    }

    /// The least heap type of its hierarchy: `nofunc`, `noextern`, `noexn` or `none`.
    pub fn bottom(&self) -> HeapType {
        match self.top() {
            HeapType::Func => HeapType::NoFunc,
            HeapType::Extern => HeapType::NoExtern,
            HeapType::Exn => HeapType::NoExn,
            _ => HeapType::None,
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
            HeapType::Any => f.write_str("any"),
            HeapType::Eq => f.write_str("eq"),
            HeapType::I31 => f.write_str("i31"),
            HeapType::Struct => f.write_str("struct"),
            HeapType::Array => f.write_str("array"),
            HeapType::None => f.write_str("none"),
            HeapType::ConcreteFunc(t) => display_nested(&t.reg, f, |f| write!(f, "{t}")),
            HeapType::ConcreteStruct(t) => display_nested(&t.reg, f, |f| write!(f, "{t}")),
            HeapType::ConcreteArray(t) => display_nested(&t.reg, f, |f| write!(f, "{t}")),
            HeapType::Exn => f.write_str("exn"),
            HeapType::NoExn => f.write_str("noexn"),
        }
    }
}

impl RefType {
    /// `funcref`: `(ref null func)`.
    pub const FUNCREF: RefType = RefType { nullable: true, heap_type: HeapType::Func };
    /// `externref`: `(ref null extern)`.
    pub const EXTERNREF: RefType = RefType { nullable: true, heap_type: HeapType::Extern };
    /// `anyref`: `(ref null any)`.
    pub const ANYREF: RefType = RefType { nullable: true, heap_type: HeapType::Any };
    /// `eqref`: `(ref null eq)`.
    pub const EQREF: RefType = RefType { nullable: true, heap_type: HeapType::Eq };
    /// `i31ref`: `(ref null i31)`.
    pub const I31REF: RefType = RefType { nullable: true, heap_type: HeapType::I31 };
    /// `structref`: `(ref null struct)`.
    pub const STRUCTREF: RefType = RefType { nullable: true, heap_type: HeapType::Struct };
    /// `arrayref`: `(ref null array)`.
    pub const ARRAYREF: RefType = RefType { nullable: true, heap_type: HeapType::Array };
    /// `nullref`: `(ref null none)`.
    pub const NULLREF: RefType = RefType { nullable: true, heap_type: HeapType::None };
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
            (true, HeapType::Any) => f.write_str("anyref"),
            (true, HeapType::Eq) => f.write_str("eqref"),
            (true, HeapType::I31) => f.write_str("i31ref"),
            (true, HeapType::Struct) => f.write_str("structref"),
            (true, HeapType::Array) => f.write_str("arrayref"),
            (true, HeapType::None) => f.write_str("nullref"),
            (true, HeapType::NoFunc) => f.write_str("nullfuncref"),
            (true, HeapType::NoExtern) => f.write_str("nullexternref"),
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
    /// `anyref`, a nullable reference to any GC value.
    pub const ANYREF: ValType = ValType::Ref(RefType::ANYREF);
    /// `eqref`, a nullable reference to a GC value comparable with `ref.eq`.
    pub const EQREF: ValType = ValType::Ref(RefType::EQREF);
    /// `i31ref`, a nullable unboxed 31-bit integer.
    pub const I31REF: ValType = ValType::Ref(RefType::I31REF);
    /// `structref`, a nullable reference to any struct.
    pub const STRUCTREF: ValType = ValType::Ref(RefType::STRUCTREF);
    /// `arrayref`, a nullable reference to any array.
    pub const ARRAYREF: ValType = ValType::Ref(RefType::ARRAYREF);
    /// `nullref`, only null (of `any`'s hierarchy).
    pub const NULLREF: ValType = ValType::Ref(RefType::NULLREF);
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

    /// Whether its values may be references into the store's arena of host
    /// values and exceptions (null or not): `extern` and `exn` references, and
    /// `any`'s hierarchy (a host value converted with `any.convert_extern`),
    /// which the arena's collector scans (see `runtime::gc`).
    pub fn is_extern_ref(&self) -> bool {
        matches!(self, ValType::Ref(r) if !r.heap_type.is_func())
    }

    /// Whether its values are GC references of `any`'s hierarchy (null or not).
    pub fn is_any_ref(&self) -> bool {
        matches!(self, ValType::Ref(r) if r.heap_type.top() == HeapType::Any)
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

    /// `types`: the concrete heap type of each type index the module
    /// defined so far (or of its recursion group being defined).
    pub(crate) fn from_wasmparser(ty: wasmparser::ValType, types: &[HeapType]) -> Result<Self, String> {
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
    /// `types`: the concrete heap type of each type index the module
    /// defined so far (or of its recursion group being defined).
    pub(crate) fn from_wasmparser(r: wasmparser::RefType, types: &[HeapType]) -> Result<Self, String> {
        use wasmparser::{AbstractHeapType as A, HeapType as H};
        let heap_type = match r.heap_type() {
            H::Abstract { shared: false, ty } => match ty {
                A::Func => HeapType::Func,
                A::Extern => HeapType::Extern,
                A::NoFunc => HeapType::NoFunc,
                A::NoExtern => HeapType::NoExtern,
                A::Any => HeapType::Any,
                A::Eq => HeapType::Eq,
                A::I31 => HeapType::I31,
                A::Struct => HeapType::Struct,
                A::Array => HeapType::Array,
                A::None => HeapType::None,
                A::Exn => HeapType::Exn,
                A::NoExn => HeapType::NoExn,
                _ => return Err(format!("unsupported reference type {r:?}")),
            },
            H::Concrete(i) => match i.as_module_index().and_then(|i| types.get(i as usize)) {
                Some(t) => t.clone(),
                Option::None => return Err(format!("unsupported reference type {r:?}")),
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

/// Where an engine registered a type (see `crate::type_registry`): its
/// canonical id, and what subtyping needs without the registry.
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    /// Which registry (engine) the id is of.
    pub(crate) registry: u64,
    /// The engine-wide canonical id.
    pub(crate) id: u32,
    /// The declared supertype chain, root first, ending with `id` itself.
    pub(crate) ancestors: Arc<[u32]>,
    /// Whether the type is final (no subtypes may declare it as supertype).
    pub(crate) is_final: bool,
    /// Whether a type the host makes with the same body is this type: the
    /// type is a recursion group of its own, final, without a supertype and
    /// without a reference to itself (so its canonical key is the one the
    /// host's type gets).
    pub(crate) plain: bool,
}

impl Registered {
    /// Whether the type is a declared subtype of (or is) `other`.
    fn matches(&self, other: &Registered) -> bool {
        self.registry == other.registry && self.ancestors.get(other.ancestors.len() - 1) == Some(&other.id)
    }
}

/// The equality of two possibly registered types with bodies `a` and `b`:
/// registered in the same engine, by canonical id; else structurally (a type
/// the host made with `new` is final, without a supertype).
fn same_type<T: PartialEq>(
    a: (&Option<Registered>, &Arc<std::sync::OnceLock<T>>),
    b: (&Option<Registered>, &Arc<std::sync::OnceLock<T>>),
) -> bool {
    if Arc::ptr_eq(a.1, b.1) {
        return true;
    }
    let plain = |r: &Option<Registered>| r.as_ref().is_none_or(|r| r.plain);
    match (a.0, b.0) {
        (Some(x), Some(y)) if x.registry == y.registry => x.id == y.id,
        (Some(_), Some(_)) => false,
        _ => plain(a.0) && plain(b.0) && a.1.get() == b.1.get(),
    }
}

/// Displays a concrete type that appears inside another type: a registered
/// one (declared by a module) by its canonical id, so that what is printed is
/// one level deep however a module nests or recurses its types (a chain of
/// types each naming the previous one twice would otherwise print
/// exponentially); one the host made, expanded.
fn display_nested(
    reg: &Option<Registered>,
    f: &mut fmt::Formatter<'_>,
    expand: impl FnOnce(&mut fmt::Formatter<'_>) -> fmt::Result,
) -> fmt::Result {
    match reg {
        Some(r) => write!(f, "(type {})", r.id),
        None => expand(f),
    }
}

/// A function signature: parameter and result types; as Wasmtime's
/// `FuncType`. Made by [`FuncType::new`], or registered by an engine when a
/// module declares it (then it has a canonical id, and may be recursive or a
/// declared subtype of another function type).
#[derive(Clone)]
pub struct FuncType {
    /// Set once: when made, or (registered) once its whole recursion group is.
    body: Arc<std::sync::OnceLock<FuncBody>>,
    pub(crate) reg: Option<Registered>,
}

#[derive(Debug, PartialEq)]
struct FuncBody {
    params_results: Arc<[ValType]>,
    num_params: usize,
    /// Interpreter slots taken by the parameters and by the results.
    param_slots: u32,
    result_slots: u32,
}

impl PartialEq for FuncType {
    fn eq(&self, other: &FuncType) -> bool {
        same_type((&self.reg, &self.body), (&other.reg, &other.body))
    }
}

impl Eq for FuncType {}

impl std::hash::Hash for FuncType {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Shallow (consistent with `eq`, and finite for recursive types).
        self.params().len().hash(state);
        self.results().len().hash(state);
    }
}

impl FuncType {
    /// A function type taking `params` and returning `results`.
    pub fn new(params: impl IntoIterator<Item = ValType>, results: impl IntoIterator<Item = ValType>) -> Self {
        FuncType { body: Arc::new(std::sync::OnceLock::from(FuncType::body_of(params, results))), reg: None }
    }

    fn body_of(params: impl IntoIterator<Item = ValType>, results: impl IntoIterator<Item = ValType>) -> FuncBody {
        let mut v: Vec<ValType> = params.into_iter().collect();
        let num_params = v.len();
        v.extend(results);
        let count = |t: &[ValType]| t.iter().map(|t| t.slots() as u32).sum();
        let (param_slots, result_slots) = (count(&v[..num_params]), count(&v[num_params..]));
        FuncBody { params_results: v.into(), num_params, param_slots, result_slots }
    }

    /// A registered type whose body is set later ([`FuncType::set_body`]).
    pub(crate) fn registered(reg: Registered) -> FuncType {
        FuncType { body: Arc::new(std::sync::OnceLock::new()), reg: Some(reg) }
    }

    /// Sets a registered type's body (once, while registering its group).
    pub(crate) fn set_body(&self, params: Vec<ValType>, results: Vec<ValType>) {
        let _ = self.body.set(FuncType::body_of(params, results));
    }

    fn body(&self) -> &FuncBody {
        self.body.get().expect("a registered type's body is set before the registry publishes it")
    }

    /// 64-bit interpreter slots the parameters take (a v128 takes two).
    pub(crate) fn param_slots(&self) -> usize {
        self.body().param_slots as usize
    }

    /// 64-bit interpreter slots the results take.
    pub(crate) fn result_slots(&self) -> usize {
        self.body().result_slots as usize
    }

    /// The parameter types.
    pub fn params(&self) -> &[ValType] {
        let b = self.body();
        &b.params_results[..b.num_params]
    }

    /// The result types.
    pub fn results(&self) -> &[ValType] {
        let b = self.body();
        &b.params_results[b.num_params..]
    }

    /// Subtyping: the same type, or (registered) a declared subtype of `other`.
    pub fn matches(&self, other: &FuncType) -> bool {
        self == other || matches!((&self.reg, &other.reg), (Some(a), Some(b)) if a.matches(b))
    }

    /// Whether no type may declare it as its supertype.
    pub fn is_final(&self) -> bool {
        self.reg.as_ref().is_none_or(|r| r.is_final)
    }
}

/// Printed as its text form (nested registered types by canonical id): a
/// derived `Debug` would recurse forever through a recursive type.
impl fmt::Debug for FuncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
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

/// How a struct field or array element is stored: a packed integer or a value;
/// as Wasmtime's `StorageType`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StorageType {
    /// An 8-bit integer (read with sign or zero extension to `i32`).
    I8,
    /// A 16-bit integer (read with sign or zero extension to `i32`).
    I16,
    /// A value of this type.
    ValType(ValType),
}

impl StorageType {
    /// The type of the values read from and written to it (`i32` for packed ones).
    pub fn unpack(&self) -> ValType {
        match self {
            StorageType::I8 | StorageType::I16 => ValType::I32,
            StorageType::ValType(t) => t.clone(),
        }
    }

    /// Bytes it takes in an object.
    pub fn byte_size(&self) -> u32 {
        match self {
            StorageType::I8 => 1,
            StorageType::I16 => 2,
            StorageType::ValType(ValType::V128) => 16,
            StorageType::ValType(ValType::I32 | ValType::F32) => 4,
            StorageType::ValType(_) => 8,
        }
    }

    /// Subtyping of fields: packed types match themselves, values by [`ValType::matches`].
    pub fn matches(&self, other: &StorageType) -> bool {
        match (self, other) {
            (StorageType::ValType(a), StorageType::ValType(b)) => a.matches(b),
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for StorageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageType::I8 => f.write_str("i8"),
            StorageType::I16 => f.write_str("i16"),
            StorageType::ValType(t) => write!(f, "{t}"),
        }
    }
}

/// A struct field or the element of an array: its storage and whether it can
/// be set; as Wasmtime's `FieldType`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldType {
    /// Whether it can be set after the object is made.
    pub mutability: Mutability,
    /// How it is stored.
    pub element: StorageType,
}

impl FieldType {
    /// A field of `element` storage.
    pub fn new(mutability: Mutability, element: StorageType) -> FieldType {
        FieldType { mutability, element }
    }

    /// Whether it can be set.
    pub fn mutability(&self) -> Mutability {
        self.mutability
    }

    /// How it is stored.
    pub fn element_type(&self) -> &StorageType {
        &self.element
    }

    /// Field subtyping: an immutable field is covariant, a mutable one invariant.
    pub fn matches(&self, other: &FieldType) -> bool {
        self.mutability == other.mutability
            && match self.mutability {
                Mutability::Const => self.element.matches(&other.element),
                Mutability::Var => self.element == other.element,
            }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mutability {
            Mutability::Const => write!(f, "{}", self.element),
            Mutability::Var => write!(f, "(mut {})", self.element),
        }
    }
}

/// A struct type: its fields; as Wasmtime's `StructType`. Made by
/// [`StructType::new`], or registered by an engine when a module declares it.
#[derive(Clone)]
pub struct StructType {
    body: Arc<std::sync::OnceLock<Arc<[FieldType]>>>,
    pub(crate) reg: Option<Registered>,
}

impl StructType {
    /// A struct type of `fields`.
    pub fn new(fields: impl IntoIterator<Item = FieldType>) -> StructType {
        StructType { body: Arc::new(std::sync::OnceLock::from(fields.into_iter().collect::<Arc<[_]>>())), reg: None }
    }

    /// A registered type whose fields are set later ([`StructType::set_fields`]).
    pub(crate) fn registered(reg: Registered) -> StructType {
        StructType { body: Arc::new(std::sync::OnceLock::new()), reg: Some(reg) }
    }

    /// Sets a registered type's fields (once, while registering its group).
    pub(crate) fn set_fields(&self, fields: Vec<FieldType>) {
        let _ = self.body.set(fields.into());
    }

    /// The fields, in order.
    pub fn fields(&self) -> &[FieldType] {
        self.body.get().expect("a registered type's body is set before the registry publishes it")
    }

    /// Subtyping: the same type, or (registered) a declared subtype of `other`.
    pub fn matches(&self, other: &StructType) -> bool {
        self == other || matches!((&self.reg, &other.reg), (Some(a), Some(b)) if a.matches(b))
    }

    /// Whether no type may declare it as its supertype.
    pub fn is_final(&self) -> bool {
        self.reg.as_ref().is_none_or(|r| r.is_final)
    }
}

impl PartialEq for StructType {
    fn eq(&self, other: &StructType) -> bool {
        same_type((&self.reg, &self.body), (&other.reg, &other.body))
    }
}

impl Eq for StructType {}

impl std::hash::Hash for StructType {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.fields().len().hash(state);
    }
}

/// Printed as its text form (nested registered types by canonical id): a
/// derived `Debug` would recurse forever through a recursive type.
impl fmt::Debug for StructType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for StructType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(struct")?;
        for field in self.fields() {
            write!(f, " (field {field})")?;
        }
        write!(f, ")")
    }
}

/// An array type: its element; as Wasmtime's `ArrayType`. Made by
/// [`ArrayType::new`], or registered by an engine when a module declares it.
#[derive(Clone)]
pub struct ArrayType {
    body: Arc<std::sync::OnceLock<FieldType>>,
    pub(crate) reg: Option<Registered>,
}

impl ArrayType {
    /// An array type of `field` elements.
    pub fn new(field: FieldType) -> ArrayType {
        ArrayType { body: Arc::new(std::sync::OnceLock::from(field)), reg: None }
    }

    /// A registered type whose element is set later ([`ArrayType::set_field`]).
    pub(crate) fn registered(reg: Registered) -> ArrayType {
        ArrayType { body: Arc::new(std::sync::OnceLock::new()), reg: Some(reg) }
    }

    /// Sets a registered type's element (once, while registering its group).
    pub(crate) fn set_field(&self, field: FieldType) {
        let _ = self.body.set(field);
    }

    /// The type of its elements.
    pub fn field_type(&self) -> &FieldType {
        self.body.get().expect("a registered type's body is set before the registry publishes it")
    }

    /// Subtyping: the same type, or (registered) a declared subtype of `other`.
    pub fn matches(&self, other: &ArrayType) -> bool {
        self == other || matches!((&self.reg, &other.reg), (Some(a), Some(b)) if a.matches(b))
    }

    /// Whether no type may declare it as its supertype.
    pub fn is_final(&self) -> bool {
        self.reg.as_ref().is_none_or(|r| r.is_final)
    }
}

impl PartialEq for ArrayType {
    fn eq(&self, other: &ArrayType) -> bool {
        same_type((&self.reg, &self.body), (&other.reg, &other.body))
    }
}

impl Eq for ArrayType {}

impl std::hash::Hash for ArrayType {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.field_type().mutability.hash(state);
    }
}

/// Printed as its text form (nested registered types by canonical id): a
/// derived `Debug` would recurse forever through a recursive type.
impl fmt::Debug for ArrayType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ArrayType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(array {})", self.field_type())
    }
}

/// A module type's composite type (what a type index of the type section
/// declares): a function, struct or array type, registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CompositeType {
    Func(FuncType),
    Struct(StructType),
    Array(ArrayType),
}

impl CompositeType {
    /// The registration: canonical id, supertype chain, finality.
    pub(crate) fn registered(&self) -> &Registered {
        let reg = match self {
            CompositeType::Func(t) => &t.reg,
            CompositeType::Struct(t) => &t.reg,
            CompositeType::Array(t) => &t.reg,
        };
        reg.as_ref().expect("a module's types are registered")
    }

    /// The concrete heap type it is.
    pub(crate) fn heap_type(&self) -> HeapType {
        match self {
            CompositeType::Func(t) => HeapType::ConcreteFunc(t.clone()),
            CompositeType::Struct(t) => HeapType::ConcreteStruct(t.clone()),
            CompositeType::Array(t) => HeapType::ConcreteArray(t.clone()),
        }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
