//! Control flow: blocks, loops, ifs, branches, returns and calls.
//!
//! Each wasm block, loop and if is a control frame; its results (a loop's
//! parameters, for branches to it) become parameters of the CLIF block that
//! follows it (its header), so values flow along branches as block arguments.
//! After an unconditional branch the rest of the frame is unreachable: nothing
//! is translated until its `end` (or the `else`), and the code after the frame
//! is translated only when something branches to it.
//!
//! Calls: a defined function is called directly (the runtime links the call);
//! an imported function, or a `call_indirect` target, through its function
//! reference: its native code when it has some, else the `call_store_func`
//! builtin with the values in slots (host and interpreted functions).
//! Tail calls (`return_call`, `return_call_indirect`) take the same paths
//! as `return_call` and `return_call_indirect` instructions, which replace the
//! caller's frame; a callee without native code is an ordinary call through
//! the builtin followed by a return.
//!
//! Typed function references: `call_ref`/`return_call_ref` call through the
//! reference's function reference as `call_indirect` does, with a null check
//! and no signature check (validation guarantees the type); `br_on_null` and
//! `br_on_non_null` are `br_if`s on the reference, `ref.as_non_null` a null
//! check. None of them changes the code of a function that does not use them.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    self, types, Block, BlockArg, ExtFuncData, ExternalName, FuncRef, InstBuilder, JumpTableData, SigRef,
    UserExternalName, Value,
};
use wasmparser::Operator;

use super::vm::Builtin;
use super::{clif_type, wasm_signature, Lazy, Translator};
use crate::compile::trampolines::{load_raw, raw_offsets, store_raw};
use crate::compile::trap_codes::clif::{
    BAD_SIGNATURE, INDIRECT_CALL_TO_NULL, NULL_FUNCTION_REFERENCE, NULL_REFERENCE, TRAP_PENDING_TAIL, UNREACHABLE,
};
use crate::runtime::vmctx::{field, header, store_offsets};
use crate::types::{FuncType, ValType};

#[derive(Debug)]
pub(super) enum FrameKind {
    /// The function body; `next` is its return block.
    Function,
    Block,
    Loop {
        header: Block,
    },
    If {
        /// Where the condition goes when false: the else arm, or a jump to
        /// `next` with the parameters when there is none.
        else_block: Block,
        /// The if's parameters, for the else arm.
        params: Vec<Value>,
        else_seen: bool,
    },
    /// A block, loop or if inside unreachable code: only its `end` matters.
    Dead,
}

#[derive(Debug)]
pub(super) struct Frame {
    pub kind: FrameKind,
    /// The code after the frame, with the frame's results as parameters.
    next: Block,
    num_params: usize,
    num_results: usize,
    /// The operand stack's height below the frame's parameters.
    height: usize,
    /// Whether anything jumps to `next`.
    exit_reached: bool,
}

impl Frame {
    /// Where a branch to this frame goes, and how many values it carries.
    fn branch_target(&self) -> (Block, usize) {
        match self.kind {
            FrameKind::Loop { header } => (header, self.num_params),
            _ => (self.next, self.num_results),
        }
    }
}

impl Translator<'_, '_> {
    /// A new block with parameters of the given wasm types.
    fn block_with_params(&mut self, types: &[ValType]) -> Block {
        let block = self.b.create_block();
        for t in types {
            self.b.append_block_param(block, clif_type(t));
        }
        block
    }

    /// `values`, canonicalised, as block arguments.
    fn block_args(&mut self, values: &[Value]) -> Vec<BlockArg> {
        values.iter().map(|&v| BlockArg::Value(self.canonical(v))).collect()
    }

    fn jump(&mut self, block: Block, values: &[Value]) {
        let args = self.block_args(values);
        self.b.ins().jump(block, &args);
    }

    /// Switches to `block` and pushes its parameters as operands.
    fn enter_with_params(&mut self, block: Block) {
        self.b.switch_to_block(block);
        let params: Vec<Value> = self.b.block_params(block).to_vec();
        for v in params {
            self.push(v);
        }
    }

