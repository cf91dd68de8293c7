//! Handles to memories, tables and globals, and the [`Extern`] sum of all
//! importable things. Each handle is a store index checked against the store id.

use crate::error::Error;
use crate::runtime::shared::SharedMemory;
use crate::runtime::store::{AsContext, AsContextMut, GlobalEntity};
use crate::runtime::values::Val;
use crate::types::*;
use crate::Func;

macro_rules! handle {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name {
            pub(crate) store: u64,
            pub(crate) index: u32,
        }
        impl $name {
            /// The index for accessors that cannot return an error: using a handle
            /// with another store is a programming error, reported like Wasmtime does.
            fn index_in(&self, store_id: u64) -> usize {
                assert_eq!(
                    self.store, store_id,
                    concat!(stringify!($name), " belongs to a different store than the one it was used with")
                );
                self.index as usize
            }

            fn checked(&self, store_id: u64) -> Result<usize, Error> {
                if self.store != store_id {
                    return Err(Error::usage(concat!(
                        stringify!($name),
                        " belongs to a different store than the one it was used with"
                    )));
                }
                Ok(self.index as usize)
            }
        }
    };
}
handle!(
    Memory,
    "A linear memory in a store: a handle, valid with that store only. Never a \
     shared memory: those are [`SharedMemory`]s, not tied to a store (as in Wasmtime)."
);
handle!(Table, "A table of references in a store: a handle, valid with that store only.");
handle!(Global, "A global in a store: a handle, valid with that store only.");

impl Memory {
    /// Creates a memory owned by the host. Errors on a shared type: create a
    /// [`SharedMemory`] instead.
    pub fn new(mut store: impl AsContextMut, ty: MemoryType) -> Result<Memory, Error> {
        if ty.shared {
            return Err(Error::usage("a shared memory is created with `SharedMemory::new`, not `Memory::new`"));
        }
        let (s, limiter) = store.as_context_mut().inner_and_limiter();
        let index = s.new_memory(limiter, ty, None)?;
        Ok(Memory { store: s.id, index })
    }

    /// The memory's type, its minimum being its current size in pages.
    ///
    /// # Panics
    ///
    /// When the memory belongs to a different store.
    pub fn ty(&self, store: impl AsContext) -> MemoryType {
        let s = &store.as_context().inner;
        let m = &s.memories[self.index_in(s.id)];
        MemoryType {
            limits: Limits { min: m.size_pages(), max: m.ty().limits.max },
            shared: false,
            memory64: m.ty().memory64,
        }
    }

