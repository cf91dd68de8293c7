//! Our WebAssembly-to-CLIF translator: one validated function body in, one
//! Cranelift function out, compiled to machine code for the host.
//!
//! Why our own: no maintained crate translates wasm to CLIF outside Wasmtime,
//! whose translator is welded to Wasmtime's runtime. Carnac's compiled code must
//! instead read Carnac's own per-instance context block
//! ([`crate::runtime::vmctx`]), the same cells the interpreter reads, and fail
//! with the interpreter's trap kinds, fuel and interrupt points. The shape of
//! the translation follows Wasmtime's (`crates/cranelift/src/translate`): one
//! pass over the operators, a stack of SSA values standing for the operand
//! stack, a stack of control frames, locals as `cranelift_frontend` variables,
//! and no code at all for operators the validator proved unreachable.
//!
//! What each part owns:
//! - this file: the ISA ([`isa`]) for the settings ([`CodegenSettings`],
//!   defined with what else the code depends on in `super::target`), the
//!   result ([`CompiledCode`]), the function's frame (signature, locals, stack
//!   limit) and the operator loop, which hands each operator to the parts below;
//! - `control`: blocks, loops, ifs, branches, returns and calls;
//! - `memory`: linear memories (bounds checks, loads, stores, bulk operations),
//!   globals, tables and references;
//! - `atomic`: the threads proposal's atomic accesses, fence, wait and notify;
//! - `numeric`: scalar integer and float operators;
//! - `simd`: the fixed-width SIMD operators;
//! - `vm`: everything that reads the context block or calls the runtime
//!   (builtins, the interrupt check, fuel).
//!
//! A function with an operator of [`crate::module::interpreted_only`]
//! (exception handling's) is not translated: its code is a stub that runs it
//! in the interpreter (`Translator::interpreter_stub`), so the rest of its
//! module still compiles and calls it directly; standalone code (tiering)
//! refuses such a function, which then stays interpreted.
//!
//! The calling convention every compiled function follows (the contract with
//! the runtime): `CallConv::Tail`, `(vmctx, params...) -> results`, with wasm
//! types mapped by [`clif_type`]; see `trampolines` for how the host calls in.

mod atomic;
mod control;
mod memory;
mod numeric;
mod simd;
#[cfg(test)]
mod tests;
mod vm;

use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::immediates::Offset32;
use cranelift_codegen::ir::{
    self, types, AbiParam, ArgumentPurpose, Function, GlobalValueData, InstBuilder, MemFlagsData, Signature, SourceLoc,
    Type, UserFuncName, Value,
};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa, TargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{binemit::Reloc, Context, FinalizedRelocTarget};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use wasmparser::Operator;

use crate::module::ModuleInfo;
use crate::runtime::vmctx::{header, store_offsets, VMOffsets};
use crate::types::{FuncType, ValType};

use control::Frame;

pub(crate) use super::target::{BoundsChecks, CodegenSettings, Interrupt};

/// The native ISA with the flags compiled code relies on: frame pointers kept
/// (backtraces walk them), no stack probes (each prologue checks the store's
/// stack limit instead), optimised for speed, the verifier on in debug builds.
/// The settings do not change the ISA today; they are taken so that a future
/// setting that does (say, a Spectre mitigation) has a place.
pub(crate) fn isa(settings: &CodegenSettings) -> Result<OwnedTargetIsa, String> {
    build_isa(settings, cfg!(debug_assertions))
}

pub(super) fn build_isa(_settings: &CodegenSettings, verify: bool) -> Result<OwnedTargetIsa, String> {
    let mut flags = settings::builder();
    let set = |flags: &mut settings::Builder, name: &str, value: &str| {
        flags.set(name, value).map_err(|e| format!("cranelift setting {name}={value}: {e}"))
    };
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "preserve_frame_pointers", "true")?;
    set(&mut flags, "enable_probestack", "false")?;
    set(&mut flags, "enable_verifier", if verify { "true" } else { "false" })?;
    // Functions returning many values return the rest through memory.
    set(&mut flags, "enable_multi_ret_implicit_sret", "true")?;
    let builder = cranelift_native::builder().map_err(|e| format!("no Cranelift backend for this host: {e}"))?;
    let isa = builder.finish(settings::Flags::new(flags)).map_err(|e| format!("cannot build the host ISA: {e}"))?;
    if isa.pointer_type() != types::I64 {
        return Err("the compiled tier needs a 64-bit host".into());
    }
    if isa.name() == "x64" && !isa.has_x86_pshufb_lowering() {
        // `i8x16.swizzle` and `i8x16.shuffle` would otherwise need libcalls.
        return Err("the compiled tier needs SSSE3 on x86-64".into());
    }
    if !isa.has_round() {
        // Without it Cranelift lowers `ceil` & co. to libcalls, which the code
        // memory does not link.
        return Err("the compiled tier needs SSE4.1 on x86-64".into());
    }
    Ok(isa)
}

