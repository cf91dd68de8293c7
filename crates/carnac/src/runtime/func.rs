//! Functions: the [`Func`] handle, host functions defined from Rust closures
//! ([`Func::new`], [`Func::wrap`]), the [`Caller`] a host function receives, and
//! statically typed calls ([`TypedFunc`]).
//!
//! Host functions see arguments and write results as raw 64-bit slots (the
//! interpreter's own encoding), so typed host calls convert nothing beyond a cast.

use std::sync::Arc;

use crate::error::Error;
use crate::runtime::store::{AsContext, AsContextMut, FuncEntity, FuncKind, InterruptProbe, Store};
use crate::runtime::trap::Trap;
use crate::runtime::values::{read_slots, write_slots, Val};
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
        store.inner.funcs.push(FuncEntity { type_id, kind: FuncKind::Host { index, slots } });
        Func { store: store.inner.id, index: store.inner.funcs.len() as u32 - 1 }
    }

    pub(crate) fn from_dynamic<F>(ty: FuncType, f: F) -> HostFunc<T>
    where
        F: Fn(Caller<'_, T>, &[Val], &mut [Val]) -> Result<(), Trap> + Send + Sync + 'static,
    {
        let ty2 = ty.clone();
        let func = move |caller: Caller<'_, T>, slots: &mut [u64]| -> Result<(), Trap> {
            let id = caller.store.inner.id;
            let mut at = 0;
            let params: Vec<Val> = ty2
                .params()
                .iter()
                .map(|t| {
                    let v = Val::from_raw(read_slots(&slots[at..], *t), *t, id);
                    at += t.slots();
                    v
                })
                .collect();
            let mut results: Vec<Val> = ty2.results().iter().map(|t| Val::default_for(*t)).collect();
            f(caller, &params, &mut results)?;
            let mut at = 0;
            for (val, want) in results.iter().zip(ty2.results()) {
                if val.ty() != *want {
                    return Err(Trap::host(format!(
                        "host function returned a {} where its type says {want}",
                        val.ty()
                    )));
                }
                let raw = val.to_raw(id).map_err(|e| Trap::host(e.to_string()))?;
                at += write_slots(raw, *want, &mut slots[at..]);
            }
            Ok(())
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
            return Err(Error::usage("function used with a store it does not belong to"));
        }
        Ok(())
    }

    /// This function's type. Panics when given another store.
    pub fn ty(&self, store: impl AsContext) -> FuncType {
        let s = store.as_context();
        assert_eq!(self.store, s.inner.id, "Func used with a store it does not belong to");
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
            if p.ty() != *t {
                return Err(Error::usage(format!("argument {i} has type {}, expected {t}", p.ty())));
            }
            at += write_slots(p.to_raw(store.inner.id)?, *t, &mut slots[at..]);
        }
        crate::interp::call(store, self.index, &mut slots)?;
        let id = store.inner.id;
        let mut at = 0;
        for (i, t) in ty.results().iter().enumerate() {
            results[i] = Val::from_raw(read_slots(&slots[at..], *t), *t, id);
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

impl<P: WasmParams, R: WasmResults> TypedFunc<P, R> {
    pub fn func(&self) -> Func {
        self.func
    }

    pub fn call<T>(&self, mut store: impl AsContextMut<Data = T>, params: P) -> Result<R, Error> {
        let store = store.as_context_mut();
        self.func.check_store(store.inner.id)?;
        let mut slots = [0u64; 16];
        let n = P::COUNT.max(R::COUNT);
        let mut heap;
        let slots: &mut [u64] = if n <= 16 {
            &mut slots[..n]
        } else {
            heap = vec![0u64; n];
            &mut heap
        };
        params.store(slots);
        crate::interp::call(store, self.func.index, slots)?;
        Ok(R::load(slots))
    }
}

/// What a host function sees of its caller: the store (and its data) and the
/// calling instance's exports.
pub struct Caller<'a, T> {
    pub(crate) store: &'a mut Store<T>,
    pub(crate) instance: Option<u32>,
}

impl<'a, T> Caller<'a, T> {
    pub fn data(&self) -> &T {
        self.store.data()
    }

    pub fn data_mut(&mut self) -> &mut T {
        self.store.data_mut()
    }