    pub(super) fn push_function_frame(&mut self) {
        let results = self.results;
        let next = self.block_with_params(results);
        self.control.push(Frame {
            kind: FrameKind::Function,
            next,
            num_params: 0,
            num_results: results.len(),
            height: 0,
            exit_reached: false,
        });
    }

    fn frame_index(&self, relative_depth: u32) -> usize {
        self.control.len() - 1 - relative_depth as usize
    }

    /// Operators of the control part; false if `op` belongs to another part.
    pub(super) fn control_operator(&mut self, op: &Operator<'_>) -> Result<bool, String> {
        match *op {
            Operator::Nop => {}
            Operator::Unreachable => {
                self.b.ins().trap(UNREACHABLE);
                self.reachable = false;
            }
            Operator::Block { blockty } => {
                let (params, results) = self.block_type(blockty);
                self.materialize_all();
                let next = self.block_with_params(&results);
                let height = self.stack.len() - params.len();
                self.control.push(Frame {
                    kind: FrameKind::Block,
                    next,
                    num_params: params.len(),
                    num_results: results.len(),
                    height,
                    exit_reached: false,
                });
            }
            Operator::Loop { blockty } => {
                let (params, results) = self.block_type(blockty);
                self.materialize_all();
                let header = self.block_with_params(&params);
                let next = self.block_with_params(&results);
                let args = self.popn(params.len());
                self.jump(header, &args);
                if let Some((Some(link), at)) = self.osr {
                    if at == self.op_offset && params.is_empty() && self.stack.is_empty() {
                        // The on-stack-replacement entry arrives here, its locals loaded.
                        self.b.switch_to_block(link);
                        self.b.seal_block(link);
                        self.b.ins().jump(header, &[]);
                        self.osr = None;
                    }
                }
                let height = self.stack.len();
                self.control.push(Frame {
                    kind: FrameKind::Loop { header },
                    next,
                    num_params: params.len(),
                    num_results: results.len(),
                    height,
                    exit_reached: false,
                });
                self.enter_with_params(header);
                self.start_fuel_block();
                self.interrupt_check();
            }
            Operator::If { blockty } => {
                let (params, results) = self.block_type(blockty);
                let cond = self.pop();
                self.materialize_all();
                let then_block = self.b.create_block();
                let else_block = self.b.create_block();
                let next = self.block_with_params(&results);
                self.b.ins().brif(cond, then_block, &[], else_block, &[]);
                self.b.seal_block(then_block);
                self.b.seal_block(else_block);
                self.b.switch_to_block(then_block);
                let height = self.stack.len() - params.len();
                let params_values = self.peekn(params.len()).to_vec();
                self.control.push(Frame {
                    kind: FrameKind::If { else_block, params: params_values, else_seen: false },
                    next,
                    num_params: params.len(),
                    num_results: results.len(),
                    height,
                    exit_reached: false,
                });
                self.start_fuel_block();
            }
            Operator::Else => self.else_(),
            Operator::End => self.end(),
            Operator::Br { relative_depth } => {
                let i = self.frame_index(relative_depth);
                let (target, arity) = self.control[i].branch_target();
                self.control[i].exit_reached = true;
                let args = self.peekn(arity).to_vec();
                self.jump(target, &args);
                self.reachable = false;
            }
            Operator::BrIf { relative_depth } => {
                let cond = self.pop();
                self.branch_if(relative_depth, cond, true);
            }
            Operator::BrTable { ref targets } => {
                let index = self.pop();
                let mut depths = Vec::with_capacity(targets.len() as usize + 1);
                for t in targets.targets() {
                    depths.push(t.map_err(|e| e.to_string())?);
                }
                let default = targets.default();
                // Every target takes the same number of values (validation).
                let arity = self.control[self.frame_index(default)].branch_target().1;
                let mut edge_blocks: Vec<(u32, Block)> = Vec::new();
                let mut call_for = |t: &mut Self, depth: u32| {
                    let i = t.frame_index(depth);
                    t.control[i].exit_reached = true;
                    let block = if arity == 0 {
                        t.control[i].branch_target().0
                    } else if let Some(&(_, b)) = edge_blocks.iter().find(|(d, _)| *d == depth) {
                        b
                    } else {
                        // A branch table passes no arguments: each target
                        // with values gets a block that jumps on with them.
                        let b = t.b.create_block();
                        edge_blocks.push((depth, b));
                        b
                    };
                    t.b.func.dfg.block_call(block, &[])
                };
                let calls: Vec<_> = depths.iter().map(|&d| call_for(self, d)).collect();
                let default_call = call_for(self, default);
                let table = self.b.create_jump_table(JumpTableData::new(default_call, &calls));
                self.b.ins().br_table(index, table);
                let args = self.peekn(arity).to_vec();
                for (depth, block) in edge_blocks {
                    self.b.switch_to_block(block);
                    self.b.seal_block(block);
                    let target = self.control[self.frame_index(depth)].branch_target().0;
                    self.jump(target, &args);
                }
                self.reachable = false;
            }
            Operator::Return => {
                let values = self.peekn(self.results.len()).to_vec();
                let values = self.canonical_all(&values);
                self.b.ins().return_(&values);
                self.reachable = false;
            }
            Operator::Call { function_index } => {
                let ty = self.info.func_type(function_index);
                let args = self.popn(ty.params().len());
                let results = if function_index >= self.info.num_imported_funcs {
                    self.call_defined(function_index - self.info.num_imported_funcs, ty, &args)
                } else {
                    let at = self.offsets.imported_func(function_index);
                    let func_ref = self.b.ins().iadd_imm_u(self.vmctx, at as i64);
                    self.call_func_ref(func_ref, ty, &args, true)
                };
                for v in results {
                    self.push(v);
                }
            }
            Operator::CallIndirect { type_index, table_index } => {
                if self.table64(table_index) {
                    // An i64 index (table64): 2^32 or more is out of bounds.
                    self.narrow_table_operand(0, false);
                }
                let index = self.pop();
                let ty = &self.info.types[type_index as usize];
                let args = self.popn(ty.params().len());
                let func_ref = self.indirect_func_ref(table_index, type_index, index);
                let results = self.call_func_ref(func_ref, ty, &args, false);
                for v in results {
                    self.push(v);
                }
            }
            // Tail calls (WebAssembly 3.0): Cranelift's `return_call`s, which
            // replace this frame (both sides use `CallConv::Tail`).
            Operator::ReturnCall { function_index } => {
                let ty = self.info.func_type(function_index);
                let args = self.popn(ty.params().len());
                if function_index >= self.info.num_imported_funcs {
                    self.return_call_defined(function_index - self.info.num_imported_funcs, ty, &args);
                } else {
                    let at = self.offsets.imported_func(function_index);
                    let func_ref = self.b.ins().iadd_imm_u(self.vmctx, at as i64);
                    self.return_call_func_ref(func_ref, ty, &args, true);
                }
                self.reachable = false;
            }
            Operator::ReturnCallIndirect { type_index, table_index } => {
                if self.table64(table_index) {
                    // An i64 index (table64): 2^32 or more is out of bounds.
                    self.narrow_table_operand(0, false);
                }
                let index = self.pop();
                let ty = &self.info.types[type_index as usize];
                let args = self.popn(ty.params().len());
                let func_ref = self.indirect_func_ref(table_index, type_index, index);
                self.return_call_func_ref(func_ref, ty, &args, false);
                self.reachable = false;
            }
            // Typed function references: a reference is its function's store
            // index + 1, null 0; its type is the validator's (no signature check).
            Operator::CallRef { type_index } => {
                let raw = self.pop();
                let ty = &self.info.types[type_index as usize];
                let args = self.popn(ty.params().len());
                let func_ref = self.typed_func_ref(raw);
                let results = self.call_func_ref(func_ref, ty, &args, false);
                for v in results {
                    self.push(v);
                }
            }
            Operator::ReturnCallRef { type_index } => {
                let raw = self.pop();
                let ty = &self.info.types[type_index as usize];
                let args = self.popn(ty.params().len());
                let func_ref = self.typed_func_ref(raw);
                self.return_call_func_ref(func_ref, ty, &args, false);
                self.reachable = false;
            }
            Operator::RefAsNonNull => {
                self.top_const_to_slot();
                let v = self.peekn(1)[0];
                self.b.ins().trapz(v, NULL_REFERENCE);
            }
            Operator::BrOnNull { relative_depth } => {
                // As the interpreter: the reference leaves the stack for the branch
                // (taken when null), and is back on it after.
                self.top_const_to_slot();
                let lazy = self.lazy[self.lazy.len() - 1];
                let v = self.pop();
                self.branch_if(relative_depth, v, false);
                self.push_lazy(v, lazy);
            }
            Operator::BrOnNonNull { relative_depth } => {
                // The reference is the branch's last value; dropped when null.
                self.top_const_to_slot();
                let v = self.peekn(1)[0];
                self.branch_if(relative_depth, v, true);
                self.pop();
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A branch to the frame `relative_depth` up, with the top values as its
    /// arguments, taken when `cond` is non-zero (`if_nonzero`) or zero;
    /// translation goes on in the fall-through block (a new fuel block when
    /// the branch moved values).
    fn branch_if(&mut self, relative_depth: u32, cond: Value, if_nonzero: bool) {
        let i = self.frame_index(relative_depth);
        let (target, arity) = self.control[i].branch_target();
        self.control[i].exit_reached = true;
        let moves = self.branch_needs_moves(i, arity);
        let args = self.peekn(arity).to_vec();
        let args = self.block_args(&args);
        let fall = self.b.create_block();
        if if_nonzero {
            self.b.ins().brif(cond, target, &args, fall, &[]);
        } else {
            self.b.ins().brif(cond, fall, &[], target, &args);
        }
        self.b.seal_block(fall);
        self.b.switch_to_block(fall);
        if moves {
            self.start_fuel_block();
        }
    }

    fn else_(&mut self) {
        let frame = self.control.last_mut().expect("validated: else inside an if");
        let FrameKind::If { else_block, ref params, ref mut else_seen } = frame.kind else {
            // In unreachable code, an `else` of a dead `if` changes nothing.
            return;
        };
        *else_seen = true;
        let params = params.clone();
        let (next, n, height) = (frame.next, frame.num_results, frame.height);
        if self.reachable {
            frame.exit_reached = true;
            let results = self.peekn(n).to_vec();
            self.jump(next, &results);
        }
        self.truncate(height);
        self.b.switch_to_block(else_block);
        for v in params {
            self.push(v);
        }
        self.reachable = true;
        self.start_fuel_block();
    }

    fn end(&mut self) {
        let frame = self.control.pop().expect("validated: end matches a frame");
        let mut exit_reached = frame.exit_reached;
        if let FrameKind::Dead = frame.kind {
            return;
        }
        if self.reachable {
            exit_reached = true;
            let results = self.peekn(frame.num_results).to_vec();
            if let FrameKind::Function = frame.kind {
                let values = self.canonical_all(&results);
                self.b.ins().return_(&values);
                exit_reached = frame.exit_reached;
            } else {
                self.jump(frame.next, &results);
            }
        }
        match &frame.kind {
            FrameKind::If { else_block, params, else_seen: false } => {
                // No else arm: the parameters are the results.
                self.b.switch_to_block(*else_block);
                self.jump(frame.next, params);
                exit_reached = true;
            }
            FrameKind::Loop { header } => self.b.seal_block(*header),
            _ => {}
        }
        self.truncate(frame.height);
        if !exit_reached {
            self.reachable = false;
            return;
        }
        self.b.seal_block(frame.next);
        self.enter_with_params(frame.next);
        self.reachable = true;
        if let FrameKind::Function = frame.kind {
            let values: Vec<Value> = self.popn(frame.num_results);
            self.b.ins().return_(&values);
            self.reachable = false;
        } else {
            self.start_fuel_block();
        }
    }

    /// Unreachable code: follows only the block structure.
    pub(super) fn unreachable_operator(&mut self, op: &Operator<'_>) {
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                let height = self.stack.len();
                let next = Block::from_u32(0);
                self.control.push(Frame {
                    kind: FrameKind::Dead,
                    next,
                    num_params: 0,
                    num_results: 0,
                    height,
                    exit_reached: false,
                });
            }
            Operator::Else => self.else_(),
            Operator::End => self.end(),
            _ => {}
        }
    }

    // ---- what the interpreter does with operands, for fuel ----

    /// The interpreter writes every pending local and constant to its slot
    /// at the start of a block, loop or if.
    fn materialize_all(&mut self) {
        self.lazy.fill(Lazy::No);
    }

    /// Before a local changes, the interpreter writes the operands still
    /// reading it to their own slots.
    pub(super) fn materialize_local(&mut self, local: u32) {
        for l in &mut self.lazy {
            if *l == Lazy::Local(local) {
                *l = Lazy::No;
            }
        }
    }

    /// Whether the interpreter copies operands for a branch to frame `i`
    /// carrying `arity` values: unless they are already in the target's slots
    /// (right above its base, written there), which `br_if` then takes without
    /// a new fuel block. An approximation of the interpreter's slot
    /// assignment (`branch_moves`); fuel only.
    fn branch_needs_moves(&self, i: usize, arity: usize) -> bool {
        if !self.settings.fuel || arity == 0 {
            return false;
        }
        let base = self.control[i].height;
        let len = self.stack.len();
        let in_place = len - arity == base && self.lazy[len - arity..].iter().all(|l| *l == Lazy::No);
        !in_place
    }

    // ---- calls ----

    fn wasm_sig(&mut self, ty: &FuncType) -> SigRef {
        if let Some(&sig) = self.signatures.get(ty) {
            return sig;
        }
        let sig = self.b.import_signature(wasm_signature(ty, self.ptr));
        self.signatures.insert(ty.clone(), sig);
        sig
    }

    /// A direct call to defined function `def_index` (linked by the runtime),
    /// or, in standalone code, a call through its function reference.
    fn call_defined(&mut self, def_index: u32, ty: &FuncType, args: &[Value]) -> Vec<Value> {
        if self.standalone {
            let func_ref = self.defined_store_func_ref(def_index);
            return self.call_func_ref(func_ref, ty, args, false);
        }
        let callee = self.defined_func_ref(def_index, ty);
        let call_args = self.direct_call_args(args);
        let call = self.b.ins().call(callee, &call_args);
        self.b.inst_results(call).to_vec()
    }

    /// In standalone code, the address of defined function `def_index`'s
    /// reference: its store index (this instance's `func_indices`), then its
    /// reference in the store's array, which may move: loaded each time.
    fn defined_store_func_ref(&mut self, def_index: u32) -> Value {
        let indices = self.vmctx_ptr(header::FUNC_INDICES as u32);
        let readonly = self.readonly();
        let at = ((self.info.num_imported_funcs + def_index) * 4) as i32;
        let store_index = self.b.ins().load(types::I32, readonly, indices, at);
        let i = self.b.ins().uextend(types::I64, store_index);
        self.store_func_ref(i)
    }

    /// The arguments of a direct call to a defined function: `vmctx`, then `args`.
    fn direct_call_args(&mut self, args: &[Value]) -> Vec<Value> {
        let mut call_args = Vec::with_capacity(args.len() + 1);
        call_args.push(self.vmctx);
        call_args.extend(self.canonical_all(args));
        call_args
    }

    /// `call_defined` as a tail call: a direct `return_call`, or in standalone
    /// code one through the callee's function reference.
    fn return_call_defined(&mut self, def_index: u32, ty: &FuncType, args: &[Value]) {
        if self.standalone {
            let func_ref = self.defined_store_func_ref(def_index);
            return self.return_call_func_ref(func_ref, ty, args, false);
        }
        let callee = self.defined_func_ref(def_index, ty);
        let call_args = self.direct_call_args(args);
        self.b.ins().return_call(callee, &call_args);
    }

    fn defined_func_ref(&mut self, def_index: u32, ty: &FuncType) -> FuncRef {
        if let Some(&callee) = self.callees.get(&def_index) {
            return callee;
        }
        let signature = self.wasm_sig(ty);
        let name = self.b.func.declare_imported_user_function(UserExternalName::new(0, def_index));
        let callee = self.b.import_function(ExtFuncData {
            name: ExternalName::user(name),
            signature,
            colocated: true,
            patchable: false,
        });
        self.callees.insert(def_index, callee);
        callee
    }

    /// The address of the store's reference to function `store_index` (an
    /// i64): its array may move, so its address is loaded each time.
    fn store_func_ref(&mut self, store_index: Value) -> Value {
        let store = self.store_ctx();
        let mutable = self.mutable();
        let func_refs = self.load_ptr(store, store_offsets::FUNC_REFS, mutable);
        let at = self.b.ins().imul_imm_u(store_index, field::FUNC_REF_SIZE as i64);
        self.b.ins().iadd(func_refs, at)
    }

    /// The function reference `call_indirect` calls: element `index` of table
    /// `table`, checked against the table's length, null and the expected type.
    fn indirect_func_ref(&mut self, table: u32, type_index: u32, index: Value) -> Value {
        let addr = self.table_element(table, index);
        let flags = ir::MemFlagsData::trusted().with_alias_region(Some(self.vm.regions.table));
        let raw = self.b.ins().load(types::I64, flags, addr, 0);
        self.b.ins().trapz(raw, INDIRECT_CALL_TO_NULL);
        let i = self.b.ins().iadd_imm_s(raw, -1);
        let func_ref = self.store_func_ref(i);
        let mutable = self.mutable();
        let type_id = self.b.ins().load(types::I32, mutable, func_ref, field::FUNC_REF_TYPE_ID);
        let type_ids = self.vmctx_ptr(header::TYPE_IDS as u32);
        let readonly = self.readonly();
        let expected = self.b.ins().load(types::I32, readonly, type_ids, (type_index * 4) as i32);
        let bad = self.b.ins().icmp(IntCC::NotEqual, type_id, expected);
        let open = self.info.sub_types.get(type_index as usize).is_some_and(|t| !t.registered().is_final);
        if open {
            // GC: a function whose type declares the expected (non-final) one
            // as a supertype passes too, checked out of line on a mismatch.
            // A final type (every WebAssembly 2.0 type) has no subtypes.
            let mismatch = self.b.create_block();
            let done = self.b.create_block();
            self.b.set_cold_block(mismatch);
            self.b.ins().brif(bad, mismatch, &[], done, &[]);
            self.b.switch_to_block(mismatch);
            self.b.seal_block(mismatch);
            let ok = self.call_builtin(Builtin::FuncSubtype, &[type_id, expected]).expect("a subtype test result");
            self.b.ins().trapz(ok, BAD_SIGNATURE);
            self.b.ins().jump(done, &[]);
            self.b.switch_to_block(done);
            self.b.seal_block(done);
        } else {
            self.b.ins().trapnz(bad, BAD_SIGNATURE);
        }
        func_ref
    }

    /// The function reference behind the typed reference `raw` (`call_ref`):
    /// a null one traps.
    fn typed_func_ref(&mut self, raw: Value) -> Value {
        self.b.ins().trapz(raw, NULL_FUNCTION_REFERENCE);
        let i = self.b.ins().iadd_imm_s(raw, -1);
        self.store_func_ref(i)
    }

    /// As the interpreter, which writes a constant reference to its slot
    /// before testing it (a local stays pending): for fuel.
    fn top_const_to_slot(&mut self) {
        if let Some(l @ Lazy::Const) = self.lazy.last_mut() {
            *l = Lazy::No;
        }
    }

    /// Calls the function behind a `VMFuncRef` (at `func_ref`): its native
    /// code if it has some, else through `call_store_func`. `fixed`: the
    /// reference cannot change while the instance lives (an import's).
    fn call_func_ref(&mut self, func_ref: Value, ty: &FuncType, args: &[Value], fixed: bool) -> Vec<Value> {
        let flags = if fixed { self.readonly() } else { self.mutable() };
        // Before the branch: canonicalising may emit instructions (bitcasts).
        let args = self.canonical_all(args);
        let wasm_call = self.load_ptr(func_ref, field::FUNC_REF_WASM_CALL, flags);
        let native = self.b.create_block();
        let through_store = self.b.create_block();
        let join = self.block_with_params(ty.results());
        self.b.set_cold_block(through_store);
        self.b.ins().brif(wasm_call, native, &[], through_store, &[]);

        self.b.switch_to_block(native);
        self.b.seal_block(native);
        let callee_vmctx = self.load_ptr(func_ref, field::FUNC_REF_VMCTX, flags);
        let sig = self.wasm_sig(ty);
        let mut call_args = Vec::with_capacity(args.len() + 1);
        call_args.push(callee_vmctx);
        call_args.extend_from_slice(&args);
        let call = self.b.ins().call_indirect(sig, wasm_call, &call_args);
        let results = self.b.inst_results(call).to_vec();
        self.jump(join, &results);

        self.b.switch_to_block(through_store);
        self.b.seal_block(through_store);
        let store_index = self.b.ins().load(types::I32, flags, func_ref, field::FUNC_REF_STORE_INDEX);
        let slots = self.call_slots(ty.param_slots().max(ty.result_slots()));
        for ((t, &v), at) in ty.params().iter().zip(&args).zip(raw_offsets(ty.params())) {
            store_raw(self.b, t, v, slots, at);
        }
        self.call_builtin_checked(Builtin::CallStoreFunc, &[store_index, slots]);
        let results: Vec<Value> =
            ty.results().iter().zip(raw_offsets(ty.results())).map(|(t, at)| load_raw(self.b, t, slots, at)).collect();
        self.jump(join, &results);

        self.b.seal_block(join);
        self.b.switch_to_block(join);
        self.b.block_params(join).to_vec()
    }

    /// `call_func_ref` as a tail call: native code by `return_call_indirect`
    /// (this frame replaced); a host or interpreted function (no native code)
    /// through `call_store_func`, an ordinary call, then a return of its results.
    fn return_call_func_ref(&mut self, func_ref: Value, ty: &FuncType, args: &[Value], fixed: bool) {
        let flags = if fixed { self.readonly() } else { self.mutable() };
        let args = self.canonical_all(args);
        let wasm_call = self.load_ptr(func_ref, field::FUNC_REF_WASM_CALL, flags);
        let native = self.b.create_block();
        let through_store = self.b.create_block();
        self.b.set_cold_block(through_store);
        self.b.ins().brif(wasm_call, native, &[], through_store, &[]);

        self.b.switch_to_block(native);
        self.b.seal_block(native);
        let callee_vmctx = self.load_ptr(func_ref, field::FUNC_REF_VMCTX, flags);
        let sig = self.wasm_sig(ty);
        let mut call_args = Vec::with_capacity(args.len() + 1);
        call_args.push(callee_vmctx);
        call_args.extend_from_slice(&args);
        self.b.ins().return_call_indirect(sig, wasm_call, &call_args);

        self.b.switch_to_block(through_store);
        self.b.seal_block(through_store);
        let store_index = self.b.ins().load(types::I32, flags, func_ref, field::FUNC_REF_STORE_INDEX);
        let slots = self.call_slots(ty.param_slots().max(ty.result_slots()));
        for ((t, &v), at) in ty.params().iter().zip(&args).zip(raw_offsets(ty.params())) {
            store_raw(self.b, t, v, slots, at);
        }
        // A trap in the callee: the backtrace leaves this frame out (see `TRAP_PENDING_TAIL`).
        let status = self.call_builtin(Builtin::CallStoreFunc, &[store_index, slots]).expect("a status");
        self.b.ins().trapnz(status, TRAP_PENDING_TAIL);
        let results: Vec<Value> =
            ty.results().iter().zip(raw_offsets(ty.results())).map(|(t, at)| load_raw(self.b, t, slots, at)).collect();
        let results = self.canonical_all(&results);
        self.b.ins().return_(&results);
    }
}