    /// The memory's contents.
    ///
    /// Accessors that return no `Result` panic when given another store's handle.
    pub fn data<'a, S: AsContext + 'a>(&self, store: &'a S) -> &'a [u8] {
        let s = &store.as_context().inner;
        s.memories[self.index_in(s.id)].owned().data()
    }

    /// The memory's contents, mutably. What is written through a plain slice of
    /// the whole memory cannot be tracked, so dropping the store then costs a
    /// system call to find the pages to reset: host functions that write a few
    /// bytes should use [`Memory::write`] or [`Memory::data_and_store_tracked`].
    pub fn data_mut<'a, S: AsContextMut + 'a>(&self, store: &'a mut S) -> &'a mut [u8] {
        let s = &mut store.as_context_mut().inner;
        let i = self.index_in(s.id);
        s.memories[i].owned_mut().data_mut()
    }

    /// The memory's contents and the store's data at once (for host functions that
    /// read guest memory while updating their own state). `store` is a store or a
    /// [`Caller`](crate::Caller): `memory.data_and_store_mut(&mut caller)`.
    ///
    /// ```
    /// # use carnac::{Caller, Engine, Extern, Linker, Module, Store};
    /// let engine = Engine::default();
    /// let mut linker = Linker::<u64>::new(&engine);
    /// linker.func_wrap("host", "sum", |mut caller: Caller<'_, u64>, ptr: u32, len: u32| {
    ///     let memory = caller.get_export("memory").and_then(Extern::into_memory).unwrap();
    ///     let (bytes, total) = memory.data_and_store_mut(&mut caller);
    ///     *total += bytes[ptr as usize..][..len as usize].iter().map(|b| *b as u64).sum::<u64>();
    /// })?;
    /// let module = Module::new(&engine, r#"(module (import "host" "sum" (func $sum (param i32 i32)))
    ///     (memory (export "memory") 1) (data (i32.const 0) "abc")
    ///     (func (export "run") (call $sum (i32.const 0) (i32.const 3))))"#)?;
    /// let mut store = Store::new(&engine, 0);
    /// let instance = linker.instantiate(&mut store, &module)?;
    /// instance.get_typed_func::<(), ()>(&store, "run")?.call(&mut store, ())?;
    /// assert_eq!(*store.data(), 97 + 98 + 99);
    /// # Ok::<(), carnac::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// When the memory belongs to a different store.
    pub fn data_and_store_mut<'a, T: 'a, S: AsContextMut<Data = T> + 'a>(
        &self,
        store: &'a mut S,
    ) -> (&'a mut [u8], &'a mut T) {
        let store = store.as_context_mut();
        let i = self.index_in(store.inner.id);
        let (inner, data) = store.inner_and_data_mut();
        (inner.memories[i].owned_mut().data_mut(), data)
    }

    /// Like [`Memory::data_and_store_mut`], but the memory comes as a
    /// [`MemoryMut`](crate::MemoryMut), which records the ranges handed out for
    /// writing (what keeps resetting a pooled memory cheap).
    ///
    /// # Panics
    ///
    /// When the memory belongs to a different store.
    pub fn data_and_store_tracked<'a, T: 'a, S: AsContextMut<Data = T> + 'a>(
        &self,
        store: &'a mut S,
    ) -> (crate::MemoryMut<'a>, &'a mut T) {
        let store = store.as_context_mut();
        let i = self.index_in(store.inner.id);
        let (inner, data) = store.inner_and_data_mut();
        (inner.memories[i].owned_mut().tracked(), data)
    }

    /// The current size in 64 KiB pages (what the guest's `memory.size` returns);
    /// [`Memory::data_size`] is the same in bytes. As Wasmtime's `Memory::size`.
    ///
    /// # Panics
    ///
    /// When the memory belongs to a different store.
    pub fn size(&self, store: impl AsContext) -> u64 {
        let s = &store.as_context().inner;
        s.memories[self.index_in(s.id)].size_pages()
    }

    /// The current size in bytes: [`Memory::size`] times [`crate::WASM_PAGE`], the
    /// length of [`Memory::data`]. As Wasmtime's `Memory::data_size`.
    ///
    /// # Panics
    ///
    /// When the memory belongs to a different store.
    pub fn data_size(&self, store: impl AsContext) -> usize {
        let s = &store.as_context().inner;
        s.memories[self.index_in(s.id)].len()
    }