/// A relocation in a compiled function: a call to defined function `def_index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Relocation {
    /// Where the relocation applies, from the start of the function's code.
    pub offset: u32,
    pub kind: Reloc,
    pub def_index: u32,
    pub addend: i64,
}

/// A function's machine code and what the runtime needs to place and run it.
#[derive(Debug, Clone)]
pub(crate) struct CompiledCode {
    pub bytes: Vec<u8>,
    /// Calls to other defined functions of the module, to link.
    pub relocs: Vec<Relocation>,
    /// Each trapping instruction: its offset in `bytes` and its code (see `trap_codes`).
    pub traps: Vec<(u32, ir::TrapCode)>,
    /// Which wasm operator each range of the code comes from: `(start, end,
    /// wasm offset)`, code offsets from the start of `bytes`, the wasm offset in
    /// the module's bytes; sorted by `start`.
    pub srclocs: Vec<(u32, u32, u32)>,
    /// The alignment the code wants in memory.
    pub alignment: u32,
}

/// The Cranelift type of a wasm value type: references are their raw `u64`
/// (a store index plus one, 0 for null); a v128 is `I8X16` (its canonical
/// vector type; operators bitcast to the lane type they need).
pub(crate) fn clif_type(ty: &ValType) -> Type {
    match ty {
        ValType::I32 => types::I32,
        ValType::I64 | ValType::Ref(_) => types::I64,
        ValType::F32 => types::F32,
        ValType::F64 => types::F64,
        ValType::V128 => types::I8X16,
    }
}

/// The signature of a compiled function of type `ty`: `(vmctx, params...) -> results`.
pub(crate) fn wasm_signature(ty: &FuncType, pointer_type: Type) -> Signature {
    let mut sig = Signature::new(CallConv::Tail);
    sig.params.push(AbiParam::special(pointer_type, ArgumentPurpose::VMContext));
    sig.params.extend(ty.params().iter().map(|t| AbiParam::new(clif_type(t))));
    sig.returns.extend(ty.results().iter().map(|t| AbiParam::new(clif_type(t))));
    sig
}

/// The signature of an on-stack-replacement entry of a function of type `ty`
/// (see [`Placement::OsrEntry`]): `(vmctx, frame: *const u64) -> results`.
pub(crate) fn osr_signature(ty: &FuncType, pointer_type: Type) -> Signature {
    let mut sig = Signature::new(CallConv::Tail);
    sig.params.push(AbiParam::special(pointer_type, ArgumentPurpose::VMContext));
    sig.params.push(AbiParam::new(pointer_type));
    sig.returns.extend(ty.results().iter().map(|t| AbiParam::new(clif_type(t))));
    sig
}

/// Where compiled code will live, which decides how it calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// With the rest of the module's code: calls to defined functions are
    /// direct, pc-relative, linked when the module is laid out.
    InModule,
    /// Apart from the module's code (automatic tiering compiles hot
    /// functions one by one): calls to defined functions go through the
    /// store's function references, as calls to imports do, so they reach
    /// each callee's code if it has some by then and the interpreter
    /// otherwise. Needs no linking.
    Standalone,
    /// An on-stack-replacement entry, standalone: a function of signature
    /// [`osr_signature`] that takes the interpreter's frame (its locals, one
    /// 8-byte slot each, two for a v128, as `interp::translate` lays them
    /// out), starts at the header of the loop at this wasm offset and runs the
    /// rest of the body. The loop must take no parameters and have an empty
    /// operand stack around it (what the interpreter's `OsrPoint` promises).
    OsrEntry(u32),
}

