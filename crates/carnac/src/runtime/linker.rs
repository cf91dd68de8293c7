//! The linker: a namespace of definitions (`module::name` → host function or
//! store object) used to satisfy a module's imports by name.
//!
//! Host functions registered on a linker are not tied to any store; they are
//! placed in a store when an instance needs them. [`InstancePre`] resolves a
//! module's imports once so that instantiating it again (one store per request in
//! the function host) does no name lookups.

use std::collections::HashMap;

use crate::engine::Engine;
use crate::error::Error;
use crate::module::Module;
use crate::runtime::externals::Extern;
use crate::runtime::func::{Caller, HostFunc, IntoFunc};
use crate::runtime::instance::{instantiate, Instance};
use crate::runtime::store::{AsContextMut, Store};
use crate::runtime::trap::Trap;
use crate::runtime::values::Val;
use crate::types::FuncType;

enum Definition<T> {
    Extern(Extern),
    Host(HostFunc<T>),
}

impl<T> Clone for Definition<T> {
    fn clone(&self) -> Self {
        match self {
            Definition::Extern(e) => Definition::Extern(e.clone()),
            Definition::Host(h) => Definition::Host(h.clone()),
        }
    }
}

impl<T> Definition<T> {
    fn to_extern(&self, store: &mut Store<T>) -> Extern {
        match self {
            Definition::Extern(e) => e.clone(),
            Definition::Host(h) => Extern::Func(h.define(store)),
        }
    }
}

/// Resolves imports by `(module, name)`.
pub struct Linker<T> {
    engine: Engine,
    defs: HashMap<(String, String), Definition<T>>,
    allow_shadowing: bool,
}

/// A copy of every definition (host functions are shared, not copied), as
/// Wasmtime's `Linker` is `Clone`: a thread can take its own.
impl<T> Clone for Linker<T> {
    fn clone(&self) -> Self {
        Linker { engine: self.engine.clone(), defs: self.defs.clone(), allow_shadowing: self.allow_shadowing }
    }
}

impl<T> std::fmt::Debug for Linker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linker").field("definitions", &self.defs.len()).finish()
    }
}