    /// Reads `buf.len()` bytes at `offset`; errors when out of bounds.
    pub fn read(&self, store: impl AsContext, offset: usize, buf: &mut [u8]) -> Result<(), Error> {
        let s = &store.as_context().inner;
        let data = s.memories[self.checked(s.id)?].owned().data();
        let src = offset
            .checked_add(buf.len())
            .and_then(|end| data.get(offset..end))
            .ok_or_else(|| Error::usage("out of bounds memory access"))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    /// Writes `buf` at `offset`; errors when out of bounds.
    pub fn write(&self, mut store: impl AsContextMut, offset: usize, buf: &[u8]) -> Result<(), Error> {
        let s = &mut store.as_context_mut().inner;
        let i = self.checked(s.id)?;
        if s.memories[i].write(offset, buf) {
            Ok(())
        } else {
            Err(Error::usage("out of bounds memory access"))
        }
    }

    /// Grows by `delta` pages and returns the previous size in pages. Errors
    /// when the memory belongs to a different store, when it would grow beyond
    /// its maximum ([`Error::Usage`]), and when the store's
    /// [`ResourceLimiter`](crate::ResourceLimiter) refuses or the host cannot
    /// commit the memory ([`Error::Limit`]).
    pub fn grow(&self, mut store: impl AsContextMut, delta: u64) -> Result<u64, Error> {
        let (s, limiter) = store.as_context_mut().inner_and_limiter();
        let i = self.checked(s.id)?;
        let m = &s.memories[i];
        let (cur, max) = (m.size_pages(), m.max_pages());
        let grown =
            |what: &str| format!("memory of {} cannot grow by {}: {what}", count(cur, "page"), count(delta, "page"));
        if cur.checked_add(delta).is_none_or(|n| n > max) {
            let max = match m.ty().limits.max {
                Some(declared) if declared <= max => format!("beyond its maximum of {}", count(max, "page")),
                // A 64-bit memory: the host reserves at most 4 GiB of it.
                Some(_) => format!("beyond the {} the host reserves for a 64-bit memory", count(max, "page")),
                None if m.ty().memory64 => {
                    format!("beyond the {} the host reserves for a 64-bit memory", count(max, "page"))
                }
                None => format!("beyond the {} a 32-bit memory can address", count(max, "page")),
            };
            return Err(Error::usage(grown(&max)));
        }
        s.grow_memory(limiter, i as u32, delta)?
            .ok_or_else(|| Error::Limit(grown("the store's limits refuse it, or the host cannot commit the memory")))
    }
}

impl Table {
    /// Creates a table owned by the host, its elements set to `init` (a reference of the
    /// table's element type). Errors when `init` has the wrong type or belongs to a
    /// different store, or when the store's limits refuse the table.
    pub fn new(mut store: impl AsContextMut, ty: TableType, init: Val) -> Result<Table, Error> {
        let s = &mut store.as_context_mut().inner;
        if !init.matches(&ty.element, s) {
            return Err(Error::usage("table initial value has the wrong type"));
        }
        let raw = init.to_raw(s)? as u64; // a reference: one slot
        let (s, limiter) = store.as_context_mut().inner_and_limiter();
        let index = s.new_table(limiter, ty, raw)?;
        Ok(Table { store: s.id, index })
    }

    /// The table's type, its minimum being its current size in elements.
    ///
    /// # Panics
    ///
    /// When the table belongs to a different store.
    pub fn ty(&self, store: impl AsContext) -> TableType {
        let s = &store.as_context().inner;
        let t = &s.tables[self.index_in(s.id)];
        TableType {
            element: t.ty.element.clone(),
            limits: Limits { min: t.elems.len() as u64, max: t.ty.limits.max },
            table64: t.ty.table64,
        }
    }

    /// The current size in elements.
    ///
    /// # Panics
    ///
    /// When the table belongs to a different store.
    pub fn size(&self, store: impl AsContext) -> u64 {
        let s = &store.as_context().inner;
        s.tables[self.index_in(s.id)].elems.len() as u64
    }

    /// The element at `index`, or `None` when out of bounds.
    ///
    /// An extern reference read is rooted in the store's current scope (see
    /// [`crate::RootScope`]), hence the `&mut` store, as in Wasmtime.
    ///
    /// # Panics
    ///
    /// When the table belongs to a different store (a `None` would wrongly say
    /// the index is out of bounds).
    pub fn get(&self, mut store: impl AsContextMut, index: u64) -> Option<Val> {
        let s = &mut store.as_context_mut().inner;
        let t = &s.tables[self.index_in(s.id)];
        let (raw, element) = (*t.elems.get(usize::try_from(index).ok()?)?, t.ty.element.clone());
        Some(Val::from_raw(raw as u128, &element, s))
    }

