//! Functions: the [`Func`] handle, host functions defined from Rust closures
//! ([`Func::new`], [`Func::wrap`]), the [`Caller`] a host function receives, and
//! statically typed calls ([`TypedFunc`]).
//!
//! Host functions see arguments and write results as raw 64-bit slots (the
//! interpreter's own encoding), so typed host calls convert nothing beyond a cast.

use std::sync::Arc;

use crate::error::Error;
use crate::runtime::store::{AsContext, AsContextMut, FuncEntity, FuncKind, InterruptProbe, Store, StoreOpaque};
use crate::runtime::trap::Trap;
use crate::runtime::values::{read_slots, write_slots, ExternRef, Val};
use crate::runtime::vmctx::VMFuncRef;
use crate::runtime::Extern;
use crate::types::{FuncType, ValType};

/// The calling convention of every host function: `slots` holds the arguments on
/// entry and receives the results (it is as long as the larger of the two).
pub(crate) type HostFn<T> = dyn Fn(Caller<'_, T>, &mut [u64]) -> Result<(), Trap> + Send + Sync;

#[doc(hidden)]
pub struct HostFunc<T> {
    pub(crate) ty: FuncType,
    pub(crate) func: Arc<HostFn<T>>,
    /// The engine-wide type id, when already registered (by a linker).
    pub(crate) type_id: Option<u32>,
}

impl<T> Clone for HostFunc<T> {
    fn clone(&self) -> Self {
        HostFunc { ty: self.ty.clone(), func: self.func.clone(), type_id: self.type_id }
    }
}

impl<T> HostFunc<T> {
    /// Places this host function in `store` and returns its handle.
    pub(crate) fn define(&self, store: &mut Store<T>) -> Func {
        let index = store.hosts.len() as u32;
        store.hosts.push(self.clone());
        let type_id = match self.type_id {
            Some(id) => id,
            None => store.inner.engine.register_type(&self.ty),
        };
        let slots = self.ty.param_slots().max(self.ty.result_slots()) as u32;
        store.inner.host_types.push(self.ty.clone());
        let func_ref = VMFuncRef { type_id, ..VMFuncRef::NULL };
        let index = store.inner.push_func(FuncEntity { type_id, kind: FuncKind::Host { index, slots } }, func_ref);
        Func { store: store.inner.id, index }
    }

    pub(crate) fn from_dynamic<F>(ty: FuncType, f: F) -> HostFunc<T>
    where
        F: Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<(), Trap> + Send + Sync + 'static,
    {
        let ty2 = ty.clone();
        let func = move |caller: Caller<'_, T>, slots: &mut [u64]| -> Result<(), Trap> {
            // Every host call is a root scope: the references it receives or
            // makes are unrooted when it returns (its results are raw by then).
            let Caller { store, instance } = caller;
            let scope = store.inner.enter_root_scope();
            let mut at = 0;
            let params: Vec<Val> = ty2
                .params()
                .iter()
                .map(|t| {
                    let v = Val::from_raw(read_slots(&slots[at..], t), t, &mut store.inner);
                    at += t.slots();
                    v
                })
                .collect();
            let mut results: Vec<Val> = ty2.results().iter().map(|t| Val::default_for(t.clone())).collect();
            let outcome = f(Caller { store: &mut *store, instance }, &params, &mut results).and_then(|()| {
                let mut at = 0;
                for (val, want) in results.iter().zip(ty2.results()) {
                    if !val.matches(want, &store.inner) {
                        return Err(Trap::host(format!(
                            "host function returned a {} where its type says {want}",
                            val.ty()
                        )));
                    }
                    let raw = val.to_raw(&store.inner).map_err(|e| Trap::host(e.to_string()))?;
                    at += write_slots(raw, want, &mut slots[at..]);
                }
                Ok(())
            });
            store.inner.exit_root_scope(scope);
            outcome
        };
        HostFunc { ty, func: Arc::new(func), type_id: None }
    }
}