    /// An export of the calling instance (typically its `memory`).
    pub fn get_export(&self, name: &str) -> Option<Extern> {
        let inst = self.instance?;
        crate::runtime::instance::instance_export(&self.store.inner, inst, name)
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

/// A Rust type that is a WebAssembly value type. Values take one 64-bit slot
/// (two for `u128`, the v128 type), read from and written to the front of a slice.
pub trait WasmTy: Sized {
    const TY: ValType;
    /// Slots a value takes.
    const SLOTS: usize = 1;
    fn load(slots: &[u64]) -> Self;
    fn store(self, slots: &mut [u64]);
}

macro_rules! wasm_ty {
    ($t:ty, $vt:ident, |$r:ident| $from:expr, |$v:ident| $into:expr) => {
        impl WasmTy for $t {
            const TY: ValType = ValType::$vt;
            #[inline]
            fn load(slots: &[u64]) -> Self {
                let $r = slots[0];
                $from
            }
            #[inline]
            fn store(self, slots: &mut [u64]) {
                let $v = self;
                slots[0] = $into;
            }
        }
    };
}

impl WasmTy for u128 {
    const TY: ValType = ValType::V128;
    const SLOTS: usize = 2;
    #[inline]
    fn load(slots: &[u64]) -> Self {
        slots[0] as u128 | (slots[1] as u128) << 64
    }
    #[inline]
    fn store(self, slots: &mut [u64]) {
        slots[0] = self as u64;
        slots[1] = (self >> 64) as u64;
    }
}
wasm_ty!(i32, I32, |r| r as u32 as i32, |v| v as u32 as u64);
wasm_ty!(u32, I32, |r| r as u32, |v| v as u64);
wasm_ty!(i64, I64, |r| r as i64, |v| v as u64);
wasm_ty!(u64, I64, |r| r, |v| v);
wasm_ty!(f32, F32, |r| f32::from_bits(r as u32), |v| v.to_bits() as u64);
wasm_ty!(f64, F64, |r| f64::from_bits(r), |v| v.to_bits());

/// Parameters of a typed call: a value type or a tuple of them.
pub trait WasmParams {
    const COUNT: usize;
    fn types() -> Vec<ValType>;
    fn store(self, slots: &mut [u64]);
}

/// Results of a typed call: a value type or a tuple of them.
pub trait WasmResults: Sized {
    const COUNT: usize;
    fn types() -> Vec<ValType>;
    fn load(slots: &[u64]) -> Self;
}

/// What a host closure may return: results, or `Result<results, Trap>`.
pub trait HostReturn {
    fn types() -> Vec<ValType>;
    fn store(self, slots: &mut [u64]) -> Result<(), Trap>;
}

impl<R: WasmResults + WasmParams> HostReturn for R {
    fn types() -> Vec<ValType> {
        <R as WasmResults>::types()
    }
    fn store(self, slots: &mut [u64]) -> Result<(), Trap> {
        WasmParams::store(self, slots);
        Ok(())
    }
}

impl<R: WasmResults + WasmParams> HostReturn for Result<R, Trap> {
    fn types() -> Vec<ValType> {
        <R as WasmResults>::types()
    }
    fn store(self, slots: &mut [u64]) -> Result<(), Trap> {
        WasmParams::store(self?, slots);
        Ok(())
    }
}

impl<A: WasmTy> WasmParams for A {
    const COUNT: usize = A::SLOTS;
    fn types() -> Vec<ValType> {
        vec![A::TY]
    }
    fn store(self, slots: &mut [u64]) {
        WasmTy::store(self, slots)
    }
}
impl<A: WasmTy> WasmResults for A {
    const COUNT: usize = A::SLOTS;
    fn types() -> Vec<ValType> {
        vec![A::TY]
    }
    fn load(slots: &[u64]) -> Self {
        WasmTy::load(slots)
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

/// A Rust closure usable as a host function.
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
            fn store(self, slots: &mut [u64]) {
                let at: [usize; $n] = slot_offsets([$($a::SLOTS),*]);
                $(WasmTy::store(self.$i, &mut slots[at[$i]..]);)*
            }
        }
        impl<$($a: WasmTy),*> WasmResults for ($($a,)*) {
            const COUNT: usize = 0 $(+ $a::SLOTS)*;
            fn types() -> Vec<ValType> { vec![$($a::TY),*] }
            #[allow(unused_variables, clippy::unused_unit)]
            fn load(slots: &[u64]) -> Self {
                let at: [usize; $n] = slot_offsets([$($a::SLOTS),*]);
                ($(<$a as WasmTy>::load(&slots[at[$i]..]),)*)
            }
        }
        impl<T, F, $($a: WasmTy,)* R: HostReturn> IntoFunc<T, (Caller<'_, T>, $($a,)*), R> for F
        where
            F: Fn(Caller<'_, T>, $($a),*) -> R + Send + Sync + 'static,
        {
            fn into_host_func(self) -> HostFunc<T> {
                let ty = FuncType::new(vec![$($a::TY),*], R::types());
                #[allow(unused_variables)]
                let func = move |caller: Caller<'_, T>, slots: &mut [u64]| -> Result<(), Trap> {
                    let at: [usize; $n] = slot_offsets([$($a::SLOTS),*]);
                    let r = (self)(caller, $(<$a as WasmTy>::load(&slots[at[$i]..])),*);
                    r.store(slots)
                };
                HostFunc { ty, func: Arc::new(func), type_id: None }
            }
        }
        impl<T, F, $($a: WasmTy,)* R: HostReturn> IntoFunc<T, ($($a,)*), R> for F
        where
            F: Fn($($a),*) -> R + Send + Sync + 'static,
        {
            fn into_host_func(self) -> HostFunc<T> {
                let ty = FuncType::new(vec![$($a::TY),*], R::types());
                #[allow(unused_variables)]
                let func = move |_caller: Caller<'_, T>, slots: &mut [u64]| -> Result<(), Trap> {
                    let at: [usize; $n] = slot_offsets([$($a::SLOTS),*]);
                    let r = (self)($(<$a as WasmTy>::load(&slots[at[$i]..])),*);
                    r.store(slots)
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