    /// Sets the element at `index`. Errors when out of bounds, when `val` has the
    /// wrong type, or when the table or `val` belongs to a different store.
    pub fn set(&self, mut store: impl AsContextMut, index: u64, val: Val) -> Result<(), Error> {
        let s = &mut store.as_context_mut().inner;
        let i = self.checked(s.id)?;
        if !val.matches(&s.tables[i].ty.element, s) {
            return Err(Error::usage("table element has the wrong type"));
        }
        let raw = val.to_raw(s)? as u64;
        let slot = usize::try_from(index)
            .ok()
            .and_then(|x| s.tables[i].elems.get_mut(x))
            .ok_or_else(|| Error::usage("out of bounds table access"))?;
        *slot = raw;
        Ok(())
    }

    /// Grows by `delta` elements set to `init` and returns the previous size.
    /// Errors when the table or `init` belongs to a different store, when
    /// `init` has the wrong type or the table would grow beyond its maximum
    /// ([`Error::Usage`]), and when the store's
    /// [`ResourceLimiter`](crate::ResourceLimiter) refuses or the host cannot
    /// allocate the elements ([`Error::Limit`]).
    pub fn grow(&self, mut store: impl AsContextMut, delta: u64, init: Val) -> Result<u64, Error> {
        let s = &mut store.as_context_mut().inner;
        let i = self.checked(s.id)?;
        let t = &s.tables[i];
        if !init.matches(&t.ty.element, s) {
            return Err(Error::usage(format!("table element has type {}, not {}", t.ty.element, init.ty())));
        }
        let cur = t.elems.len() as u64;
        let grown = |what: &str| {
            format!("table of {} cannot grow by {}: {what}", count(cur, "element"), count(delta, "element"))
        };
        let max = t.ty.limits.max.unwrap_or(u32::MAX as u64).min(u32::MAX as u64);
        if cur.checked_add(delta).is_none_or(|n| n > max) {
            return Err(Error::usage(grown(&format!("beyond its maximum of {}", count(max, "element")))));
        }
        let raw = init.to_raw(s)? as u64;
        let (s, limiter) = store.as_context_mut().inner_and_limiter();
        s.grow_table(limiter, i as u32, delta, raw)?.ok_or_else(|| {
            Error::Limit(grown("the store's limits refuse it, or the host cannot allocate the elements"))
        })
    }
}

impl Global {
    /// Creates a global owned by the host, holding `val`. Errors when `val` has the
    /// wrong type or belongs to a different store.
    pub fn new(mut store: impl AsContextMut, ty: GlobalType, val: Val) -> Result<Global, Error> {
        let s = &mut store.as_context_mut().inner;
        if !val.matches(&ty.content, s) {
            return Err(Error::usage("global initial value has the wrong type"));
        }
        let value = val.to_raw(s)?;
        let cell = s.new_global_cells(std::iter::once(value));
        s.globals.push(GlobalEntity { ty, cell });
        Ok(Global { store: s.id, index: s.globals.len() as u32 - 1 })
    }

    /// The global's type.
    ///
    /// # Panics
    ///
    /// When the global belongs to a different store.
    pub fn ty(&self, store: impl AsContext) -> GlobalType {
        let s = &store.as_context().inner;
        s.globals[self.index_in(s.id)].ty.clone()
    }

    /// The global's value.
    ///
    /// An extern reference read is rooted in the store's current scope (see
    /// [`crate::RootScope`]), hence the `&mut` store, as in Wasmtime.
    ///
    /// # Panics
    ///
    /// When the global belongs to a different store.
    pub fn get(&self, mut store: impl AsContextMut) -> Val {
        let s = &mut store.as_context_mut().inner;
        let g = &s.globals[self.index_in(s.id)];
        let (value, content) = (g.get(), g.ty.content.clone());
        Val::from_raw(value, &content, s)
    }