/// A function in a store: defined by a module instance or by the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Func {
    pub(crate) store: u64,
    pub(crate) index: u32,
}

impl Func {
    /// A host function with a dynamic signature.
    pub fn new<T: 'static>(
        mut store: impl AsContextMut<Data = T>,
        ty: FuncType,
        f: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<(), Trap> + Send + Sync + 'static,
    ) -> Func {
        HostFunc::from_dynamic(ty, f).define(store.as_context_mut())
    }

    /// A host function from a Rust closure with typed parameters, e.g.
    /// `|caller: Caller<'_, T>, a: i32, b: i64| -> i64 { ... }`.
    pub fn wrap<T: 'static, Params, Results>(
        mut store: impl AsContextMut<Data = T>,
        f: impl IntoFunc<T, Params, Results>,
    ) -> Func {
        f.into_host_func().define(store.as_context_mut())
    }

    pub(crate) fn check_store(&self, store_id: u64) -> Result<(), Error> {
        if self.store != store_id {
            return Err(Error::usage("function belongs to a different store than the one it was used with"));
        }
        Ok(())
    }

    /// This function's type.
    ///
    /// # Panics
    ///
    /// When the function belongs to a different store.
    pub fn ty(&self, store: impl AsContext) -> FuncType {
        let s = store.as_context();
        assert_eq!(self.store, s.inner.id, "Func belongs to a different store than the one it was used with");
        s.inner.func_ty(self.index).clone()
    }

    /// Calls the function with dynamically typed arguments; `results` must have
    /// room for exactly the function's results.
    pub fn call<T>(
        &self,
        mut store: impl AsContextMut<Data = T>,
        params: &[Val],
        results: &mut [Val],
    ) -> Result<(), Error> {
        let store = store.as_context_mut();
        self.check_store(store.inner.id)?;
        store.inner.collect_externs_if_pending();
        let ty = store.inner.func_ty(self.index).clone();
        if params.len() != ty.params().len() {
            return Err(Error::usage(format!("expected {} arguments, got {}", ty.params().len(), params.len())));
        }
        if results.len() != ty.results().len() {
            return Err(Error::usage(format!(
                "expected room for {} results, got {}",
                ty.results().len(),
                results.len()
            )));
        }
        let n = ty.param_slots().max(ty.result_slots());
        let mut slots = vec![0u64; n];
        let mut at = 0;
        for (i, (p, t)) in params.iter().zip(ty.params()).enumerate() {
            if !p.matches(t, &store.inner) {
                return Err(Error::usage(format!("argument {i} has type {}, expected {t}", p.ty())));
            }
            at += write_slots(p.to_raw(&store.inner)?, t, &mut slots[at..]);
        }
        crate::runtime::call::call_func(store, self.index, &mut slots, None)?;
        let mut at = 0;
        for (i, t) in ty.results().iter().enumerate() {
            results[i] = Val::from_raw(read_slots(&slots[at..], t), t, &mut store.inner);
            at += t.slots();
        }
        Ok(())
    }

    /// A statically typed view of this function; fails if the types differ.
    pub fn typed<P: WasmParams, R: WasmResults>(&self, store: impl AsContext) -> Result<TypedFunc<P, R>, Error> {
        let store = store.as_context();
        self.check_store(store.inner.id)?;
        let ty = store.inner.func_ty(self.index);
        if ty.params() != P::types().as_slice() || ty.results() != R::types().as_slice() {
            return Err(Error::usage(format!(
                "type mismatch: function is {ty}, requested {}",
                FuncType::new(P::types(), R::types())
            )));
        }
        Ok(TypedFunc { func: *self, _marker: std::marker::PhantomData })
    }
}

/// A function whose parameter and result types were checked once, up front.
pub struct TypedFunc<P, R> {
    func: Func,
    _marker: std::marker::PhantomData<fn(P) -> R>,
}

impl<P, R> Clone for TypedFunc<P, R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<P, R> Copy for TypedFunc<P, R> {}

