//! What compiled code reads from the context block and asks of the runtime:
//! loads of the block's fields, calls to builtins, the interrupt check and fuel.
//!
//! Why in one place: these are the translator's side of the contract in
//! [`crate::runtime::vmctx`] (offsets, pointers, builtin signatures), and the
//! memory flags that tell Cranelift which loads it may hoist or merge. Every
//! access names an alias region, so that a store to linear memory does not
//! force a reload of a memory's length, and a field that never changes while
//! the instance lives (the context block's pointers, a memory's base) is
//! `readonly` + `can_move`: loaded once where Cranelift likes.
//!
//! Fuel matches the interpreter's accounting exactly where it can (see
//! `interp/translate.rs`, `new_fuel_block` and `charge`): every operator reached
//! costs 1, and the cost of a straight run of operators ("fuel block") is
//! taken, all at once, when the run starts: at the function's entry, a loop's
//! header (branches back pay again), the start of an `if`'s then and else arms,
//! after every `end` of a block, loop or if, and after a `br_if` whose operands
//! the interpreter must move (see [`Translator::branch_needs_moves`]). When the
//! fuel left is below a block's cost, the builtin `out_of_fuel` traps, as the
//! interpreter does, before any operator of the block runs. The operators of a
//! block are counted as they are translated, and the block's constant patched
//! when it closes.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::immediates::Imm64;
use cranelift_codegen::ir::{
    self, types, AbiParam, AliasRegion, AliasRegionData, Function, Inst, InstBuilder, InstructionData, MemFlagsData,
    Opcode, SigRef, Signature, StackSlot, StackSlotData, StackSlotKind, Value,
};

use super::Translator;
use crate::compile::trap_codes::clif::TRAP_PENDING;
use crate::runtime::vmctx::{header, store_offsets, Builtins};

/// The runtime functions of [`Builtins`], by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Builtin {
    MemoryGrow,
    MemoryFill,
    MemoryCopy,
    MemoryInit,
    DataDrop,
    TableGrow,
    TableFill,
    TableCopy,
    TableInit,
    ElemDrop,
    CallStoreFunc,
    Deadline,
    OutOfFuel,
    MemoryAtomicNotify,
    MemoryAtomicWait32,
    MemoryAtomicWait64,
    MemoryGrow64,
    MemoryFill64,
    MemoryCopy64,
    MemoryInit64,
    CallInterpreted,
    FuncSubtype,
}

const NUM_BUILTINS: usize = 22;

impl Builtin {
    fn offset(self) -> i32 {
        use std::mem::offset_of;
        (match self {
            Builtin::MemoryGrow => offset_of!(Builtins, memory_grow),
            Builtin::MemoryFill => offset_of!(Builtins, memory_fill),
            Builtin::MemoryCopy => offset_of!(Builtins, memory_copy),
            Builtin::MemoryInit => offset_of!(Builtins, memory_init),
            Builtin::DataDrop => offset_of!(Builtins, data_drop),
            Builtin::TableGrow => offset_of!(Builtins, table_grow),
            Builtin::TableFill => offset_of!(Builtins, table_fill),
            Builtin::TableCopy => offset_of!(Builtins, table_copy),
            Builtin::TableInit => offset_of!(Builtins, table_init),
            Builtin::ElemDrop => offset_of!(Builtins, elem_drop),
            Builtin::CallStoreFunc => offset_of!(Builtins, call_store_func),
            Builtin::Deadline => offset_of!(Builtins, deadline),
            Builtin::OutOfFuel => offset_of!(Builtins, out_of_fuel),
            Builtin::MemoryAtomicNotify => offset_of!(Builtins, memory_atomic_notify),
            Builtin::MemoryAtomicWait32 => offset_of!(Builtins, memory_atomic_wait32),
            Builtin::MemoryAtomicWait64 => offset_of!(Builtins, memory_atomic_wait64),
            Builtin::MemoryGrow64 => offset_of!(Builtins, memory_grow64),
            Builtin::MemoryFill64 => offset_of!(Builtins, memory_fill64),
            Builtin::MemoryCopy64 => offset_of!(Builtins, memory_copy64),
            Builtin::MemoryInit64 => offset_of!(Builtins, memory_init64),
            Builtin::CallInterpreted => offset_of!(Builtins, call_interpreted),
            Builtin::FuncSubtype => offset_of!(Builtins, func_subtype),
        }) as i32
    }

