//! The engine-wide type registry: canonical ids for the types modules declare
//! and host functions use, and the declared subtype relation over them.
//!
//! Types are canonicalised by recursion group, iso-recursively (the GC
//! proposal's type canonicalisation): a group's key is its types with every
//! reference to a type outside the group replaced by that type's canonical id
//! and every reference inside it by its index in the group, so two modules
//! declaring the same group get the same ids, and `call_indirect` compares ids.
//! A WebAssembly 2.0 function type is a group of one final type without a
//! supertype, so its id is what it always was: one per distinct signature.
//!
//! Owns only type identity; it must not know about stores, values or code.
//! Registered types are never freed (an engine's types live as long as it).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::types::*;

/// A reference to a heap type inside a group's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyRef {
    /// An abstract heap type (its `Display` name).
    Abstract(&'static str),
    /// A type outside the group, by canonical id.
    Canon(u32),
    /// A type inside the group, by its index in the group.
    Rec(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyVal {
    Num(&'static str),
    Ref { nullable: bool, heap: KeyRef },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyStorage {
    I8,
    I16,
    Val(KeyVal),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyComposite {
    Func(Box<[KeyVal]>, Box<[KeyVal]>),
    Struct(Box<[(bool, KeyStorage)]>),
    Array(bool, KeyStorage),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct KeySub {
    is_final: bool,
    supertype: Option<KeyRef>,
    composite: KeyComposite,
}

impl KeySub {
    /// Whether the type refers to a type of its own recursion group.
    fn mentions_group(&self) -> bool {
        let val = |v: &KeyVal| matches!(v, KeyVal::Ref { heap: KeyRef::Rec(_), .. });
        let storage = |s: &KeyStorage| matches!(s, KeyStorage::Val(v) if val(v));
        matches!(self.supertype, Some(KeyRef::Rec(_)))
            || match &self.composite {
                KeyComposite::Func(params, results) => params.iter().chain(results.iter()).any(val),
                KeyComposite::Struct(fields) => fields.iter().any(|(_, s)| storage(s)),
                KeyComposite::Array(_, s) => storage(s),
            }
    }
}

/// Distinguishes registries, so that ids of two engines are never confused.
static NEXT_REGISTRY: AtomicU64 = AtomicU64::new(1);

/// One engine's registered types.
pub(crate) struct TypeRegistry {
    id: u64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The first canonical id of each registered group.
    groups: HashMap<Box<[KeySub]>, u32>,
    /// Every registered type, by canonical id.
    types: Vec<CompositeType>,
}

impl Default for TypeRegistry {
    fn default() -> Self {
        TypeRegistry { id: NEXT_REGISTRY.fetch_add(1, Ordering::Relaxed), inner: Mutex::default() }
    }
}

fn abstract_name(h: &HeapType) -> Option<&'static str> {
    Some(match h {
        HeapType::Func => "func",
        HeapType::Extern => "extern",
        HeapType::NoFunc => "nofunc",
        HeapType::NoExtern => "noextern",
        HeapType::Any => "any",
        HeapType::Eq => "eq",
        HeapType::I31 => "i31",
        HeapType::Struct => "struct",
        HeapType::Array => "array",
        HeapType::None => "none",
        HeapType::Exn => "exn",
        HeapType::NoExn => "noexn",
        _ => return None,
    })
}

fn num_name(t: &ValType) -> &'static str {
    match t {
        ValType::I32 => "i32",
        ValType::I64 => "i64",
        ValType::F32 => "f32",
        ValType::F64 => "f64",
        _ => "v128",
    }
}

impl TypeRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the type of canonical id `id` is a struct type (else an array
    /// or function type).
    pub(crate) fn is_struct(&self, id: u32) -> bool {
        matches!(self.lock().types.get(id as usize), Some(CompositeType::Struct(_)))
    }

    /// Whether the type of canonical id `sub` is `sup` or declares it as an
    /// (indirect) supertype.
    pub(crate) fn is_subtype(&self, sub: u32, sup: u32) -> bool {
        if sub == sup {
            return true;
        }
        let inner = self.lock();
        let (Some(a), Some(b)) = (inner.types.get(sub as usize), inner.types.get(sup as usize)) else {
            return false;
        };
        let (a, b) = (a.registered(), b.registered());
        a.ancestors.get(b.ancestors.len() - 1) == Some(&sup)
    }

    /// The canonical id of a function type the host made (or one registered
    /// already): a group of one final type without a supertype.
    pub(crate) fn register_func(&self, ty: &FuncType) -> u32 {
        if let Some(r) = ty.reg.as_ref().filter(|r| r.registry == self.id) {
            return r.id;
        }
        let params = ty.params().iter().map(|t| self.key_val(t)).collect();
        let results = ty.results().iter().map(|t| self.key_val(t)).collect();
        let key = KeySub { is_final: true, supertype: None, composite: KeyComposite::Func(params, results) };
        let mut inner = self.lock();
        if let Some(&id) = inner.groups.get(std::slice::from_ref(&key)) {
            return id;
        }
        let id = inner.types.len() as u32;
        let reg = Registered { registry: self.id, id, ancestors: Arc::from([id]), is_final: true, plain: true };
        let registered = FuncType::registered(reg);
        registered.set_body(ty.params().to_vec(), ty.results().to_vec());
        inner.types.push(CompositeType::Func(registered));
        inner.groups.insert(Box::new([key]), id);
        id
    }

    /// The key of a host value type (concrete types in it are registered first).
    fn key_val(&self, t: &ValType) -> KeyVal {
        match t {
            ValType::Ref(r) => {
                let heap = match abstract_name(r.heap_type()) {
                    Some(name) => KeyRef::Abstract(name),
                    None => KeyRef::Canon(match r.heap_type() {
                        HeapType::ConcreteFunc(f) => self.register_func(f),
                        HeapType::ConcreteStruct(s) => self.register_host(CompositeType::Struct(s.clone())),
                        HeapType::ConcreteArray(a) => self.register_host(CompositeType::Array(a.clone())),
                        _ => unreachable!("abstract heap types have a name"),
                    }),
                };
                KeyVal::Ref { nullable: r.is_nullable(), heap }
            }
            t => KeyVal::Num(num_name(t)),
        }
    }

    fn key_storage(&self, s: &StorageType) -> KeyStorage {
        match s {
            StorageType::I8 => KeyStorage::I8,
            StorageType::I16 => KeyStorage::I16,
            StorageType::ValType(t) => KeyStorage::Val(self.key_val(t)),
        }
    }

    /// The canonical id of a struct or array type the host made (or one
    /// registered already): a group of one final type without a supertype.
    pub(crate) fn register_host(&self, ty: CompositeType) -> u32 {
        let composite = match &ty {
            CompositeType::Func(f) => return self.register_func(f),
            CompositeType::Struct(s) => {
                if let Some(r) = s.reg.as_ref().filter(|r| r.registry == self.id) {
                    return r.id;
                }
                let fields = s
                    .fields()
                    .iter()
                    .map(|f| (f.mutability == Mutability::Var, self.key_storage(&f.element)))
                    .collect();
                KeyComposite::Struct(fields)
            }
            CompositeType::Array(a) => {
                if let Some(r) = a.reg.as_ref().filter(|r| r.registry == self.id) {
                    return r.id;
                }
                let f = a.field_type();
                KeyComposite::Array(f.mutability == Mutability::Var, self.key_storage(&f.element))
            }
        };
        let key = KeySub { is_final: true, supertype: None, composite };
        let mut inner = self.lock();
        if let Some(&id) = inner.groups.get(std::slice::from_ref(&key)) {
            return id;
        }
        let id = inner.types.len() as u32;
        let reg = Registered { registry: self.id, id, ancestors: Arc::from([id]), is_final: true, plain: true };
        let registered = match ty {
            CompositeType::Struct(s) => {
                let t = StructType::registered(reg);
                t.set_fields(s.fields().to_vec());
                CompositeType::Struct(t)
            }
            CompositeType::Array(a) => {
                let t = ArrayType::registered(reg);
                t.set_field(a.field_type().clone());
                CompositeType::Array(t)
            }
            CompositeType::Func(_) => unreachable!("registered above"),
        };
        inner.types.push(registered);
        inner.groups.insert(Box::new([key]), id);
        id
    }

    /// Registers a module's recursion group `group`, whose first type has index
    /// `first` in the module; `earlier` are the module's types before it.
    /// Returns the group's types, registered (the same ones as an equivalent
    /// group registered before).
    pub(crate) fn register_group(
        &self,
        group: &[wasmparser::SubType],
        earlier: &[CompositeType],
    ) -> Result<Vec<CompositeType>, String> {
        let first = earlier.len() as u32;
        let key_ref = |h: wasmparser::HeapType| -> Result<KeyRef, String> {
            match h {
                wasmparser::HeapType::Concrete(i) => {
                    let i = i.as_module_index().ok_or("a type index of the module")?;
                    if i >= first {
                        Ok(KeyRef::Rec(i - first))
                    } else {
                        let t = earlier.get(i as usize).ok_or("unknown type")?;
                        Ok(KeyRef::Canon(t.registered().id))
                    }
                }
                wasmparser::HeapType::Abstract { shared: false, ty } => {
                    let r = wasmparser::RefType::new(true, wasmparser::HeapType::Abstract { shared: false, ty })
                        .ok_or("abstract heap type")?;
                    let public = RefType::from_wasmparser(r, &[])?;
                    Ok(KeyRef::Abstract(abstract_name(public.heap_type()).ok_or("abstract heap type")?))
                }
                h => Err(format!("unsupported heap type {h:?}")),
            }
        };
        let key_val = |t: &wasmparser::ValType| -> Result<KeyVal, String> {
            Ok(match t {
                wasmparser::ValType::Ref(r) => KeyVal::Ref { nullable: r.is_nullable(), heap: key_ref(r.heap_type())? },
                t => KeyVal::Num(num_name(&ValType::from_wasmparser(*t, &[])?)),
            })
        };
        let key_storage = |t: &wasmparser::StorageType| -> Result<KeyStorage, String> {
            Ok(match t {
                wasmparser::StorageType::I8 => KeyStorage::I8,
                wasmparser::StorageType::I16 => KeyStorage::I16,
                wasmparser::StorageType::Val(v) => KeyStorage::Val(key_val(v)?),
            })
        };
        let mut key = Vec::with_capacity(group.len());
        for sub in group {
            let c = &sub.composite_type;
            if c.shared || c.describes_idx.is_some() || c.descriptor_idx.is_some() {
                return Err("unsupported type: shared or custom-descriptor type".into());
            }
            let composite = match &c.inner {
                wasmparser::CompositeInnerType::Func(f) => {
                    let params = f.params().iter().map(&key_val).collect::<Result<_, _>>()?;
                    let results = f.results().iter().map(&key_val).collect::<Result<_, _>>()?;
                    KeyComposite::Func(params, results)
                }
                wasmparser::CompositeInnerType::Struct(s) => KeyComposite::Struct(
                    s.fields
                        .iter()
                        .map(|f| Ok((f.mutable, key_storage(&f.element_type)?)))
                        .collect::<Result<_, String>>()?,
                ),
                wasmparser::CompositeInnerType::Array(a) => {
                    KeyComposite::Array(a.0.mutable, key_storage(&a.0.element_type)?)
                }
                other => return Err(format!("unsupported type {other:?}")),
            };
            let supertype = match sub.supertype_idxs.first() {
                Some(i) => Some(key_ref(wasmparser::HeapType::Concrete(i.unpack()))?),
                None => None,
            };
            key.push(KeySub { is_final: sub.is_final, supertype, composite });
        }
        let mut inner = self.lock();
        if let Some(&id) = inner.groups.get(key.as_slice()) {
            return Ok(inner.types[id as usize..id as usize + group.len()].to_vec());
        }
        let base = inner.types.len() as u32;
        let mut new: Vec<CompositeType> = Vec::with_capacity(group.len());
        for (k, (sub, key)) in group.iter().zip(&key).enumerate() {
            let id = base + k as u32;
            let mut ancestors = match &key.supertype {
                Some(KeyRef::Canon(c)) => inner.types[*c as usize].registered().ancestors.to_vec(),
                Some(KeyRef::Rec(r)) => {
                    new.get(*r as usize).ok_or("supertype after its subtype")?.registered().ancestors.to_vec()
                }
                _ => Vec::new(),
            };
            ancestors.push(id);
            let plain = group.len() == 1 && sub.is_final && key.supertype.is_none() && !key.mentions_group();
            let reg = Registered { registry: self.id, id, ancestors: ancestors.into(), is_final: sub.is_final, plain };
            new.push(match &sub.composite_type.inner {
                wasmparser::CompositeInnerType::Func(_) => CompositeType::Func(FuncType::registered(reg)),
                wasmparser::CompositeInnerType::Struct(_) => CompositeType::Struct(StructType::registered(reg)),
                _ => CompositeType::Array(ArrayType::registered(reg)),
            });
        }
        // The bodies, now that every type of the group has a handle.
        let heap: Vec<HeapType> = earlier.iter().chain(&new).map(CompositeType::heap_type).collect();
        let val = |t: &wasmparser::ValType| ValType::from_wasmparser(*t, &heap);
        let storage = |t: &wasmparser::StorageType| -> Result<StorageType, String> {
            Ok(match t {
                wasmparser::StorageType::I8 => StorageType::I8,
                wasmparser::StorageType::I16 => StorageType::I16,
                wasmparser::StorageType::Val(v) => StorageType::ValType(val(v)?),
            })
        };
        let field = |f: &wasmparser::FieldType| -> Result<FieldType, String> {
            let mutability = if f.mutable { Mutability::Var } else { Mutability::Const };
            Ok(FieldType::new(mutability, storage(&f.element_type)?))
        };
        for (sub, t) in group.iter().zip(&new) {
            match (&sub.composite_type.inner, t) {
                (wasmparser::CompositeInnerType::Func(f), CompositeType::Func(t)) => {
                    let params = f.params().iter().map(val).collect::<Result<_, _>>()?;
                    let results = f.results().iter().map(val).collect::<Result<_, _>>()?;
                    t.set_body(params, results);
                }
                (wasmparser::CompositeInnerType::Struct(s), CompositeType::Struct(t)) => {
                    t.set_fields(s.fields.iter().map(field).collect::<Result<_, _>>()?);
                }
                (wasmparser::CompositeInnerType::Array(a), CompositeType::Array(t)) => t.set_field(field(&a.0)?),
                _ => unreachable!("handles made from the same composite types"),
            }
        }
        inner.types.extend(new.iter().cloned());
        inner.groups.insert(key.into(), base);
        Ok(new)
    }
}
