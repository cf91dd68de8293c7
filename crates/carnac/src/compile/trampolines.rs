//! How the host calls compiled code, and how values cross between the two.
//!
//! Why: compiled functions use Cranelift's `Tail` convention with values in
//! registers, which Rust cannot call; the host and the interpreter pass values
//! as raw 64-bit slots (see [`crate::runtime::vmctx`]: i32 zero-extended,
//! floats as bits, v128 in two slots, low half first, references as store
//! index + 1). An array-to-wasm trampoline is a small compiled function, one
//! per function type, with the platform's C convention:
//!
//! ```text
//! extern "C" fn(wasm_call: *const u8, vmctx: *mut VMContext, slots: *mut u64)
//! ```
//!
//! It loads the parameters from `slots`, calls `wasm_call` with `vmctx`, and
//! writes the results back into `slots` (which has room for the larger of the
//! two). The same slot layout is what compiled code hands the
//! `call_store_func` builtin ([`store_raw`], [`load_raw`]).

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{
    self, types, AbiParam, Function, InstBuilder, MemFlagsData, Signature, UserFuncName, Value,
};
use cranelift_codegen::isa::TargetIsa;
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

use super::translate::{clif_type, wasm_signature, CompiledCode};
use crate::types::{FuncType, ValType};

/// The byte offset of each value's first slot, for values of `types` laid out in order.
pub(crate) fn raw_offsets(types: &[ValType]) -> impl Iterator<Item = i32> + '_ {
    types.iter().scan(0i32, |at, t| {
        let here = *at;
        *at += 8 * t.slots() as i32;
        Some(here)
    })
}

/// Flags for the slots: in bounds and aligned to 8 (the slots are `u64`s).
fn slot_flags() -> MemFlagsData {
    MemFlagsData::trusted().with_endianness(ir::Endianness::Little)
}

/// Writes `v` (of wasm type `ty`) into the slots at `base + offset`, in the raw layout.
pub(crate) fn store_raw(b: &mut FunctionBuilder<'_>, ty: &ValType, v: Value, base: Value, offset: i32) {
    let v = match ty {
        ValType::I32 => b.ins().uextend(types::I64, v),
        ValType::F32 => {
            let bits = b.ins().bitcast(types::I32, MemFlagsData::new(), v);
            b.ins().uextend(types::I64, bits)
        }
        _ => v,
    };
    b.ins().store(slot_flags(), v, base, offset);
}

/// Reads a value of wasm type `ty` from the slots at `base + offset`.
pub(crate) fn load_raw(b: &mut FunctionBuilder<'_>, ty: &ValType, base: Value, offset: i32) -> Value {
    b.ins().load(clif_type(ty), slot_flags(), base, offset)
}

/// Compiles the array-to-wasm trampoline for functions of type `ty`.
pub(crate) fn compile_array_to_wasm_trampoline(isa: &dyn TargetIsa, ty: &FuncType) -> Result<CompiledCode, String> {
    let ptr = isa.pointer_type();
    let mut sig = Signature::new(isa.default_call_conv());
    sig.params.extend([AbiParam::new(ptr), AbiParam::new(ptr), AbiParam::new(ptr)]);
    let mut ctx = Context::for_function(Function::with_name_signature(UserFuncName::default(), sig));
    let mut builder_ctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut builder_ctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    b.seal_block(entry);
    let (wasm_call, vmctx, slots) = {
        let p = b.block_params(entry);
        (p[0], p[1], p[2])
    };
    let mut args = vec![vmctx];
    for (t, at) in ty.params().iter().zip(raw_offsets(ty.params())) {
        args.push(load_raw(&mut b, t, slots, at));
    }
    let callee_sig = b.import_signature(wasm_signature(ty, ptr));
    let call = b.ins().call_indirect(callee_sig, wasm_call, &args);
    let results = b.inst_results(call).to_vec();
    for ((t, v), at) in ty.results().iter().zip(results).zip(raw_offsets(ty.results())) {
        store_raw(&mut b, t, v, slots, at);
    }
    b.ins().return_(&[]);
    b.finalize(isa.frontend_config());
    let code = ctx.compile(isa, &mut ControlPlane::default()).map_err(|e| {
        format!("trampoline for {ty}: {}", cranelift_codegen::print_errors::pretty_error(e.func, e.inner))
    })?;
    let buffer = &code.buffer;
    Ok(CompiledCode {
        bytes: code.code_buffer().to_vec(),
        relocs: Vec::new(),
        traps: buffer.traps().iter().map(|t| (t.offset, t.code)).collect(),
        srclocs: Vec::new(),
        alignment: buffer.alignment.max(isa.function_alignment().minimum),
    })
}