    /// Parameters after `vmctx`, and the result, as declared in [`Builtins`]
    /// (`u32` → I32, `u64`/`i64` → I64, `Status` → I32, pointers → the pointer type).
    fn signature(self, ptr: ir::Type) -> (Vec<ir::Type>, Option<ir::Type>) {
        use types::{I32, I64};
        match self {
            Builtin::MemoryGrow => (vec![I32, I32], Some(I64)),
            Builtin::MemoryFill => (vec![I32, I32, I32, I32], Some(I32)),
            Builtin::MemoryCopy | Builtin::MemoryInit | Builtin::TableCopy | Builtin::TableInit => {
                (vec![I32; 5], Some(I32))
            }
            Builtin::DataDrop | Builtin::ElemDrop => (vec![I32], None),
            Builtin::TableGrow => (vec![I32, I64, I32], Some(I64)),
            Builtin::TableFill => (vec![I32, I32, I64, I32], Some(I32)),
            Builtin::CallStoreFunc | Builtin::CallInterpreted => (vec![I32, ptr], Some(I32)),
            Builtin::Deadline | Builtin::OutOfFuel => (vec![], Some(I32)),
            Builtin::MemoryAtomicNotify => (vec![I32, I64, I32], Some(I64)),
            Builtin::MemoryAtomicWait32 => (vec![I32, I64, I32, I64], Some(I64)),
            Builtin::MemoryAtomicWait64 => (vec![I32, I64, I64, I64], Some(I64)),
            Builtin::MemoryGrow64 => (vec![I32, I64], Some(I64)),
            Builtin::MemoryFill64 => (vec![I32, I64, I32, I64], Some(I32)),
            Builtin::MemoryCopy64 => (vec![I32, I64, I32, I64, I64], Some(I32)),
            Builtin::MemoryInit64 => (vec![I32, I32, I64, I32, I32], Some(I32)),
            Builtin::FuncSubtype => (vec![I32, I32], Some(I32)),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Alias regions: disjoint kinds of memory, as far as compiled code accesses them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Regions {
    /// Linear memories.
    pub heap: AliasRegion,
    /// Table elements.
    pub table: AliasRegion,
    /// Global value cells.
    pub global: AliasRegion,
    /// The context block, store context, memory and table definitions, function references.
    pub vm: AliasRegion,
    /// The store's fuel.
    pub fuel: AliasRegion,
    /// The interrupt flag and the epoch words (written by other threads).
    pub interrupt: AliasRegion,
}

/// Per-function state of this part.
pub(super) struct VmState {
    pub regions: Regions,
    builtin_sigs: [Option<SigRef>; NUM_BUILTINS],
    /// The stack slot through which `call_store_func` passes values (one per
    /// function, as large as the largest call needs).
    call_slots: Option<StackSlot>,
    /// The open fuel block: the constant holding its cost, and the count so far.
    fuel_cost: Option<Inst>,
    fuel_count: u64,
}

impl VmState {
    pub fn new(func: &mut Function) -> VmState {
        let mut region = |user_id: u32, description: &'static str| {
            func.dfg.alias_regions.insert(AliasRegionData { user_id, description: description.into() })
        };
        let regions = Regions {
            heap: region(1, "heap"),
            table: region(2, "table"),
            global: region(3, "global"),
            vm: region(4, "vm"),
            fuel: region(5, "fuel"),
            interrupt: region(6, "interrupt"),
        };
        VmState { regions, builtin_sigs: [None; NUM_BUILTINS], call_slots: None, fuel_cost: None, fuel_count: 0 }
    }
}

impl Translator<'_, '_> {
    // ---- flags ----

    /// A runtime field that does not change while the instance lives.
    pub(super) fn readonly(&self) -> MemFlagsData {
        MemFlagsData::trusted().with_readonly().with_can_move().with_alias_region(Some(self.vm.regions.vm))
    }

    /// A runtime field that calls into the runtime may change.
    pub(super) fn mutable(&self) -> MemFlagsData {
        MemFlagsData::trusted().with_alias_region(Some(self.vm.regions.vm))
    }

    pub(super) fn load_ptr(&mut self, base: Value, offset: i32, flags: MemFlagsData) -> Value {
        self.b.ins().load(self.ptr, flags, base, offset)
    }

    /// A pointer field of the context block's fixed part (or of its arrays).
    pub(super) fn vmctx_ptr(&mut self, offset: u32) -> Value {
        let flags = self.readonly();
        self.load_ptr(self.vmctx, offset as i32, flags)
    }

    /// The store context (`*mut VMStoreContext`).
    pub(super) fn store_ctx(&mut self) -> Value {
        self.vmctx_ptr(header::STORE as u32)
    }

    // ---- builtins ----

    /// Calls a builtin with `args` after `vmctx`; its result, if it has one.
    pub(super) fn call_builtin(&mut self, builtin: Builtin, args: &[Value]) -> Option<Value> {
        let sig = match self.vm.builtin_sigs[builtin.index()] {
            Some(sig) => sig,
            None => {
                let (params, result) = builtin.signature(self.ptr);
                let mut sig = Signature::new(self.isa.default_call_conv());
                sig.params.push(AbiParam::new(self.ptr));
                sig.params.extend(params.into_iter().map(AbiParam::new));
                sig.returns.extend(result.map(AbiParam::new));
                let sig = self.b.import_signature(sig);
                self.vm.builtin_sigs[builtin.index()] = Some(sig);
                sig
            }
        };
        let table = self.vmctx_ptr(header::BUILTINS as u32);
        let flags = self.readonly();
        let callee = self.load_ptr(table, builtin.offset(), flags);
        let mut call_args = Vec::with_capacity(args.len() + 1);
        call_args.push(self.vmctx);
        call_args.extend_from_slice(args);
        let call = self.b.ins().call_indirect(sig, callee, &call_args);
        self.b.inst_results(call).first().copied()
    }

    /// Calls a builtin that returns a `Status`, trapping with `TRAP_PENDING` unless it is 0.
    pub(super) fn call_builtin_checked(&mut self, builtin: Builtin, args: &[Value]) {
        let status = self.call_builtin(builtin, args).expect("a builtin returning a status");
        self.b.ins().trapnz(status, TRAP_PENDING);
    }

    /// Calls a builtin returning a size or -1, trapping with `TRAP_PENDING` on
    /// -2 (a limiter trapped); the result as an i32.
    pub(super) fn call_builtin_grow(&mut self, builtin: Builtin, args: &[Value]) -> Value {
        let r = self.call_builtin_grow64(builtin, args);
        self.b.ins().ireduce(types::I32, r)
    }

    /// `call_builtin_grow` with the result as an i64 (a 64-bit memory's `memory.grow`).
    pub(super) fn call_builtin_grow64(&mut self, builtin: Builtin, args: &[Value]) -> Value {
        let r = self.call_builtin(builtin, args).expect("a grow builtin returns the old size");
        let pending = self.b.ins().icmp_imm_s(IntCC::Equal, r, -2);
        self.b.ins().trapnz(pending, TRAP_PENDING);
        r
    }

    /// The address of the function's `call_store_func` slots, at least `count` u64s long.
    pub(super) fn call_slots(&mut self, count: usize) -> Value {
        let size = (count.max(1) * 8) as u32;
        let slot = match self.vm.call_slots {
            Some(slot) => {
                let data = &mut self.b.func.sized_stack_slots[slot];
                data.size = data.size.max(size);
                slot
            }
            None => {
                let slot = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, size, 4));
                self.vm.call_slots = Some(slot);
                slot
            }
        };
        self.b.ins().stack_addr(self.ptr, slot, 0)
    }