impl<T: 'static> Linker<T> {
    /// An empty linker for modules of `engine`.
    pub fn new(engine: &Engine) -> Linker<T> {
        Linker { engine: engine.clone(), defs: HashMap::new(), allow_shadowing: false }
    }

    /// The linker's engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether a later definition may replace an earlier one of the same name.
    pub fn allow_shadowing(&mut self, allow: bool) -> &mut Self {
        self.allow_shadowing = allow;
        self
    }

    fn insert(&mut self, module: &str, name: &str, mut def: Definition<T>) -> Result<&mut Self, Error> {
        if let Definition::Host(h) = &mut def {
            // Registered once here, not on every instantiation.
            h.type_id = Some(self.engine.register_type(&h.ty));
        }
        let key = (module.to_string(), name.to_string());
        if !self.allow_shadowing && self.defs.contains_key(&key) {
            return Err(Error::usage(format!("`{module}::{name}` is already defined")));
        }
        self.defs.insert(key, def);
        Ok(self)
    }

    /// Defines `module::name` as an object of a store (that store must be used
    /// to instantiate), or as a [`crate::SharedMemory`], which belongs to no
    /// store: one linker holding it can then instantiate in any number of
    /// stores, on any threads (how a thread of a threaded program is spawned).
    pub fn define(&mut self, module: &str, name: &str, item: impl Into<Extern>) -> Result<&mut Self, Error> {
        self.insert(module, name, Definition::Extern(item.into()))
    }

    /// Defines a host function from a closure with typed parameters.
    pub fn func_wrap<Params, Results>(
        &mut self,
        module: &str,
        name: &str,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Result<&mut Self, Error> {
        self.insert(module, name, Definition::Host(f.into_host_func()))
    }

    /// Defines a host function with a dynamic signature.
    pub fn func_new(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<(), Trap> + Send + Sync + 'static,
    ) -> Result<&mut Self, Error> {
        self.insert(module, name, Definition::Host(HostFunc::from_dynamic(ty, f)))
    }

    /// Defines every export of `instance` under the module name `module`.
    pub fn instance(
        &mut self,
        mut store: impl AsContextMut<Data = T>,
        module: &str,
        instance: Instance,
    ) -> Result<&mut Self, Error> {
        for (name, ext) in instance.exports(store.as_context_mut()) {
            self.define(module, &name, ext)?;
        }
        Ok(self)
    }

    /// Defines every function import of `module` that this linker does not
    /// define yet as a function that traps when called (its message names the
    /// import), as Wasmtime's `define_unknown_imports_as_traps`: a module that
    /// imports more than the host offers still instantiates, and fails only if
    /// it really calls what is missing. Other kinds of imports are left alone.
    pub fn define_unknown_imports_as_traps(&mut self, module: &Module) -> Result<&mut Self, Error> {
        for import in module.imports() {
            let crate::types::ExternType::Func(ty) = import.ty else { continue };
            if self.defs.contains_key(&(import.module.clone(), import.name.clone())) {
                continue;
            }
            let message = format!("the unknown import `{}::{}` was called", import.module, import.name);
            let trap = move |_: Caller<'_, T>, _: &[Val], _: &mut [Val]| Err(Trap::host(message.clone()));
            self.insert(&import.module, &import.name, Definition::Host(HostFunc::from_dynamic(ty, trap)))?;
        }
        Ok(self)
    }

    /// Defines the exports of `module` under the name `name`, as Wasmtime's
    /// `Linker::module` does:
    /// - a *command* (a module exporting `_start`) gets a fresh instance per
    ///   call: each exported function, when called, instantiates `module` in
    ///   the caller's store (its imports resolved by this linker now) and calls
    ///   that export of the new instance;
    /// - a *reactor* (anything else) is instantiated once, in `store`; its
    ///   `_initialize` export, if any, is called; then its exports are defined.
    ///
    /// Only a command's functions are defined (a fresh instance has nothing
    /// else worth sharing).
    pub fn module(
        &mut self,
        mut store: impl AsContextMut<Data = T>,
        name: &str,
        module: &Module,
    ) -> Result<&mut Self, Error> {
        if module.get_export("_start").is_some() {
            let pre = std::sync::Arc::new(self.instantiate_pre(module)?);
            for export in module.exports() {
                let crate::types::ExternType::Func(ty) = export.ty else { continue };
                let (pre, export_name) = (pre.clone(), export.name.clone());
                let call = move |mut caller: Caller<'_, T>, params: &[Val], results: &mut [Val]| {
                    let as_trap = |e: Error| match e {
                        Error::Trap(t) => t,
                        e => Trap::host(e.to_string()),
                    };
                    let instance = pre.instantiate(&mut caller).map_err(as_trap)?;
                    let func = instance
                        .get_func(&caller, &export_name)
                        .ok_or_else(|| Trap::host(format!("no exported function `{export_name}`")))?;
                    func.call(&mut caller, params, results).map_err(as_trap)
                };
                self.insert(name, &export.name, Definition::Host(HostFunc::from_dynamic(ty, call)))?;
            }
            return Ok(self);
        }
        let instance = self.instantiate(store.as_context_mut(), module)?;
        if let Some(init) = instance.get_func(store.as_context_mut(), "_initialize") {
            init.call(store.as_context_mut(), &[], &mut [])?;
        }
        self.instance(store, name, instance)
    }

    /// Looks up a definition, placing a host function in `store` if needed.
    pub fn get(&self, mut store: impl AsContextMut<Data = T>, module: &str, name: &str) -> Option<Extern> {
        let def = self.defs.get(&(module.to_string(), name.to_string()))?;
        Some(def.to_extern(store.as_context_mut()))
    }

    /// Resolves the imports of `module` once.
    pub fn instantiate_pre(&self, module: &Module) -> Result<InstancePre<T>, Error> {
        let mut defs = Vec::new();
        for import in module.imports() {
            let def = self
                .defs
                .get(&(import.module.clone(), import.name.clone()))
                .ok_or_else(|| Error::UnknownImport { module: import.module.clone(), name: import.name.clone() })?;
            if let (Definition::Host(h), crate::types::ExternType::Func(want)) = (def, &import.ty) {
                if h.ty != *want {
                    return Err(Error::IncompatibleImport {
                        module: import.module,
                        name: import.name,
                        reason: format!("expected {want}, found {}", h.ty),
                    });
                }
            }
            defs.push(def.clone());
        }
        let hosts = defs.iter().filter(|d| matches!(d, Definition::Host(_))).count();
        Ok(InstancePre { module: module.clone(), defs, hosts })
    }

    /// Instantiates `module` in `store`, its imports resolved by name.
    pub fn instantiate(&self, mut store: impl AsContextMut<Data = T>, module: &Module) -> Result<Instance, Error> {
        self.instantiate_pre(module)?.instantiate(store.as_context_mut())
    }
}

/// A module whose imports are resolved; instantiate it into any number of stores.
pub struct InstancePre<T> {
    module: Module,
    defs: Vec<Definition<T>>,
    /// How many of `defs` are host functions (each becomes a store function).
    hosts: usize,
}

impl<T> Clone for InstancePre<T> {
    fn clone(&self) -> Self {
        InstancePre { module: self.module.clone(), defs: self.defs.clone(), hosts: self.hosts }
    }
}

impl<T: 'static> InstancePre<T> {
    /// The module this instantiates.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Instantiates the module in `store` (host functions are placed in it).
    pub fn instantiate(&self, mut store: impl AsContextMut<Data = T>) -> Result<Instance, Error> {
        let store = store.as_context_mut();
        store.hosts.reserve(self.hosts);
        store.inner.host_types.reserve(self.hosts);
        store.inner.funcs.reserve(self.hosts + self.module.inner.code.len());
        let imports: Vec<Extern> = self.defs.iter().map(|d| d.to_extern(store)).collect();
        instantiate(store, &self.module, &imports)
    }
}