/// Reusable compilation contexts (one per compiling thread).
pub(crate) struct FuncCompiler {
    ctx: Context,
    builder_ctx: FunctionBuilderContext,
}

impl FuncCompiler {
    pub(crate) fn new() -> FuncCompiler {
        FuncCompiler { ctx: Context::new(), builder_ctx: FunctionBuilderContext::new() }
    }

    /// Compiles defined function `def_index` of a validated module.
    pub(crate) fn compile_function(
        &mut self,
        isa: &dyn TargetIsa,
        info: &ModuleInfo,
        settings: &CodegenSettings,
        def_index: u32,
        body: wasmparser::FunctionBody<'_>,
    ) -> Result<CompiledCode, String> {
        self.compile(isa, info, settings, def_index, body, Placement::InModule)
    }

    /// Compiles defined function `def_index` of a validated module, placed
    /// as `placement` says.
    pub(crate) fn compile(
        &mut self,
        isa: &dyn TargetIsa,
        info: &ModuleInfo,
        settings: &CodegenSettings,
        def_index: u32,
        body: wasmparser::FunctionBody<'_>,
        placement: Placement,
    ) -> Result<CompiledCode, String> {
        let (osr, standalone) = match placement {
            Placement::InModule => (None, false),
            Placement::Standalone => (None, true),
            Placement::OsrEntry(at) => (Some(at), true),
        };
        self.ctx.clear();
        let func_index = info.num_imported_funcs + def_index;
        let ty = info.func_type(func_index);
        let ptr = isa.pointer_type();
        let signature = match osr {
            None => wasm_signature(ty, ptr),
            Some(_) => osr_signature(ty, ptr),
        };
        self.ctx.func = Function::with_name_signature(UserFuncName::user(0, def_index), signature);
        set_stack_limit(&mut self.ctx.func, ptr);
        let mut builder = FunctionBuilder::new(&mut self.ctx.func, &mut self.builder_ctx);
        let interpreted = crate::module::body_interpreted_only(&body, ty, &info.heap_types);
        if interpreted && placement != Placement::InModule {
            return Err(format!("function {func_index}: runs in the interpreter (see `module::interpreted_only`)"));
        }
        let mut t = Translator::new(isa, info, settings, &mut builder, ty);
        t.osr = osr.map(|at| (None, at));
        t.standalone = standalone;
        let translated = if interpreted { t.interpreter_stub(def_index) } else { t.translate_body(&body) };
        if let Err(e) = translated {
            // The builder's context is left mid-function: start the next one afresh.
            self.builder_ctx = FunctionBuilderContext::new();
            return Err(format!("function {func_index}: {e}"));
        }
        builder.finalize(isa.frontend_config());
        let func_name = |e| format!("function {func_index}: {e}");
        self.ctx
            .compile(isa, &mut ControlPlane::default())
            .map_err(|e| func_name(cranelift_codegen::print_errors::pretty_error(e.func, e.inner)))?;
        let code = self.ctx.compiled_code().expect("compiled above");
        let names = self.ctx.func.params.user_named_funcs();
        let buffer = &code.buffer;
        let relocs = buffer
            .relocs()
            .iter()
            .map(|r| match &r.target {
                FinalizedRelocTarget::ExternalName(ir::ExternalName::User(name)) => {
                    Ok(Relocation { offset: r.offset, kind: r.kind, def_index: names[*name].index, addend: r.addend })
                }
                other => Err(func_name(format!("unexpected relocation target {other:?}"))),
            })
            .collect::<Result<_, _>>()?;
        Ok(CompiledCode {
            bytes: code.code_buffer().to_vec(),
            relocs,
            traps: buffer.traps().iter().map(|t| (t.offset, t.code)).collect(),
            srclocs: buffer
                .get_srclocs_sorted()
                .iter()
                .filter(|s| !s.loc.is_default())
                .map(|s| (s.start, s.end, s.loc.bits()))
                .collect(),
            alignment: buffer.alignment.max(isa.function_alignment().preferred),
        })
    }
}