    // ---- interruption ----

    /// The check made at function entry and loop headers: when the interrupt
    /// flag is set, or the epoch reached the deadline, call `deadline` (which
    /// may let the code go on) on a cold path.
    pub(super) fn interrupt_check(&mut self) {
        let region = Some(self.vm.regions.interrupt);
        let flags = MemFlagsData::trusted().with_alias_region(region);
        let store = self.store_ctx();
        let ro = self.readonly();
        let stop = match self.settings.interrupt {
            super::Interrupt::None => return,
            super::Interrupt::Flag => {
                let flag = self.load_ptr(store, store_offsets::INTERRUPTED, ro);
                self.b.ins().uload8(types::I32, flags, flag, 0)
            }
            super::Interrupt::Epoch => {
                let epoch = self.load_ptr(store, store_offsets::EPOCH, ro);
                let check = self.load_ptr(store, store_offsets::EPOCH_CHECK, ro);
                let epoch = self.b.ins().load(types::I64, flags, epoch, 0);
                let check = self.b.ins().load(types::I64, flags, check, 0);
                self.b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, epoch, check)
            }
        };
        let slow = self.b.create_block();
        let cont = self.b.create_block();
        self.b.set_cold_block(slow);
        self.b.ins().brif(stop, slow, &[], cont, &[]);
        self.b.switch_to_block(slow);
        self.b.seal_block(slow);
        self.call_builtin_checked(Builtin::Deadline, &[]);
        self.b.ins().jump(cont, &[]);
        self.b.switch_to_block(cont);
        self.b.seal_block(cont);
    }

    // ---- fuel ----

    /// Starts a fuel block here (closing the open one): takes its cost, to be
    /// known when it closes, from the store's fuel.
    pub(super) fn start_fuel_block(&mut self) {
        self.close_fuel_block();
        if !self.settings.fuel {
            return;
        }
        let store = self.store_ctx();
        let flags = MemFlagsData::trusted().with_alias_region(Some(self.vm.regions.fuel));
        let fuel = self.b.ins().load(types::I64, flags, store, store_offsets::FUEL);
        let cost = self.iconst(types::I64, 0);
        let cost_inst = self.b.func.dfg.value_def(cost).unwrap_inst();
        let short = self.b.ins().icmp(IntCC::UnsignedLessThan, fuel, cost);
        let out = self.b.create_block();
        self.b.set_cold_block(out);
        let cont = self.b.create_block();
        self.b.ins().brif(short, out, &[], cont, &[]);
        self.b.switch_to_block(out);
        self.b.seal_block(out);
        self.call_builtin(Builtin::OutOfFuel, &[]);
        self.b.ins().trap(TRAP_PENDING);
        self.b.switch_to_block(cont);
        self.b.seal_block(cont);
        let left = self.b.ins().isub(fuel, cost);
        self.b.ins().store(flags, left, store, store_offsets::FUEL);
        self.vm.fuel_cost = Some(cost_inst);
        self.vm.fuel_count = 0;
    }

    /// Counts one operator in the open fuel block.
    pub(super) fn charge_fuel(&mut self) {
        self.vm.fuel_count += 1;
    }

    /// Writes the open fuel block's cost into its constant.
    pub(super) fn close_fuel_block(&mut self) {
        if let Some(inst) = self.vm.fuel_cost.take() {
            let imm = Imm64::new(self.vm.fuel_count as i64);
            self.b.func.dfg.insts[inst] = InstructionData::UnaryImm { opcode: Opcode::Iconst, imm };
        }
        self.vm.fuel_count = 0;
    }
}