    /// Sets the global's value. Errors when it is immutable, when `val` has the
    /// wrong type, or when the global or `val` belongs to a different store.
    pub fn set(&self, mut store: impl AsContextMut, val: Val) -> Result<(), Error> {
        let s = &mut store.as_context_mut().inner;
        let i = self.checked(s.id)?;
        let g = &s.globals[i];
        if g.ty.mutability != Mutability::Var {
            return Err(Error::usage("cannot set an immutable global"));
        }
        if !val.matches(&g.ty.content, s) {
            return Err(Error::usage("global value has the wrong type"));
        }
        let raw = val.to_raw(s)?;
        s.globals[i].set(raw);
        Ok(())
    }
}

/// Anything a module can import or export.
///
/// Not `Copy` (a [`SharedMemory`] is a counted reference); more kinds may come,
/// hence `#[non_exhaustive]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Extern {
    /// A function.
    Func(Func),
    /// A table.
    Table(Table),
    /// A linear memory of one store.
    Memory(Memory),
    /// A global.
    Global(Global),
    /// A shared memory (the threads proposal), usable from any store of its engine.
    SharedMemory(SharedMemory),
    /// An exception tag (exception handling).
    Tag(crate::Tag),
}

impl Extern {
    /// The function, if this is one.
    pub fn into_func(self) -> Option<Func> {
        if let Extern::Func(f) = self {
            Some(f)
        } else {
            None
        }
    }
    /// The memory, if this is one.
    pub fn into_memory(self) -> Option<Memory> {
        if let Extern::Memory(m) = self {
            Some(m)
        } else {
            None
        }
    }
    /// The shared memory, if this is one.
    pub fn into_shared_memory(self) -> Option<SharedMemory> {
        if let Extern::SharedMemory(m) = self {
            Some(m)
        } else {
            None
        }
    }
    /// The table, if this is one.
    pub fn into_table(self) -> Option<Table> {
        if let Extern::Table(t) = self {
            Some(t)
        } else {
            None
        }
    }
    /// The tag, if this is one.
    pub fn into_tag(self) -> Option<crate::Tag> {
        if let Extern::Tag(t) = self {
            Some(t)
        } else {
            None
        }
    }
    /// The global, if this is one.
    pub fn into_global(self) -> Option<Global> {
        if let Extern::Global(g) = self {
            Some(g)
        } else {
            None
        }
    }

    /// The store it belongs to; `None` for a shared memory (it belongs to none).
    pub(crate) fn store_id(&self) -> Option<u64> {
        match self {
            Extern::Func(f) => Some(f.store),
            Extern::Table(t) => Some(t.store),
            Extern::Memory(m) => Some(m.store),
            Extern::Global(g) => Some(g.store),
            Extern::Tag(t) => Some(t.store),
            Extern::SharedMemory(_) => None,
        }
    }

    /// Its type (a memory's or table's at its current size).
    ///
    /// # Panics
    ///
    /// When it belongs to a different store.
    pub fn ty(&self, store: impl AsContext) -> ExternType {
        match self {
            Extern::Func(f) => ExternType::Func(f.ty(&store)),
            Extern::Table(t) => ExternType::Table(t.ty(&store)),
            Extern::Memory(m) => ExternType::Memory(m.ty(&store)),
            Extern::Global(g) => ExternType::Global(g.ty(&store)),
            Extern::SharedMemory(m) => ExternType::Memory(m.ty()),
            Extern::Tag(t) => ExternType::Tag(t.ty(&store)),
        }
    }
}

impl From<Func> for Extern {
    fn from(f: Func) -> Extern {
        Extern::Func(f)
    }
}
impl From<Memory> for Extern {
    fn from(m: Memory) -> Extern {
        Extern::Memory(m)
    }
}
impl From<SharedMemory> for Extern {
    fn from(m: SharedMemory) -> Extern {
        Extern::SharedMemory(m)
    }
}
impl From<Table> for Extern {
    fn from(t: Table) -> Extern {
        Extern::Table(t)
    }
}
impl From<crate::Tag> for Extern {
    fn from(t: crate::Tag) -> Extern {
        Extern::Tag(t)
    }
}
impl From<Global> for Extern {
    fn from(g: Global) -> Extern {
        Extern::Global(g)
    }
}