/// Compiles defined function `def_index` of a validated module with fresh
/// contexts (see [`FuncCompiler`] to reuse them).
#[allow(dead_code)] // The integration calls it (or `FuncCompiler`) when it compiles modules.
pub(crate) fn compile_function(
    isa: &dyn TargetIsa,
    info: &ModuleInfo,
    settings: &CodegenSettings,
    def_index: u32,
    body: wasmparser::FunctionBody<'_>,
) -> Result<CompiledCode, String> {
    FuncCompiler::new().compile_function(isa, info, settings, def_index, body)
}

/// The prologue's stack check: `vmctx -> store -> stack_limit`, loaded before
/// the frame is set up; below it, Cranelift's prologue traps with `STACK_OVERFLOW`.
fn set_stack_limit(func: &mut Function, ptr: Type) {
    let flags = func.dfg.mem_flags.insert_unchecked(MemFlagsData::trusted().with_readonly());
    let vmctx = func.create_global_value(GlobalValueData::VMContext);
    let store = func.create_global_value(GlobalValueData::Load {
        base: vmctx,
        offset: header::STORE.into(),
        global_type: ptr,
        flags,
    });
    let limit = func.create_global_value(GlobalValueData::Load {
        base: store,
        offset: Offset32::new(store_offsets::STACK_LIMIT),
        global_type: ptr,
        flags,
    });
    func.stack_limit = Some(limit);
}

/// How the interpreter holds an operand it has not written to a slot yet (it
/// reads locals and constants in place): branches carrying such operands need
/// moves, which start a new fuel block there (see `vm`). Tracked for fuel only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lazy {
    No,
    Local(u32),
    Const,
}

/// The state of one function's translation.
pub(super) struct Translator<'a, 'b> {
    isa: &'a dyn TargetIsa,
    info: &'a ModuleInfo,
    settings: &'a CodegenSettings,
    offsets: VMOffsets,
    b: &'a mut FunctionBuilder<'b>,
    ptr: Type,
    /// The function's own context block (its first parameter).
    vmctx: Value,
    /// The operand stack, and beside it how the interpreter holds each operand.
    stack: Vec<Value>,
    lazy: Vec<Lazy>,
    control: Vec<Frame>,
    /// False after an unconditional branch until the end of its frame: the
    /// operators in between are not translated.
    reachable: bool,
    locals: Vec<(Variable, ValType)>,
    params: &'a [ValType],
    results: &'a [ValType],
    vm: vm::VmState,
    /// Signatures and callees imported into the function, for reuse.
    signatures: std::collections::HashMap<FuncType, ir::SigRef>,
    callees: std::collections::HashMap<u32, ir::FuncRef>,
    /// For an on-stack-replacement entry: the block the entry jumps through
    /// (made once the frame is loaded) and the wasm offset of the loop it
    /// must reach; `None` once linked to the loop's header.
    osr: Option<(Option<ir::Block>, u32)>,
    /// Whether the code stands apart from the module's (calls to defined
    /// functions go through the store's function references).
    standalone: bool,
    /// The wasm offset of the operator being translated.
    op_offset: u32,
}

impl<'a, 'b> Translator<'a, 'b> {
    fn new(
        isa: &'a dyn TargetIsa,
        info: &'a ModuleInfo,
        settings: &'a CodegenSettings,
        b: &'a mut FunctionBuilder<'b>,
        ty: &'a FuncType,
    ) -> Self {
        let vm = vm::VmState::new(b.func);
        Translator {
            isa,
            info,
            settings,
            offsets: VMOffsets::new(info),
            ptr: isa.pointer_type(),
            b,
            vmctx: Value::from_u32(0),
            stack: Vec::new(),
            lazy: Vec::new(),
            control: Vec::new(),
            reachable: true,
            locals: Vec::new(),
            params: ty.params(),
            results: ty.results(),
            vm,
            signatures: Default::default(),
            callees: Default::default(),
            osr: None,
            standalone: false,
            op_offset: 0,
        }
    }

    /// Starts the function's entry block; returns its parameters (the
    /// context block's pointer first, then the wasm parameters).
    fn entry_block(&mut self) -> Vec<Value> {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.switch_to_block(entry);
        self.b.seal_block(entry);
        let params: Vec<Value> = self.b.block_params(entry).to_vec();
        self.vmctx = params[0];
        params
    }