impl<P, R> std::fmt::Debug for TypedFunc<P, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedFunc").field("func", &self.func).finish()
    }
}

impl<P: WasmParams, R: WasmResults> TypedFunc<P, R> {
    /// The untyped function.
    pub fn func(&self) -> Func {
        self.func
    }

    /// Calls the function. Errors when it traps, or when the function or a
    /// reference among `params` belongs to a different store.
    pub fn call<T>(&self, mut store: impl AsContextMut<Data = T>, params: P) -> Result<R, Error> {
        let store = store.as_context_mut();
        self.func.check_store(store.inner.id)?;
        store.inner.collect_externs_if_pending();
        let mut slots = [0u64; 16];
        let n = P::COUNT.max(R::COUNT);
        let mut heap;
        let slots: &mut [u64] = if n <= 16 {
            &mut slots[..n]
        } else {
            heap = vec![0u64; n];
            &mut heap
        };
        params.store(slots, &mut StoreOpaque(&mut store.inner))?;
        crate::runtime::call::call_func(store, self.func.index, slots, None)?;
        Ok(R::load(slots, &mut StoreOpaque(&mut store.inner)))
    }
}

/// What a host function sees of its caller: the store (and its data) and the
/// calling instance's exports. It is an [`AsContextMut`], so it goes wherever a
/// `&mut Store` does: [`Memory::data_and_store_mut(&mut caller)`](crate::Memory::data_and_store_mut),
/// [`Func::call(&mut caller, ...)`](Func::call), [`Global::get(&caller)`](crate::Global::get), ...
pub struct Caller<'a, T> {
    pub(crate) store: &'a mut Store<T>,
    pub(crate) instance: Option<u32>,
}

impl<'a, T> Caller<'a, T> {
    /// The store's data.
    pub fn data(&self) -> &T {
        self.store.data()
    }

    /// The store's data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        self.store.data_mut()
    }

    /// An export of the calling instance (typically its `memory`).
    pub fn get_export(&self, name: &str) -> Option<Extern> {
        let inst = self.instance?;
        crate::runtime::instance::instance_export(&self.store.inner, inst, name)
    }

    /// The engine of the store.
    pub fn engine(&self) -> &crate::Engine {
        self.store.engine()
    }

    /// The store's remaining fuel, as [`Store::get_fuel`]. Errors when the engine does not meter fuel.
    pub fn get_fuel(&self) -> Result<u64, Error> {
        self.store.get_fuel()
    }

    /// Sets the store's remaining fuel, as [`Store::set_fuel`]: a host function can
    /// charge for its own work, or refill. Errors when the engine does not meter fuel.
    pub fn set_fuel(&mut self, fuel: u64) -> Result<(), Error> {
        self.store.set_fuel(fuel)
    }

    /// Whether the store was interrupted ([`crate::InterruptHandle`]) or the
    /// engine's epoch has reached the store's deadline
    /// ([`Store::set_epoch_deadline`]): a host function that waits looks at this
    /// (or at an [`InterruptProbe`] taken before the wait) and ends its wait,
    /// then calls [`Caller::check_interrupt`]. Always false on engines with
    /// neither interrupts nor epochs.
    pub fn is_interrupted(&self) -> bool {
        self.store.inner.signals.should_stop()
    }

    /// A probe of [`Caller::is_interrupted`] that does not borrow the store, for
    /// waits that run while the host function holds the store's data; `None`
    /// when nothing can stop the store (the engine has neither
    /// [`crate::Config::interruptible`] nor [`crate::Config::epoch_interruption`]),
    /// so a wait may simply block.
    pub fn interrupt_probe(&self) -> Option<InterruptProbe> {
        let config = self.store.inner.engine.config();
        (config.interruptible || config.epoch_interruption)
            .then(|| InterruptProbe::new(self.store.inner.signals.clone()))
    }

    /// Does what the guest's next function entry or loop header would: an error
    /// (the `Interrupted` trap) when the store was interrupted; when the epoch
    /// deadline was reached, runs the store's deadline callback
    /// ([`Store::epoch_deadline_callback`]), returning its error (by default the
    /// `Interrupted` trap) or, when it grants more ticks, `Ok`. For host
    /// functions that waited: returning the error ends the guest's call as an
    /// interrupt in guest code would.
    pub fn check_interrupt(&mut self) -> Result<(), Trap> {
        if !self.store.inner.signals.should_stop() {
            return Ok(());
        }
        self.store.deadline_reached()
    }
}