    fn translate_body(&mut self, body: &wasmparser::FunctionBody<'_>) -> Result<(), String> {
        let params = self.entry_block();

        let osr = self.osr.is_some();
        let mut local_types: Vec<ValType> = self.params.to_vec();
        let mut locals = body.get_locals_reader().map_err(|e| e.to_string())?;
        for _ in 0..locals.get_count() {
            let (count, ty) = locals.read().map_err(|e| e.to_string())?;
            let ty = ValType::from_wasmparser(ty, &self.info.heap_types)?;
            // The validator bounds the number of locals (50,000).
            local_types.extend(std::iter::repeat_n(ty, count as usize));
        }
        if osr {
            // Every local from the interpreter's frame, then on to the loop
            // (through a block linked once the loop's header exists).
            let frame = params[1];
            let flags = MemFlagsData::trusted().with_endianness(ir::Endianness::Little);
            let mut slot = 0i32;
            for ty in &local_types {
                let var = self.b.declare_var(clif_type(ty));
                let v = self.b.ins().load(clif_type(ty), flags, frame, slot * 8);
                self.b.def_var(var, v);
                self.locals.push((var, ty.clone()));
                slot += 1 + (*ty == ValType::V128) as i32;
            }
            let link = self.b.create_block();
            self.b.ins().jump(link, &[]);
            self.osr = self.osr.map(|(_, at)| (Some(link), at));
            // The function's own start follows, unreachable: it is translated
            // only to give the loop its enclosing frames (Cranelift drops it).
            let start = self.b.create_block();
            self.b.switch_to_block(start);
            self.b.seal_block(start);
            for (var, ty) in self.locals.clone() {
                let zero = self.zero(&ty);
                self.b.def_var(var, zero);
            }
        } else {
            // Locals: the parameters, then the declared ones, zero-initialised.
            for (i, ty) in local_types.iter().enumerate() {
                let var = self.b.declare_var(clif_type(ty));
                let v = if i < self.params.len() { params[i + 1] } else { self.zero(ty) };
                self.b.def_var(var, v);
                self.locals.push((var, ty.clone()));
            }
        }

        let mut reader = body.get_operators_reader().map_err(|e| e.to_string())?;
        self.b.set_srcloc(SourceLoc::new(reader.original_position() as u32));
        self.push_function_frame();
        self.start_fuel_block();
        self.interrupt_check();
        while !reader.eof() {
            let (op, offset) = reader.read_with_offset().map_err(|e| e.to_string())?;
            self.b.set_srcloc(SourceLoc::new(offset as u32));
            self.op_offset = offset as u32;
            // As in the interpreter: a relaxed SIMD instruction is translated as
            // the instruction whose result Carnac gives for it (`module::relaxed`).
            let op = crate::module::relaxed::deterministic(&op).unwrap_or(op);
            self.operator(&op).map_err(|e| format!("{e} (at offset {offset:#x})"))?;
        }
        reader.finish().map_err(|e| e.to_string())?;
        self.close_fuel_block();
        if let Some((_, at)) = self.osr {
            return Err(format!("no reachable loop without parameters at offset {at:#x} to enter"));
        }
        Ok(())
    }

    /// The compiled code of a function that runs in the interpreter
    /// ([`crate::module::interpreted_only`]): it passes its arguments to the
    /// `call_interpreted` builtin in slots and returns the results it leaves
    /// there; a trap or exception is pending when the builtin fails.
    fn interpreter_stub(&mut self, def_index: u32) -> Result<(), String> {
        let params = self.entry_block();
        let (param_types, result_types) = (self.params, self.results);
        let raw_slots = |t: &[ValType]| t.iter().map(ValType::slots).sum::<usize>();
        let n = raw_slots(param_types).max(raw_slots(result_types));
        let slots = self.call_slots(n);
        for ((t, &v), at) in param_types.iter().zip(&params[1..]).zip(super::trampolines::raw_offsets(param_types)) {
            super::trampolines::store_raw(self.b, t, v, slots, at);
        }
        let index = self.b.ins().iconst(types::I32, def_index as i64);
        self.call_builtin_checked(vm::Builtin::CallInterpreted, &[index, slots]);
        let results: Vec<Value> = (result_types.iter().zip(super::trampolines::raw_offsets(result_types)))
            .map(|(t, at)| super::trampolines::load_raw(self.b, t, slots, at))
            .collect();
        self.b.ins().return_(&results);
        Ok(())
    }

    /// Translates one operator (or, in unreachable code, only follows its block structure).
    fn operator(&mut self, op: &Operator<'_>) -> Result<(), String> {
        if !self.reachable {
            self.unreachable_operator(op);
            return Ok(());
        }
        self.charge_fuel();
        if self.control_operator(op)?
            || self.memory_operator(op)?
            || self.numeric_operator(op)
            || self.atomic_operator(op)?
            || self.simd_operator(op)?
        {
            return Ok(());
        }
        Err(format!("unsupported operator {}", crate::module::operator_text(op)))
    }

    // ---- the operand stack ----

    fn push(&mut self, v: Value) {
        self.stack.push(v);
        self.lazy.push(Lazy::No);
    }

    fn push_lazy(&mut self, v: Value, lazy: Lazy) {
        self.stack.push(v);
        self.lazy.push(lazy);
    }

    fn pop(&mut self) -> Value {
        self.lazy.pop();
        self.stack.pop().expect("validated: operand stack underflow")
    }

    fn pop2(&mut self) -> (Value, Value) {
        let b = self.pop();
        let a = self.pop();
        (a, b)
    }

    fn pop3(&mut self) -> (Value, Value, Value) {
        let c = self.pop();
        let (a, b) = self.pop2();
        (a, b, c)
    }

    fn popn(&mut self, n: usize) -> Vec<Value> {
        let at = self.stack.len() - n;
        self.lazy.truncate(at);
        self.stack.split_off(at)
    }

    fn peekn(&self, n: usize) -> &[Value] {
        &self.stack[self.stack.len() - n..]
    }

    fn truncate(&mut self, height: usize) {
        self.stack.truncate(height);
        self.lazy.truncate(height);
    }

    // ---- small helpers shared by the parts ----

    fn iconst(&mut self, ty: Type, v: i64) -> Value {
        self.b.ins().iconst(ty, v)
    }

    /// The zero of a value type (locals start as it).
    fn zero(&mut self, ty: &ValType) -> Value {
        match ty {
            ValType::F32 => self.b.ins().f32const(0.0),
            ValType::F64 => self.b.ins().f64const(0.0),
            ValType::V128 => {
                let c = self.b.func.dfg.constants.insert(vec![0u8; 16].into());
                self.b.ins().vconst(types::I8X16, c)
            }
            _ => self.iconst(clif_type(ty), 0),
        }
    }

    /// `v` as vector type `ty` (a no-op bitcast when its CLIF type differs;
    /// wasm's one v128 type is several CLIF types).
    fn as_vector(&mut self, v: Value, ty: Type) -> Value {
        if self.b.func.dfg.value_type(v) == ty {
            v
        } else {
            self.b.ins().bitcast(ty, vector_flags(), v)
        }
    }

    /// `v` as the canonical type of its wasm type (vectors as `I8X16`): what
    /// locals, globals, block parameters, calls and returns hold.
    fn canonical(&mut self, v: Value) -> Value {
        if self.b.func.dfg.value_type(v).is_vector() {
            self.as_vector(v, types::I8X16)
        } else {
            v
        }
    }

    fn canonical_all(&mut self, values: &[Value]) -> Vec<Value> {
        values.iter().map(|&v| self.canonical(v)).collect()
    }

    /// The function type of a block type.
    fn block_type(&self, ty: wasmparser::BlockType) -> (Vec<ValType>, Vec<ValType>) {
        match ty {
            wasmparser::BlockType::Empty => (Vec::new(), Vec::new()),
            wasmparser::BlockType::Type(t) => (
                Vec::new(),
                vec![ValType::from_wasmparser(t, &self.info.heap_types).expect("validated: a known value type")],
            ),
            wasmparser::BlockType::FuncType(i) => {
                let ft = &self.info.types[i as usize];
                (ft.params().to_vec(), ft.results().to_vec())
            }
        }
    }
}

/// The flags of a bitcast between vector types (lanes are little-endian, as in wasm).
fn vector_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(ir::Endianness::Little)
}