impl<T> AsContext for Caller<'_, T> {
    type Data = T;
    fn as_context(&self) -> &Store<T> {
        self.store
    }
}
impl<T> AsContextMut for Caller<'_, T> {
    fn as_context_mut(&mut self) -> &mut Store<T> {
        self.store
    }
}

/// A Rust type that is a WebAssembly value type: `i32`/`u32` (i32), `i64`/`u64`
/// (i64), `f32`, `f64`, `u128` (v128, lane 0 in the low bits), `Option<Func>`
/// (funcref), `Option<ExternRef>` (externref) and `Option<ExnRef>` (exnref),
/// `None` being the null reference.
/// These are the parameter and result types of [`TypedFunc`] and of host
/// functions made with [`Func::wrap`] or [`crate::Linker::func_wrap`], as in Wasmtime.
///
/// Values take one 64-bit slot (two for `u128`); a reference is checked to
/// belong to the store it is passed to.
pub trait WasmTy: Sized {
    /// The WebAssembly type.
    const TY: ValType;
    /// Slots a value takes.
    #[doc(hidden)]
    const SLOTS: usize = 1;
    /// Reads a value from the front of `slots`, references made in store `cx`
    /// (an extern reference is rooted in its current scope).
    #[doc(hidden)]
    fn load(slots: &[u64], cx: &mut StoreOpaque<'_>) -> Self;
    /// Writes the value to the front of `slots`; a reference must belong to store `cx`.
    #[doc(hidden)]
    fn store(self, slots: &mut [u64], cx: &mut StoreOpaque<'_>) -> Result<(), Error>;
}

macro_rules! wasm_ty {
    ($t:ty, $vt:ident, |$r:ident| $from:expr, |$v:ident| $into:expr) => {
        impl WasmTy for $t {
            const TY: ValType = ValType::$vt;
            #[inline]
            fn load(slots: &[u64], _: &mut StoreOpaque<'_>) -> Self {
                let $r = slots[0];
                $from
            }
            #[inline]
            fn store(self, slots: &mut [u64], _: &mut StoreOpaque<'_>) -> Result<(), Error> {
                let $v = self;
                slots[0] = $into;
                Ok(())
            }
        }
    };
}

impl WasmTy for u128 {
    const TY: ValType = ValType::V128;
    const SLOTS: usize = 2;
    #[inline]
    fn load(slots: &[u64], _: &mut StoreOpaque<'_>) -> Self {
        slots[0] as u128 | (slots[1] as u128) << 64
    }
    #[inline]
    fn store(self, slots: &mut [u64], _: &mut StoreOpaque<'_>) -> Result<(), Error> {
        slots[0] = self as u64;
        slots[1] = (self >> 64) as u64;
        Ok(())
    }
}
wasm_ty!(i32, I32, |r| r as u32 as i32, |v| v as u32 as u64);
wasm_ty!(u32, I32, |r| r as u32, |v| v as u64);
wasm_ty!(i64, I64, |r| r as i64, |v| v as u64);
wasm_ty!(u64, I64, |r| r, |v| v);
wasm_ty!(f32, F32, |r| f32::from_bits(r as u32), |v| v.to_bits() as u64);
wasm_ty!(f64, F64, |r| f64::from_bits(r), |v| v.to_bits());

/// A nullable function reference (funcref), as in Wasmtime.
impl WasmTy for Option<Func> {
    const TY: ValType = ValType::FuncRef;
    #[inline]
    fn load(slots: &[u64], cx: &mut StoreOpaque<'_>) -> Self {
        // A raw reference is the store index plus one; 0 is null.
        (slots[0] != 0).then(|| Func { store: cx.0.id, index: (slots[0] - 1) as u32 })
    }
    #[inline]
    fn store(self, slots: &mut [u64], cx: &mut StoreOpaque<'_>) -> Result<(), Error> {
        slots[0] = Val::FuncRef(self).to_raw(cx.0)? as u64;
        Ok(())
    }
}

/// A nullable extern reference (externref), as in Wasmtime.
impl WasmTy for Option<ExternRef> {
    const TY: ValType = ValType::ExternRef;
    #[inline]
    fn load(slots: &[u64], cx: &mut StoreOpaque<'_>) -> Self {
        ExternRef::from_raw(slots[0], cx.0)
    }
    #[inline]
    fn store(self, slots: &mut [u64], cx: &mut StoreOpaque<'_>) -> Result<(), Error> {
        slots[0] = Val::ExternRef(self).to_raw(cx.0)? as u64;
        Ok(())
    }
}

/// A nullable exception reference (exnref, exception handling), as in Wasmtime.
impl WasmTy for Option<crate::ExnRef> {
    const TY: ValType = ValType::EXNREF;
    #[inline]
    fn load(slots: &[u64], cx: &mut StoreOpaque<'_>) -> Self {
        crate::ExnRef::from_raw(slots[0], cx.0)
    }
    #[inline]
    fn store(self, slots: &mut [u64], cx: &mut StoreOpaque<'_>) -> Result<(), Error> {
        slots[0] = Val::ExnRef(self).to_raw(cx.0)? as u64;
        Ok(())
    }
}

/// Parameters of a typed call: a value type or a tuple of them.
pub trait WasmParams {
    /// Slots the values take.
    #[doc(hidden)]
    const COUNT: usize;
    /// The value types.
    #[doc(hidden)]
    fn types() -> Vec<ValType>;
    /// Writes the values to `slots`; references must belong to store `cx`.
    #[doc(hidden)]
    fn store(self, slots: &mut [u64], cx: &mut StoreOpaque<'_>) -> Result<(), Error>;
}

/// Results of a typed call: a value type or a tuple of them.
pub trait WasmResults: Sized {
    /// Slots the values take.
    #[doc(hidden)]
    const COUNT: usize;
    /// The value types.
    #[doc(hidden)]
    fn types() -> Vec<ValType>;
    /// Reads the values from `slots`, references made in store `cx`.
    #[doc(hidden)]
    fn load(slots: &[u64], cx: &mut StoreOpaque<'_>) -> Self;
}

/// What a host function may return: its results (a [`WasmTy`] value, or a tuple
/// of them, `()` for none), or a `Result` of those whose error converts into a
/// [`Trap`]: `Result<R, Trap>`, `Result<R, carnac::Error>` (so `?` on a nested
/// call through the [`Caller`] works) and `anyhow::Result<R>` (so `?` works on
/// any error). An `Err` traps the guest; the caller gets the error back inside the
/// trap ([`Trap::downcast_host`], [`crate::Error::downcast_ref`]). The same as
/// Wasmtime's `WasmRet`.
///
/// ```
/// # use carnac::{Engine, Error, Linker, Module, Store, Trap};
/// let engine = Engine::default();
/// let mut linker = Linker::<()>::new(&engine);
/// linker.func_wrap("host", "plain", |x: i32| x + 1)?;
/// linker.func_wrap("host", "trap", |x: i32| -> Result<i32, Trap> {
///     if x < 0 { Err(Trap::host("negative")) } else { Ok(x) }
/// })?;
/// linker.func_wrap("host", "parse", |x: i32| -> anyhow::Result<i32> {
///     Ok(format!("{x}").parse::<i32>()?)
/// })?;
/// # Ok::<(), Error>(())
/// ```
///
/// Anything else does not compile, and the error names this trait:
///
/// ```compile_fail
/// # use carnac::{Engine, Linker};
/// let mut linker = Linker::<()>::new(&Engine::default());
/// linker.func_wrap("host", "f", |x: i32| -> Result<i32, String> { Ok(x) });
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be returned by a host function",
    label = "returned by this host function",
    note = "a host function returns a WebAssembly value type (`i32`, `u32`, `i64`, `u64`, `f32`, `f64`, \
            `u128` for v128, `Option<Func>`, `Option<ExternRef>`), a tuple of them (`()` for none), \
            or a `Result` of those whose error converts into `carnac::Trap` (`Trap`, `carnac::Error`, \
            `anyhow::Error`): see the trait `carnac::WasmRet`"
)]
pub trait WasmRet {
    /// The result types.
    #[doc(hidden)]
    fn types() -> Vec<ValType>;
    /// Writes the results to `slots` (references must belong to store `cx`), or returns the trap.
    #[doc(hidden)]
    fn store(self, slots: &mut [u64], cx: &mut StoreOpaque<'_>) -> Result<(), Trap>;
}

impl<R: WasmResults + WasmParams> WasmRet for R {
    fn types() -> Vec<ValType> {
        <R as WasmResults>::types()
    }
    fn store(self, slots: &mut [u64], cx: &mut StoreOpaque<'_>) -> Result<(), Trap> {
        Ok(WasmParams::store(self, slots, cx)?)
    }
}

impl<R: WasmResults + WasmParams, E: Into<Trap>> WasmRet for Result<R, E> {
    fn types() -> Vec<ValType> {
        <R as WasmResults>::types()
    }
    fn store(self, slots: &mut [u64], cx: &mut StoreOpaque<'_>) -> Result<(), Trap> {
        Ok(WasmParams::store(self.map_err(Into::into)?, slots, cx)?)
    }
}

impl<A: WasmTy> WasmParams for A {
    const COUNT: usize = A::SLOTS;
    fn types() -> Vec<ValType> {
        vec![A::TY]
    }
    fn store(self, slots: &mut [u64], cx: &mut StoreOpaque<'_>) -> Result<(), Error> {
        WasmTy::store(self, slots, cx)
    }
}
impl<A: WasmTy> WasmResults for A {
    const COUNT: usize = A::SLOTS;
    fn types() -> Vec<ValType> {
        vec![A::TY]
    }
    fn load(slots: &[u64], cx: &mut StoreOpaque<'_>) -> Self {
        WasmTy::load(slots, cx)
    }
}

/// The slot where each element of a tuple of value types starts.
const fn slot_offsets<const N: usize>(sizes: [usize; N]) -> [usize; N] {
    let mut out = [0; N];
    let mut i = 1;
    while i < N {
        out[i] = out[i - 1] + sizes[i - 1];
        i += 1;
    }
    out
}

/// A Rust closure usable as a host function: `Fn(A1, A2, ...) -> R` or
/// `Fn(Caller<'_, T>, A1, A2, ...) -> R`, where each `A` is a [`WasmTy`] and `R`
/// is a [`WasmRet`] (up to 10 parameters). The same as Wasmtime's `IntoFunc`.
#[diagnostic::on_unimplemented(
    message = "this closure cannot be a host function",
    label = "not a host function",
    note = "a host function is `Fn(A1, A2, ...) -> R` or `Fn(Caller<'_, T>, A1, A2, ...) -> R`, `Send + Sync + 'static`, \
            with up to 10 parameters of WebAssembly value types (see `carnac::WasmTy`)",
    note = "`R` is a value type, a tuple of them, `Result<R, Trap>` or `anyhow::Result<R>`: see `carnac::WasmRet`"
)]
pub trait IntoFunc<T, Params, Results> {
    #[doc(hidden)]
    fn into_host_func(self) -> HostFunc<T>;
}

macro_rules! tuples {
    ($n:literal; $($a:ident $i:tt),*) => {
        impl<$($a: WasmTy),*> WasmParams for ($($a,)*) {
            const COUNT: usize = 0 $(+ $a::SLOTS)*;
            fn types() -> Vec<ValType> { vec![$($a::TY),*] }
            #[allow(unused_variables)]
            fn store(self, slots: &mut [u64], cx: &mut StoreOpaque<'_>) -> Result<(), Error> {
                let at: [usize; $n] = slot_offsets([$($a::SLOTS),*]);
                $(WasmTy::store(self.$i, &mut slots[at[$i]..], cx)?;)*
                Ok(())
            }
        }
        impl<$($a: WasmTy),*> WasmResults for ($($a,)*) {
            const COUNT: usize = 0 $(+ $a::SLOTS)*;
            fn types() -> Vec<ValType> { vec![$($a::TY),*] }
            #[allow(unused_variables, clippy::unused_unit)]
            fn load(slots: &[u64], cx: &mut StoreOpaque<'_>) -> Self {
                let at: [usize; $n] = slot_offsets([$($a::SLOTS),*]);
                ($(<$a as WasmTy>::load(&slots[at[$i]..], cx),)*)
            }
        }
        impl<T, F, $($a: WasmTy,)* R: WasmRet> IntoFunc<T, (Caller<'_, T>, $($a,)*), R> for F
        where
            F: Fn(Caller<'_, T>, $($a),*) -> R + Send + Sync + 'static,
        {
            fn into_host_func(self) -> HostFunc<T> {
                let ty = FuncType::new(vec![$($a::TY),*], R::types());
                #[allow(unused_variables)]
                let func = move |caller: Caller<'_, T>, slots: &mut [u64]| -> Result<(), Trap> {
                    // A root scope for the call (see `HostFunc::from_dynamic`).
                    let Caller { store, instance } = caller;
                    let scope = store.inner.enter_root_scope();
                    let args = <($($a,)*) as WasmResults>::load(slots, &mut StoreOpaque(&mut store.inner));
                    let r = (self)(Caller { store: &mut *store, instance }, $(args.$i),*);
                    let outcome = r.store(slots, &mut StoreOpaque(&mut store.inner));
                    store.inner.exit_root_scope(scope);
                    outcome
                };
                HostFunc { ty, func: Arc::new(func), type_id: None }
            }
        }
        impl<T, F, $($a: WasmTy,)* R: WasmRet> IntoFunc<T, ($($a,)*), R> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
        {
            fn into_host_func(self) -> HostFunc<T> {
                let ty = FuncType::new(vec![$($a::TY),*], R::types());
                #[allow(unused_variables)]
                let func = move |caller: Caller<'_, T>, slots: &mut [u64]| -> Result<(), Trap> {
                    // A root scope for the call (see `HostFunc::from_dynamic`).
                    let store = caller.store;
                    let scope = store.inner.enter_root_scope();
                    let args = <($($a,)*) as WasmResults>::load(slots, &mut StoreOpaque(&mut store.inner));
                    let r = (self)($(args.$i),*);
                    let outcome = r.store(slots, &mut StoreOpaque(&mut store.inner));
                    store.inner.exit_root_scope(scope);
                    outcome
                };
                HostFunc { ty, func: Arc::new(func), type_id: None }
            }
        }
    };
}
tuples!(0;);
tuples!(1; A0 0);
tuples!(2; A0 0, A1 1);
tuples!(3; A0 0, A1 1, A2 2);
tuples!(4; A0 0, A1 1, A2 2, A3 3);
tuples!(5; A0 0, A1 1, A2 2, A3 3, A4 4);
tuples!(6; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5);
tuples!(7; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6);
tuples!(8; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7);
tuples!(9; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8);
tuples!(10; A0 0, A1 1, A2 2, A3 3, A4 4, A5 5, A6 6, A7 7, A8 8, A9 9);
