//! The interpreter's instruction set, in one place.
//!
//! Instructions are register-style: operands name *slots* of the current frame
//! (64-bit cells addressed relative to the frame base), so `local.get`s are folded
//! away at translation and most wasm operators become one instruction that reads
//! its inputs and writes its output directly. Frame layout:
//!
//! ```text
//! base+0 .. base+P            parameters (and, on return, the results)
//! base+P .. base+L            declared locals, zeroed on entry
//! base+L .. base+frame_size   operand-stack slots: wasm stack position p lives in slot L+p
//! ```
//!
//! A call places the arguments in consecutive operand slots; the callee's frame
//! starts at the first argument, so arguments need no copying and results appear
//! where the caller expects them.
//!
//! Every instruction is at most 16 bytes (a tag and three 32-bit operands, or a
//! slot and a 64-bit constant); stored for execution, each sits in a [`Cell`]
//! after the address of its handler (24 bytes). Instructions that need more operands take them
//! from consecutive slots starting at a `base`. Branch targets are instruction
//! indices, resolved at translation, and stored as the distance in bytes from
//! the branch (a taken branch adds it to `ip`). Values of type i32 and f32 only use the
//! low 32 bits of a slot (readers truncate), which makes `i32.wrap_i64` and the
//! reinterpret operators free. A v128 takes two adjacent slots (low half first);
//! the translator lays out locals and stack entries by width, so scalar code is
//! unchanged, and every SIMD operator is one `Simd` instruction executed out of
//! line (`simd.rs`), which keeps the main dispatch loop as small as before.

// The accumulator: a result field and the next instruction's operand field
// may both hold `threaded::ACC | slot` instead of `slot`; the value then goes
// from one handler to the next in a register (see `threaded`).

/// A frame-relative slot index.
pub(crate) type Slot = u32;

/// One instruction as it is stored for execution: the handler that runs it
/// (see `threaded`; chosen at translation, for the engine's configuration)
/// beside the instruction itself, so that dispatch is one load and a jump.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct Cell {
    pub handler: super::threaded::Handler,
    pub instr: Instr,
}

const _: () = assert!(std::mem::size_of::<Cell>() == 24);

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.instr.fmt(f)
    }
}

/// Interpreter code for one function.
#[derive(Debug)]
pub(crate) struct CompiledFunc {
    pub code: Box<[Cell]>,
    /// The module offset of the wasm operator each cell came from (empty if
    /// unknown): where a backtrace frame points.
    pub offsets: Box<[u32]>,
    /// Total slots the frame needs: params + locals + maximum operand-stack height.
    pub frame_size: u32,
    /// Where execution starts: 0, at the function's `ZeroLocals`, or 1 when no
    /// local needs zeroing (every declared local is written before it is read,
    /// `assign`, so a frame's locals start as the stack left them).
    pub entry: u32,
    /// The catch clauses of the function's `try_table`s (exception handling),
    /// innermost `try_table` first and each one's clauses in order: the first
    /// whose range holds the throwing instruction and whose tag matches
    /// catches. Empty for a function without `try_table`.
    pub handlers: Box<[Handler]>,
}

/// One catch clause of a `try_table` (see [`CompiledFunc::handlers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handler {
    /// The instructions (indices into `code`) the `try_table` covers.
    pub start: u32,
    pub end: u32,
    /// The module tag index caught, or `CATCH_ALL`.
    pub tag: u32,
    /// Whether the exception's reference is passed too (`catch_ref`, `catch_all_ref`).
    pub with_ref: bool,
    /// Where the catch lands: a landing pad that moves the values from `slot..`
    /// to the label's slots and branches there.
    pub pad: u32,
    /// The frame slot where the fields (then the reference) are written.
    pub slot: Slot,
}

/// [`Handler::tag`] of `catch_all` and `catch_all_ref`.
pub(crate) const CATCH_ALL: u32 = u32::MAX;

impl CompiledFunc {
    /// The instructions that run, from the entry, without their handlers.
    #[cfg(test)]
    pub(crate) fn instrs(&self) -> Vec<Instr> {
        // Branch targets back from byte distances to indices.
        let mut instrs: Vec<Instr> = self.code.iter().map(|c| c.instr).collect();
        for (i, instr) in instrs.iter_mut().enumerate() {
            if let Some(target) = instr.branch_target_mut() {
                *target = (i as i64 + *target as i32 as i64 / std::mem::size_of::<Cell>() as i64) as u32;
            }
        }
        instrs.split_off(self.entry as usize)
    }
}

macro_rules! define_instrs {
    (
        unary { $($un:ident),* $(,)? }
        binary { $($bin:ident),* $(,)? }
        load { $($load:ident),* $(,)? }
        store { $($store:ident),* $(,)? }
    ) => {
        for_each_imm!(define_instrs_with_imm; $($un),*; $($bin),*; $($load),*; $($store),*);
    };
}

macro_rules! define_instrs_with_imm {
    (
        arith { $($abase:ident $aimm:ident $at:ident),* $(,)? }
        cmp { $($cbase:ident $cimm:ident $cbr:ident $cbrimm:ident $cneg:ident $ct:ident),* $(,)? }
        ; $($un:ident),*; $($bin:ident),*; $($load:ident),*; $($store:ident),*
    ) => {
        /// One interpreter instruction. See the module docs for the operand conventions.
        ///
        /// `repr(u16)` fixes the layout the threaded executor relies on: every
        /// variant starts with its 16-bit tag (its declaration index), which
        /// indexes the handler table (see [`Instr::tag`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u16)]
        pub(crate) enum Instr {
            /// Trap with `unreachable`.
            Unreachable,
            /// Charge `amount` units of fuel (emitted only when fuel metering is on).
            ConsumeFuel { amount: u32 },
            /// Trap if the store was interrupted (emitted only when the engine is
            /// interruptible, without epoch interruption).
            CheckInterrupt,
            /// Leave the run when the engine's epoch reached the store's check word
            /// (its epoch deadline, or 0 when interrupted): `exec` traps or runs the
            /// deadline callback and resumes after it (emitted only with epoch
            /// interruption, instead of `CheckInterrupt`).
            CheckEpoch,
            /// Automatic tiering (emitted only with `Strategy::Auto`, at a
            /// function's entry and at the headers of loops with an empty
            /// operand stack): counts down defined function `def_index`'s
            /// hotness counter and, when it runs out, leaves the run for `exec`,
            /// which may queue the module for compiling or, at a loop (`offset`
            /// its wasm offset; `u32::MAX` at the entry), continue the function
            /// in compiled code (see `compile::tier`).
            OsrPoint { def_index: u32, offset: u32 },
            /// Zero slots `start..start + count`: the declared locals that may be read
            /// before they are written (see `assign`). A function's first instruction;
            /// functions without such locals start after it ([`CompiledFunc::entry`]).
            ZeroLocals { start: Slot, count: u32 },
            Br { target: u32 },
            BrIfNez { cond: Slot, target: u32 },
            BrIfEqz { cond: Slot, target: u32 },
            /// Followed by `len + 1` `Br` instructions; the last is the default.
            BrTable { index: Slot, len: u32 },
            /// Return; the results are already in slots `0..num_results`.
            Return,
            /// Return one (non-v128) result, copying it from `src` to slot 0 first.
            ReturnSlot { src: Slot },
            /// Call a function defined in the current module (index among defined functions).
            CallInternal { def_index: u32, base: Slot },
            /// A `Copy` (an argument) then `CallInternal`: `copy` packs the copy's
            /// destination and source slots (low and high 16 bits).
            CallInternalCopy { def_index: u32, base: Slot, copy: u32 },
            /// Call any function of the instance by its function index (imports included).
            Call { func: u32, base: Slot },
            /// Arguments at `base..`, the table index right after them.
            CallIndirect { type_index: u32, table: u32, base: Slot },
            Copy { dst: Slot, src: Slot },
            /// Two copies in a row, run in order: `first` then `second`, each packing
            /// a destination and a source slot (low and high 16 bits).
            CopyPair { first: u32, second: u32 },
            /// Copies a v128 (two slots; both are read before either is written).
            Copy2 { dst: Slot, src: Slot },
            Const { dst: Slot, value: u64 },
            /// `dst` already holds the first operand: if `cond == 0`, `dst = src`.
            SelectTo { dst: Slot, cond: Slot, src: Slot },
            /// `SelectTo` for v128 operands.
            SelectTo2 { dst: Slot, cond: Slot, src: Slot },
            /// `dst = if cond != 0 { a } else { b }`, with `a` and `b` packed into
            /// `ab` (low and high 16 bits), for operand slots below 2^16.
            Select { dst: Slot, cond: Slot, ab: u32 },
            /// `dst = a * b + c` as two f64 operations (product rounded, then the sum:
            /// exactly `f64.mul` then `f64.add`, no fused multiply-add), with `a` and
            /// `b` packed into `ab` (low and high 16 bits), for slots below 2^16.
            F64MulAdd { dst: Slot, ab: u32, c: Slot },
            /// `dst = a * b - c`, as `F64MulAdd` (two roundings).
            F64MulSub { dst: Slot, ab: u32, c: Slot },
            /// `dst = c - a * b`, as `F64MulAdd` (two roundings).
            F64SubMul { dst: Slot, ab: u32, c: Slot },
            /// Loads at `(b + i) mod 2^32 + offset`, an `i32.add` folded into the
            /// load: `bi` packs the slots of `b` and `i` (low and high 16 bits).
            /// 4 bytes (i32, f32).
            I32LoadIdx { dst: Slot, bi: u32, offset: u32 },
            /// 8 bytes (i64, f64).
            I64LoadIdx { dst: Slot, bi: u32, offset: u32 },
            /// 1 byte, zero-extended.
            I32Load8UIdx { dst: Slot, bi: u32, offset: u32 },
            /// Two `i32` add-immediates in a row (loops stepping two induction
            /// variables): `d1 = s1 + i1`, then `d2 = s2 + i2`, with `first` and `second`
            /// packing a destination and a source (low and high 16 bits) and `imms`
            /// the two immediates (`i1` low, `i2` high, each an `i16`).
            I32AddImm2 { first: u32, second: u32, imms: u32 },
            /// `dst = (a + b) mod 2^32`, then jumps to `target` when `dst >= rhs`
            /// (unsigned): a bounds check on an index just computed. `ab` packs the
            /// slots of a and b, `dr` those of dst and rhs (low and high 16 bits);
            /// rhs is read after dst is written, as the two instructions would.
            BrI32AddGeU { ab: u32, dr: u32, target: u32 },
            /// As `BrI32AddGeU`, jumping when `dst < rhs`.
            BrI32AddLtU { ab: u32, dr: u32, target: u32 },
            /// A loop step and its exit test: `dst = (src + k) mod 2^32`, then jumps to
            /// `target` when `dst != other`. `ds` packs dst and src, `ki` packs other
            /// (low 16 bits) and k (an `i16`, high 16 bits).
            BrI32AddImmNe { ds: u32, ki: u32, target: u32 },
            /// As `BrI32AddImmNe`, jumping when `dst == other`.
            BrI32AddImmEq { ds: u32, ki: u32, target: u32 },
            /// As `BrI32AddImmNe`, jumping when `dst < other` (unsigned, signed), or
            /// when `dst >= other`.
            BrI32AddImmLtU { ds: u32, ki: u32, target: u32 },
            BrI32AddImmGeU { ds: u32, ki: u32, target: u32 },
            BrI32AddImmLtS { ds: u32, ki: u32, target: u32 },
            BrI32AddImmGeS { ds: u32, ki: u32, target: u32 },
            /// A count-down loop's step and test: `x = (x + imm) mod 2^32`, then
            /// jumps to `target` when `x != 0`; `BrI32AddImmEqz` when `x == 0`.
            /// (One slot for the variable, not a dst and a src: unpacking two
            /// costs the handler registers it would have to save.)
            BrI32AddImmNez { x: Slot, imm: i32, target: u32 },
            BrI32AddImmEqz { x: Slot, imm: i32, target: u32 },
            /// As `BrI32AddImmNez`, against a constant n: `xk` packs x (low 16
            /// bits) and the step k (high, an `i16`); jumps when `x != n` (`== n`).
            BrI32AddImmNeImm { xk: u32, n: i32, target: u32 },
            BrI32AddImmEqImm { xk: u32, n: i32, target: u32 },
            /// `dst = rotl(a, k) ^ b`: a rotate by a constant feeding an xor (hash
            /// and digest rounds). `ab` packs a and b (low and high 16 bits); a
            /// `rotr` by k is a `rotl` by the width minus k.
            I32RotlXor { dst: Slot, ab: u32, k: u32 },
            I64RotlXor { dst: Slot, ab: u32, k: u32 },
            /// `dst = rotl(a ^ b, k)`: an xor feeding a rotate by a constant.
            I32XorRotl { dst: Slot, ab: u32, k: u32 },
            I64XorRotl { dst: Slot, ab: u32, k: u32 },
            /// `dst = (a + (b << k)) mod 2^32`: a scaled index (`ab` packs a and b).
            I32AddShl { dst: Slot, ab: u32, k: u32 },
            /// `dst = (a + (x < y)) mod 2^32`: a comparison's result counted (branchless
            /// partitioning). `xy` packs x and y; signed and unsigned, i32 and i64.
            I32AddI32LtS { dst: Slot, a: Slot, xy: u32 },
            I32AddI32LtU { dst: Slot, a: Slot, xy: u32 },
            I32AddI64LtS { dst: Slot, a: Slot, xy: u32 },
            I32AddI64LtU { dst: Slot, a: Slot, xy: u32 },
            /// `dst = (a + (b >> k)) mod 2^32`, `>>` unsigned.
            I32AddShrU { dst: Slot, ab: u32, k: u32 },
            /// `dst = k / f64(src as u32)` (`ds` packs dst and src; k raw bits): a
            /// conversion feeding a division of a constant.
            F64KDivU32 { ds: u32, k: u64 },
            /// Loads at `(src + k) mod 2^32`: an `i32.add` of a constant folded into
            /// a load without offset (compiled code's displacements that the
            /// unsigned, non-wrapping offset cannot hold). 4 bytes (i32, f32).
            I32LoadAddImm { dst: Slot, src: Slot, k: i32 },
            /// 8 bytes (i64, f64).
            I64LoadAddImm { dst: Slot, src: Slot, k: i32 },
            /// Two loads in a row, run in order (the second's address is read after the
            /// first's result is written): `first` and `second` each pack a
            /// destination and an address slot, `offsets` their offsets (16 bits
            /// each). 4 bytes each (i32, f32).
            I32Load2 { first: u32, second: u32, offsets: u32 },
            /// 8 bytes each (i64, f64).
            I64Load2 { first: u32, second: u32, offsets: u32 },
            /// Two stores in a row, run in order: `first` and `second` each pack an
            /// address and a value slot, `offsets` their offsets (16 bits each).
            /// 4 bytes each (i32, f32).
            I32Store2 { first: u32, second: u32, offsets: u32 },
            /// 8 bytes each (i64, f64).
            I64Store2 { first: u32, second: u32, offsets: u32 },
            /// A load into `dst` (a local, kept for later) and a store of it, same
            /// width: `addrs` packs the two address slots (load, then store) and
            /// `offsets` their offsets (16 bits each); the store's address is read
            /// after dst is written, as the two instructions would.
            I32LoadThenStore { dst: Slot, addrs: u32, offsets: u32 },
            I64LoadThenStore { dst: Slot, addrs: u32, offsets: u32 },
            /// A load feeding a store of the same width: copies 4 (or 8) bytes from
            /// `src + src_offset` to `dst + dst_offset` (`addrs` packs the address
            /// slots src and dst), trapping as the load, then the store, would.
            I32MemCopyWord { addrs: u32, src_offset: u32, dst_offset: u32 },
            I64MemCopyWord { addrs: u32, src_offset: u32, dst_offset: u32 },
            /// `dst = global + k` (i32): a `global.get` feeding an add of a constant,
            /// as a function prologue moves the stack pointer.
            GlobalGetAddImm { dst: Slot, global: u32, k: i32 },
            /// `dst = global + k; global = dst`: the whole prologue.
            GlobalAddImm { dst: Slot, global: u32, k: i32 },
            /// `dst = src + k; global = dst` (`ds` packs dst and src): an epilogue.
            GlobalSetAddImm { ds: u32, global: u32, k: i32 },
            /// f64 arithmetic with a constant operand `k` (raw bits): `ds` packs the
            /// destination and source slots (low and high 16 bits; slots below 2^16).
            /// `dst = src + k`
            F64AddK { ds: u32, k: u64 },
            /// `dst = src - k`
            F64SubK { ds: u32, k: u64 },
            /// `dst = k - src`
            F64KSub { ds: u32, k: u64 },
            /// `dst = src * k`
            F64MulK { ds: u32, k: u64 },
            /// `dst = src / k`
            F64DivK { ds: u32, k: u64 },
            /// `dst = k / src`
            F64KDiv { ds: u32, k: u64 },
            GlobalGet { dst: Slot, global: u32 },
            GlobalSet { src: Slot, global: u32 },
            /// Global access for v128 globals.
            GlobalGet2 { dst: Slot, global: u32 },
            GlobalSet2 { src: Slot, global: u32 },
            /// A SIMD operator; `head` packs the operator, its lane immediate and
            /// operand `a` (see [`pack_simd`] and, for the operands, [`for_each_simd`]).
            Simd { head: u32, b: Slot, c: u32 },
            /// A threads-proposal operator (see `interp::atomic`): `head` packs the
            /// operator, its access size and its memory; operands at
            /// `base..`, the result (if any) to `base`; `offset` is the memarg's.
            Atomic { head: u32, base: Slot, offset: u32 },
            /// A GC struct or array operator (see `interp::gc`): `head` packs
            /// the operator and its type index, `imm` its other immediate;
            /// operands at `base..`, the result (if any) to `base`.
            Gc { head: u32, base: Slot, imm: u32 },
            /// A GC reference operator that needs no heap (see `interp::cast`):
            /// `head` packs the operator and a cast's target; operand at `src`
            /// (`ref.eq`'s two at `src..`), the result to `dst`.
            Cast { head: u32, src: Slot, dst: Slot },
            MemorySize { dst: Slot },
            MemoryGrow { dst: Slot, delta: Slot, mem: u32 },
            /// dst address, value, length at `base..base+3`.
            MemoryFill { base: Slot },
            /// dst, src, length at `base..base+3`.
            MemoryCopy { base: Slot },
            /// `memory.copy` between two different memories: dst, src, length at `base..base+3`.
            MemoryCopyAcross { base: Slot, dst_mem: u32, src_mem: u32 },
            /// Makes memory `mem` of the instance the one that the memory
            /// instructions after it access (see `exec`'s module docs): the
            /// translator brackets each access to a memory other than 0 with
            /// `UseMemory { mem }` and `UseMemory { mem: 0 }`.
            UseMemory { mem: u32 },
            /// dst, src, length at `base..base+3`.
            MemoryInit { segment: u32, base: Slot },
            DataDrop { segment: u32 },
            /// The address of an access to a 64-bit memory (memory64), before
            /// the 32-bit instruction that makes it with a zero offset: `dst =
            /// addr + offset`, computed in 64 bits, trapping out of bounds when
            /// that overflows or is 2^32 or more. A memory's length is at most
            /// 4 GiB (`runtime::memory::MAX_PAGES`), so such an address is out
            /// of bounds for an access of any size, and any other fits in the
            /// 32 bits the access reads; the access then checks it against its
            /// memory's length as any does.
            Addr64 { dst: Slot, addr: Slot, offset: u32 },
            /// An access to a 64-bit memory whose static offset is 2^32 or more:
            /// it can only be out of bounds (see `Addr64`).
            MemoryOutOfBounds,
            /// `memory.grow` of a 64-bit memory: an i64 delta and result.
            MemoryGrow64 { dst: Slot, delta: Slot, mem: u32 },
            /// `memory.fill` of a 64-bit memory: dst (i64), value, length (i64) at `base..base+3`.
            MemoryFill64 { base: Slot, mem: u32 },
            /// `memory.copy` when either memory is 64-bit: dst, src, length at
            /// `base..base+3`, each i64 or i32 as the memories' index types say.
            MemoryCopy64 { base: Slot, dst_mem: u32, src_mem: u32 },
            /// `memory.init` of a 64-bit memory: dst (i64), src, length (i32) at `base..base+3`.
            MemoryInit64 { segment: u32, base: Slot, mem: u32 },
            /// An i64 index, size or length of a table64 (the memory64
            /// proposal) at `slot`, before the table instruction, which reads
            /// 32 bits: one of 2^32 or more is out of any table's bounds, and
            /// traps (out of bounds table access, as the table instruction
            /// would); with `saturate` nonzero it becomes `u32::MAX` instead (a
            /// `table.grow` delta, which then fails).
            TableIndex64 { slot: Slot, saturate: u32 },
            /// Sign-extends the i32 at `slot` to 64 bits: a table64's
            /// `table.grow` result (-1 when it fails).
            Widen32 { slot: Slot },
            TableGet { dst: Slot, table: u32, index: Slot },
            TableSet { table: u32, index: Slot, value: Slot },
            TableSize { dst: Slot, table: u32 },
            /// init value, delta at `base..base+2`; the result goes to `base`.
            TableGrow { table: u32, base: Slot },
            /// index, value, length at `base..base+3`.
            TableFill { table: u32, base: Slot },
            /// dst, src, length at `base..base+3`.
            TableCopy { dst_table: u32, src_table: u32, base: Slot },
            /// dst, src, length at `base..base+3`.
            TableInit { table: u32, segment: u32, base: Slot },
            ElemDrop { segment: u32 },
            RefFunc { dst: Slot, func: u32 },
            /// `return_call` (tail calls): calls any function of the instance by
            /// its function index, its arguments at `base..`, in place of the
            /// current frame. A wasm function that `exec` runs itself (not
            /// compiled code) reuses the frame: its arguments move to the
            /// frame's slot 0 and it is entered without pushing a frame; a host
            /// function or compiled code is called as by `Call`, then its
            /// results are returned. Out of the threaded handlers (rare).
            ReturnCall { func: u32, base: Slot },
            /// `return_call_indirect`: as `CallIndirect` (arguments at `base..`,
            /// the table index right after them), in place of the current frame
            /// as `ReturnCall`.
            ReturnCallIndirect { type_index: u32, table: u32, base: Slot },
            /// `call_ref` (typed function references): calls the function the
            /// reference at `base + params` names (its type is the validator's:
            /// no signature check), arguments at `base..`; a null reference
            /// traps. Out of the threaded handlers (rare).
            CallRef { type_index: u32, base: Slot },
            /// `return_call_ref`: as `CallRef`, in place of the current frame
            /// as `ReturnCall`.
            ReturnCallRef { type_index: u32, base: Slot },
            /// `ref.as_non_null`: traps when the reference in `src` is null.
            RefAsNonNull { src: Slot },
            /// `throw` (exception handling): throws a new exception of module tag
            /// `tag` whose fields are at `base..`. Out of the threaded handlers.
            Throw { tag: u32, base: Slot },
            /// `throw_ref`: throws the exception in `src` again (null traps).
            ThrowRef { src: Slot },
            /// Stores of a constant value (i64 sign-extended from 32 bits).
            I32StoreImm { addr: Slot, value: i32, offset: u32 },
            I64StoreImm { addr: Slot, value: i32, offset: u32 },
            I32Store8Imm { addr: Slot, value: i32, offset: u32 },
            /// `I32Store8Imm` then `addr += step` (`at_step` packs the slots of
            /// addr and step): a fill loop's store and its pointer's advance.
            I32Store8ImmStep { at_step: u32, value: i32, offset: u32 },
            /// Stores to a constant address (address + offset, folded at translation):
            /// compiled code's statics. 4 bytes (i32, f32), 8 (i64, f64), 1.
            I32StoreAt { value: Slot, ea: u32 },
            I64StoreAt { value: Slot, ea: u32 },
            I32Store8At { value: Slot, ea: u32 },
            /// `select` with a constant operand `k` (sign-extended): `dst = if cond != 0
            /// { k } else { b }`, `cb` packing the slots of cond and b.
            SelectKA { dst: Slot, cb: u32, k: i32 },
            /// `dst = if cond != 0 { a } else { k }`, `ca` packing cond and a.
            SelectKB { dst: Slot, ca: u32, k: i32 },
            /// Loads from a constant address (address + offset, folded at translation).
            I32LoadAt { dst: Slot, ea: u32 },
            I64LoadAt { dst: Slot, ea: u32 },
            I32Load8UAt { dst: Slot, ea: u32 },
            $( $un { dst: Slot, src: Slot }, )*
            $( $bin { dst: Slot, lhs: Slot, rhs: Slot }, )*
            $( $load { dst: Slot, addr: Slot, offset: u32 }, )*
            $( $store { addr: Slot, value: Slot, offset: u32 }, )*
            /// Binary operators whose right operand is a constant (sign-extended for i64).
            $( $aimm { dst: Slot, lhs: Slot, imm: i32 }, )*
            /// Comparisons with a constant right operand.
            $( $cimm { dst: Slot, lhs: Slot, imm: i32 }, )*
            /// Fused compare-and-branch: jump to `target` when the comparison holds.
            $( $cbr { lhs: Slot, rhs: Slot, target: u32 }, )*
            $( $cbrimm { lhs: Slot, imm: i32, target: u32 }, )*
            /// Never emitted: declared last, so its tag is the number of real
            /// instructions and every tag is below it.
            Sentinel,
        }

        impl Instr {
            /// The immediate form of a binary operator or comparison, if it has one
            /// (`base` names the register form; `imm` is the constant right operand).
            pub(crate) fn with_imm(base: &Instr, dst: Slot, lhs: Slot, imm: i32) -> Option<Instr> {
                Some(match base {
                    $( Instr::$abase { .. } => Instr::$aimm { dst, lhs, imm }, )*
                    $( Instr::$cbase { .. } => Instr::$cimm { dst, lhs, imm }, )*
                    _ => return None,
                })
            }

            /// Whether this binary operator's constant operand may be sign-extended from
            /// 32 bits (64-bit operators) rather than taken as its 32 bits.
            pub(crate) fn imm_is_64(base: &Instr) -> bool {
                match base {
                    $( Instr::$abase { .. } => stringify!($at).contains("64"), )*
                    $( Instr::$cbase { .. } => stringify!($ct).contains("64"), )*
                    _ => false,
                }
            }

            /// Turns a comparison into the branch that jumps when it holds (or, with
            /// `negate`, when it does not). Only integer comparisons qualify, since
            /// only they negate exactly.
            pub(crate) fn to_branch(self, negate: bool, target: u32) -> Option<Instr> {
                Some(match (self, negate) {
                    $(
                        (Instr::$cbase { lhs, rhs, .. }, false) => Instr::$cbr { lhs, rhs, target },
                        (Instr::$cimm { lhs, imm, .. }, false) => Instr::$cbrimm { lhs, imm, target },
                        (Instr::$cbase { lhs, rhs, .. }, true) => {
                            return Instr::$cneg { dst: 0, lhs, rhs }.to_branch(false, target)
                        }
                        (Instr::$cimm { lhs, imm, .. }, true) => {
                            return Instr::$cneg { dst: 0, lhs, rhs: 0 }
                                .imm_branch(lhs, imm, target)
                        }
                    )*
                    _ => return None,
                })
            }

            /// The branch taken exactly when this conditional branch is not, to `target`.
            pub(crate) fn negated_branch(self, target: u32) -> Option<Instr> {
                Some(match self {
                    Instr::BrIfNez { cond, .. } => Instr::BrIfEqz { cond, target },
                    Instr::BrIfEqz { cond, .. } => Instr::BrIfNez { cond, target },
                    Instr::BrI32AddGeU { ab, dr, .. } => Instr::BrI32AddLtU { ab, dr, target },
                    Instr::BrI32AddLtU { ab, dr, .. } => Instr::BrI32AddGeU { ab, dr, target },
                    Instr::BrI32AddImmNe { ds, ki, .. } => Instr::BrI32AddImmEq { ds, ki, target },
                    Instr::BrI32AddImmEq { ds, ki, .. } => Instr::BrI32AddImmNe { ds, ki, target },
                    Instr::BrI32AddImmLtU { ds, ki, .. } => Instr::BrI32AddImmGeU { ds, ki, target },
                    Instr::BrI32AddImmGeU { ds, ki, .. } => Instr::BrI32AddImmLtU { ds, ki, target },
                    Instr::BrI32AddImmLtS { ds, ki, .. } => Instr::BrI32AddImmGeS { ds, ki, target },
                    Instr::BrI32AddImmGeS { ds, ki, .. } => Instr::BrI32AddImmLtS { ds, ki, target },
                    Instr::BrI32AddImmNez { x, imm, .. } => Instr::BrI32AddImmEqz { x, imm, target },
                    Instr::BrI32AddImmEqz { x, imm, .. } => Instr::BrI32AddImmNez { x, imm, target },
                    Instr::BrI32AddImmNeImm { xk, n, .. } => Instr::BrI32AddImmEqImm { xk, n, target },
                    Instr::BrI32AddImmEqImm { xk, n, .. } => Instr::BrI32AddImmNeImm { xk, n, target },
                    $(
                        Instr::$cbr { lhs, rhs, .. } => return Instr::$cneg { dst: 0, lhs, rhs }.to_branch(false, target),
                        Instr::$cbrimm { lhs, imm, .. } => {
                            return Instr::$cneg { dst: 0, lhs, rhs: 0 }.imm_branch(lhs, imm, target)
                        }
                    )*
                    _ => return None,
                })
            }

            fn imm_branch(self, lhs: Slot, imm: i32, target: u32) -> Option<Instr> {
                Some(match self {
                    $( Instr::$cbase { .. } => Instr::$cbrimm { lhs, imm, target }, )*
                    _ => return None,
                })
            }

            /// The branch target, for any instruction that jumps.
            pub(crate) fn branch_target_mut(&mut self) -> Option<&mut u32> {
                match self {
                    Instr::Br { target }
                    | Instr::BrIfNez { target, .. }
                    | Instr::BrIfEqz { target, .. }
                    | Instr::BrI32AddGeU { target, .. }
                    | Instr::BrI32AddLtU { target, .. }
                    | Instr::BrI32AddImmNe { target, .. }
                    | Instr::BrI32AddImmEq { target, .. }
                    | Instr::BrI32AddImmLtU { target, .. }
                    | Instr::BrI32AddImmGeU { target, .. }
                    | Instr::BrI32AddImmLtS { target, .. }
                    | Instr::BrI32AddImmGeS { target, .. }
                    | Instr::BrI32AddImmNez { target, .. }
                    | Instr::BrI32AddImmEqz { target, .. }
                    | Instr::BrI32AddImmNeImm { target, .. }
                    | Instr::BrI32AddImmEqImm { target, .. } => Some(target),
                    $( Instr::$cbr { target, .. } | Instr::$cbrimm { target, .. } => Some(target), )*
                    _ => None,
                }
            }
        }

        impl Instr {
            /// The single slot this instruction writes, for instructions that
            /// write exactly one slot and nothing else (used by the translator to
            /// retarget a result straight into a local).
            pub(crate) fn result_slot_mut(&mut self) -> Option<&mut Slot> {
                match self {
                    Instr::Copy { dst, .. }
                    | Instr::Const { dst, .. }
                    | Instr::GlobalGet { dst, .. }
                    | Instr::MemorySize { dst }
                    | Instr::MemoryGrow { dst, .. }
                    | Instr::TableGet { dst, .. }
                    | Instr::TableSize { dst, .. }
                    | Instr::RefFunc { dst, .. }
                    | Instr::I32LoadAt { dst, .. }
                    | Instr::I64LoadAt { dst, .. }
                    | Instr::I32Load8UAt { dst, .. }
                    | Instr::Select { dst, .. }
                    | Instr::I32LoadIdx { dst, .. }
                    | Instr::I64LoadIdx { dst, .. }
                    | Instr::I32Load8UIdx { dst, .. }
                    | Instr::F64MulAdd { dst, .. }
                    | Instr::F64MulSub { dst, .. }
                    | Instr::F64SubMul { dst, .. }
                    | Instr::I32RotlXor { dst, .. }
                    | Instr::I64RotlXor { dst, .. }
                    | Instr::I32XorRotl { dst, .. }
                    | Instr::I64XorRotl { dst, .. }
                    | Instr::I32AddShl { dst, .. }
                    | Instr::I32AddShrU { dst, .. }
                    | Instr::I32AddI32LtS { dst, .. }
                    | Instr::I32AddI32LtU { dst, .. }
                    | Instr::I32AddI64LtS { dst, .. }
                    | Instr::I32AddI64LtU { dst, .. }
                    | Instr::SelectKA { dst, .. }
                    | Instr::SelectKB { dst, .. }
                    | Instr::I32LoadAddImm { dst, .. }
                    | Instr::I64LoadAddImm { dst, .. }
                    | Instr::GlobalGetAddImm { dst, .. } => Some(dst),
                    $( Instr::$un { dst, .. } => Some(dst), )*
                    $( Instr::$bin { dst, .. } => Some(dst), )*
                    $( Instr::$load { dst, .. } => Some(dst), )*
                    $( Instr::$aimm { dst, .. } => Some(dst), )*
                    $( Instr::$cimm { dst, .. } => Some(dst), )*
                    _ => None,
                }
            }
        }
    };
}

// Used by both the translator and the executor, so each list is written once.
macro_rules! for_each_numeric {
    ($m:ident) => {
        $m! {
            unary {
                I32Eqz, I32Clz, I32Ctz, I32Popcnt, I32Extend8S, I32Extend16S,
                I64Eqz, I64Clz, I64Ctz, I64Popcnt, I64Extend8S, I64Extend16S, I64Extend32S,
                F32Abs, F32Neg, F32Ceil, F32Floor, F32Trunc, F32Nearest, F32Sqrt,
                F64Abs, F64Neg, F64Ceil, F64Floor, F64Trunc, F64Nearest, F64Sqrt,
                I32TruncF32S, I32TruncF32U, I32TruncF64S, I32TruncF64U,
                I64ExtendI32S, I64ExtendI32U,
                I64TruncF32S, I64TruncF32U, I64TruncF64S, I64TruncF64U,
                F32ConvertI32S, F32ConvertI32U, F32ConvertI64S, F32ConvertI64U, F32DemoteF64,
                F64ConvertI32S, F64ConvertI32U, F64ConvertI64S, F64ConvertI64U, F64PromoteF32,
                I32TruncSatF32S, I32TruncSatF32U, I32TruncSatF64S, I32TruncSatF64U,
                I64TruncSatF32S, I64TruncSatF32U, I64TruncSatF64S, I64TruncSatF64U,
            }
            binary {
                I32Eq, I32Ne, I32LtS, I32LtU, I32GtS, I32GtU, I32LeS, I32LeU, I32GeS, I32GeU,
                I64Eq, I64Ne, I64LtS, I64LtU, I64GtS, I64GtU, I64LeS, I64LeU, I64GeS, I64GeU,
                F32Eq, F32Ne, F32Lt, F32Gt, F32Le, F32Ge,
                F64Eq, F64Ne, F64Lt, F64Gt, F64Le, F64Ge,
                I32Add, I32Sub, I32Mul, I32DivS, I32DivU, I32RemS, I32RemU,
                I32And, I32Or, I32Xor, I32Shl, I32ShrS, I32ShrU, I32Rotl, I32Rotr,
                I64Add, I64Sub, I64Mul, I64DivS, I64DivU, I64RemS, I64RemU,
                I64And, I64Or, I64Xor, I64Shl, I64ShrS, I64ShrU, I64Rotl, I64Rotr,
                F32Add, F32Sub, F32Mul, F32Div, F32Min, F32Max, F32Copysign,
                F64Add, F64Sub, F64Mul, F64Div, F64Min, F64Max, F64Copysign,
            }
            load {
                I32Load, I64Load, F32Load, F64Load,
                I32Load8S, I32Load8U, I32Load16S, I32Load16U,
                I64Load8S, I64Load8U, I64Load16S, I64Load16U, I64Load32S, I64Load32U,
            }
            store {
                I32Store, I64Store, F32Store, F64Store,
                I32Store8, I32Store16, I64Store8, I64Store16, I64Store32,
            }
        }
    };
}
pub(crate) use for_each_numeric;

/// Operators with an immediate (constant right operand) form, and the integer
/// comparisons that fuse with a following branch. Columns: register form,
/// immediate form, [branch, branch-with-immediate, negated comparison,] operand type.
macro_rules! for_each_imm {
    ($m:ident; $($rest:tt)*) => {
        $m! {
            arith {
                I32Add I32AddImm u32, I32Sub I32SubImm u32, I32Mul I32MulImm u32,
                I32And I32AndImm u32, I32Or I32OrImm u32, I32Xor I32XorImm u32,
                I32Shl I32ShlImm u32, I32ShrS I32ShrSImm i32, I32ShrU I32ShrUImm u32,
                I32Rotl I32RotlImm u32, I32Rotr I32RotrImm u32,
                I64Add I64AddImm u64, I64Sub I64SubImm u64, I64Mul I64MulImm u64,
                I64And I64AndImm u64, I64Or I64OrImm u64, I64Xor I64XorImm u64,
                I64Shl I64ShlImm u64, I64ShrS I64ShrSImm i64, I64ShrU I64ShrUImm u64,
                I64Rotl I64RotlImm u64, I64Rotr I64RotrImm u64,
            }
            cmp {
                I32Eq I32EqImm BrI32Eq BrI32EqImm I32Ne u32,
                I32Ne I32NeImm BrI32Ne BrI32NeImm I32Eq u32,
                I32LtS I32LtSImm BrI32LtS BrI32LtSImm I32GeS i32,
                I32LtU I32LtUImm BrI32LtU BrI32LtUImm I32GeU u32,
                I32GtS I32GtSImm BrI32GtS BrI32GtSImm I32LeS i32,
                I32GtU I32GtUImm BrI32GtU BrI32GtUImm I32LeU u32,
                I32LeS I32LeSImm BrI32LeS BrI32LeSImm I32GtS i32,
                I32LeU I32LeUImm BrI32LeU BrI32LeUImm I32GtU u32,
                I32GeS I32GeSImm BrI32GeS BrI32GeSImm I32LtS i32,
                I32GeU I32GeUImm BrI32GeU BrI32GeUImm I32LtU u32,
                I64Eq I64EqImm BrI64Eq BrI64EqImm I64Ne u64,
                I64Ne I64NeImm BrI64Ne BrI64NeImm I64Eq u64,
                I64LtS I64LtSImm BrI64LtS BrI64LtSImm I64GeS i64,
                I64LtU I64LtUImm BrI64LtU BrI64LtUImm I64GeU u64,
                I64GtS I64GtSImm BrI64GtS BrI64GtSImm I64LeS i64,
                I64GtU I64GtUImm BrI64GtU BrI64GtUImm I64LeU u64,
                I64LeS I64LeSImm BrI64LeS BrI64LeSImm I64GtS i64,
                I64LeU I64LeUImm BrI64LeU BrI64LeUImm I64GtU u64,
                I64GeS I64GeSImm BrI64GeS BrI64GeSImm I64LtS i64,
                I64GeU I64GeUImm BrI64GeU BrI64GeUImm I64LtU u64,
            }
            ; $($rest)*
        }
    };
}

for_each_numeric!(define_instrs);

const _: () = assert!(std::mem::size_of::<Instr>() <= 16);

impl Instr {
    /// The instruction's tag: its index in declaration order, stored in its
    /// first two bytes (`repr(u16)`).
    #[inline(always)]
    pub(crate) const fn tag(&self) -> usize {
        // SAFETY: `Instr` is `repr(u16)`: every variant is laid out as a `repr(C)`
        // struct whose first field is the `u16` tag, so the first two bytes of
        // any `Instr` are an initialised `u16`, suitably aligned.
        unsafe { *(self as *const Instr as *const u16) as usize }
    }

    /// One more than the largest tag.
    pub(crate) const NUM_TAGS: usize = Instr::Sentinel.tag();
}

impl Instr {
    /// For the packed forms whose last write goes to a slot in the low 16 bits of
    /// a field (destination | source << 16), that field: what the translator
    /// rewrites to retarget the result, as `result_slot_mut` gives for the others.
    pub(crate) fn packed_result_mut(&mut self) -> Option<&mut u32> {
        match self {
            Instr::I32AddImm2 { second: ds, .. }
            | Instr::CopyPair { second: ds, .. }
            | Instr::F64AddK { ds, .. }
            | Instr::F64SubK { ds, .. }
            | Instr::F64KSub { ds, .. }
            | Instr::F64MulK { ds, .. }
            | Instr::F64DivK { ds, .. }
            | Instr::F64KDiv { ds, .. } => Some(ds),
            _ => None,
        }
    }
}

/// Every SIMD operator, grouped by shape. The shape fixes what the operands of
/// [`Instr::Simd`] mean (all `v` operands are v128 slot pairs):
///
/// | shape        | stack effect        | `a`            | `b`        | `c`          | `lane` |
/// |--------------|---------------------|----------------|------------|--------------|--------|
/// | `load`       | addr → v            | dst            | addr       | offset       |        |
/// | `store`      | addr v →            | addr           | v          | offset       |        |
/// | `load_lane`  | addr v → v          | dst (holds v)  | addr       | offset       | lane   |
/// | `store_lane` | addr v →            | addr           | v          | offset       | lane   |
/// | `extract`    | v → x               | dst            | v          |              | lane   |
/// | `replace`    | v x → v             | dst (holds v)  | x          |              | lane   |
/// | `splat`      | x → v               | dst            | x          |              |        |
/// | `unary`      | v → v               | dst            | v          |              |        |
/// | `test`       | v → i32             | dst            | v          |              |        |
/// | `binary`     | v v → v             | dst            | lhs        | rhs          |        |
/// | `shift`      | v i32 → v           | dst            | v          | count        |        |
/// | `ternary`    | v v v → v           | dst (holds v1) | v2         | v3           |        |
///
/// `i8x16.shuffle` is a `ternary` whose third operand is its lane mask, written
/// to a temp by the translator; `v128.const` is two `Const` instructions.
///
/// Relaxed SIMD is deterministic: each relaxed instruction gives the same
/// result on every host and in both tiers, the one listed in
/// [`crate::module::relaxed`]. Those whose result is an existing instruction's
/// are translated as it (`i8x16.relaxed_swizzle` as `I8x16Swizzle`, the
/// relaxed truncations as the `trunc_sat` ones, `relaxed_laneselect` as
/// `V128Bitselect`, `relaxed_min`/`max` as `min`/`max`,
/// `i16x8.relaxed_q15mulr_s` as `I16x8Q15MulrSatS`); the others have their
/// own operators: the multiply-adds, unfused (`a * b + c` and `-(a * b) + c`,
/// rounded twice), and the dot products, both operands signed (products added
/// pairwise with 16-bit wrapping, then for `_add_s` widened, added pairwise
/// and added to the accumulator).
///
/// The operator, lane and `a` share one 32-bit field ([`pack_simd`]) so that
/// every field of [`Instr`] stays 4-byte aligned after the 2-byte tag: a field
/// in bytes 2..4 made the dispatch loop keep a copy of the instruction pointer
/// (measured: +7% instructions executed on scalar code).
macro_rules! for_each_simd {
    ($m:ident) => {
        $m! {
            load {
                V128Load, V128Load8x8S, V128Load8x8U, V128Load16x4S, V128Load16x4U,
                V128Load32x2S, V128Load32x2U, V128Load8Splat, V128Load16Splat,
                V128Load32Splat, V128Load64Splat, V128Load32Zero, V128Load64Zero,
            }
            store { V128Store }
            load_lane { V128Load8Lane, V128Load16Lane, V128Load32Lane, V128Load64Lane }
            store_lane { V128Store8Lane, V128Store16Lane, V128Store32Lane, V128Store64Lane }
            extract {
                I8x16ExtractLaneS, I8x16ExtractLaneU, I16x8ExtractLaneS, I16x8ExtractLaneU,
                I32x4ExtractLane, I64x2ExtractLane, F32x4ExtractLane, F64x2ExtractLane,
            }
            replace {
                I8x16ReplaceLane, I16x8ReplaceLane, I32x4ReplaceLane, I64x2ReplaceLane,
                F32x4ReplaceLane, F64x2ReplaceLane,
            }
            splat { I8x16Splat, I16x8Splat, I32x4Splat, I64x2Splat, F32x4Splat, F64x2Splat }
            unary {
                V128Not, I8x16Abs, I8x16Neg, I8x16Popcnt,
                I16x8ExtAddPairwiseI8x16S, I16x8ExtAddPairwiseI8x16U, I16x8Abs, I16x8Neg,
                I16x8ExtendLowI8x16S, I16x8ExtendHighI8x16S, I16x8ExtendLowI8x16U, I16x8ExtendHighI8x16U,
                I32x4ExtAddPairwiseI16x8S, I32x4ExtAddPairwiseI16x8U, I32x4Abs, I32x4Neg,
                I32x4ExtendLowI16x8S, I32x4ExtendHighI16x8S, I32x4ExtendLowI16x8U, I32x4ExtendHighI16x8U,
                I64x2Abs, I64x2Neg,
                I64x2ExtendLowI32x4S, I64x2ExtendHighI32x4S, I64x2ExtendLowI32x4U, I64x2ExtendHighI32x4U,
                F32x4Ceil, F32x4Floor, F32x4Trunc, F32x4Nearest, F32x4Abs, F32x4Neg, F32x4Sqrt,
                F64x2Ceil, F64x2Floor, F64x2Trunc, F64x2Nearest, F64x2Abs, F64x2Neg, F64x2Sqrt,
                I32x4TruncSatF32x4S, I32x4TruncSatF32x4U, F32x4ConvertI32x4S, F32x4ConvertI32x4U,
                I32x4TruncSatF64x2SZero, I32x4TruncSatF64x2UZero,
                F64x2ConvertLowI32x4S, F64x2ConvertLowI32x4U,
                F32x4DemoteF64x2Zero, F64x2PromoteLowF32x4,
            }
            test {
                V128AnyTrue, I8x16AllTrue, I8x16Bitmask, I16x8AllTrue, I16x8Bitmask,
                I32x4AllTrue, I32x4Bitmask, I64x2AllTrue, I64x2Bitmask,
            }
            binary {
                I8x16Swizzle,
                I8x16Eq, I8x16Ne, I8x16LtS, I8x16LtU, I8x16GtS, I8x16GtU, I8x16LeS, I8x16LeU, I8x16GeS, I8x16GeU,
                I16x8Eq, I16x8Ne, I16x8LtS, I16x8LtU, I16x8GtS, I16x8GtU, I16x8LeS, I16x8LeU, I16x8GeS, I16x8GeU,
                I32x4Eq, I32x4Ne, I32x4LtS, I32x4LtU, I32x4GtS, I32x4GtU, I32x4LeS, I32x4LeU, I32x4GeS, I32x4GeU,
                I64x2Eq, I64x2Ne, I64x2LtS, I64x2GtS, I64x2LeS, I64x2GeS,
                F32x4Eq, F32x4Ne, F32x4Lt, F32x4Gt, F32x4Le, F32x4Ge,
                F64x2Eq, F64x2Ne, F64x2Lt, F64x2Gt, F64x2Le, F64x2Ge,
                V128And, V128AndNot, V128Or, V128Xor,
                I8x16NarrowI16x8S, I8x16NarrowI16x8U,
                I8x16Add, I8x16AddSatS, I8x16AddSatU, I8x16Sub, I8x16SubSatS, I8x16SubSatU,
                I8x16MinS, I8x16MinU, I8x16MaxS, I8x16MaxU, I8x16AvgrU,
                I16x8Q15MulrSatS, I16x8NarrowI32x4S, I16x8NarrowI32x4U,
                I16x8Add, I16x8AddSatS, I16x8AddSatU, I16x8Sub, I16x8SubSatS, I16x8SubSatU, I16x8Mul,
                I16x8MinS, I16x8MinU, I16x8MaxS, I16x8MaxU, I16x8AvgrU,
                I16x8ExtMulLowI8x16S, I16x8ExtMulHighI8x16S, I16x8ExtMulLowI8x16U, I16x8ExtMulHighI8x16U,
                I32x4Add, I32x4Sub, I32x4Mul, I32x4MinS, I32x4MinU, I32x4MaxS, I32x4MaxU, I32x4DotI16x8S,
                I32x4ExtMulLowI16x8S, I32x4ExtMulHighI16x8S, I32x4ExtMulLowI16x8U, I32x4ExtMulHighI16x8U,
                I64x2Add, I64x2Sub, I64x2Mul,
                I64x2ExtMulLowI32x4S, I64x2ExtMulHighI32x4S, I64x2ExtMulLowI32x4U, I64x2ExtMulHighI32x4U,
                F32x4Add, F32x4Sub, F32x4Mul, F32x4Div, F32x4Min, F32x4Max, F32x4PMin, F32x4PMax,
                F64x2Add, F64x2Sub, F64x2Mul, F64x2Div, F64x2Min, F64x2Max, F64x2PMin, F64x2PMax,
                I16x8RelaxedDotI8x16I7x16S,
            }
            shift {
                I8x16Shl, I8x16ShrS, I8x16ShrU, I16x8Shl, I16x8ShrS, I16x8ShrU,
                I32x4Shl, I32x4ShrS, I32x4ShrU, I64x2Shl, I64x2ShrS, I64x2ShrU,
            }
            ternary {
                V128Bitselect, I8x16Shuffle,
                F32x4RelaxedMadd, F32x4RelaxedNmadd, F64x2RelaxedMadd, F64x2RelaxedNmadd,
                I32x4RelaxedDotI8x16I7x16AddS,
            }
        }
    };
}
pub(crate) use for_each_simd;

macro_rules! define_simd_op {
    ($($shape:ident { $($op:ident),* $(,)? })*) => {
        /// A SIMD operator (named as wasmparser names the instruction); see
        /// [`for_each_simd`] for the operand conventions of each shape.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub(crate) enum SimdOp {
            $($($op,)*)*
        }

        /// Every operator, in declaration order (`SimdOp as usize` indexes it).
        pub(crate) const ALL_SIMD_OPS: &[SimdOp] = &[$($(SimdOp::$op,)*)*];

        impl SimdOp {
            /// Whether `a` is only a destination (written, never read), so the
            /// translator may retarget it like any other result slot.
            pub(crate) fn a_is_result(self) -> bool {
                match self {
                    $($(SimdOp::$op => simd_shape_writes_a!($shape),)*)*
                }
            }
        }
    };
}

macro_rules! simd_shape_writes_a {
    (load) => {
        true
    };
    (extract) => {
        true
    };
    (splat) => {
        true
    };
    (unary) => {
        true
    };
    (test) => {
        true
    };
    (binary) => {
        true
    };
    (shift) => {
        true
    };
    ($other:ident) => {
        false
    };
}
for_each_simd!(define_simd_op);

/// Bits of [`Instr::Simd`]'s `head` that hold slot `a`; the operator takes the
/// next 8 bits and the lane the top 4. A frame is at most 2^20 slots (8 MiB) for
/// a function with SIMD, which the default stack limit (1 Mi slots) implies anyway.
pub(crate) const SIMD_SLOT_BITS: u32 = 20;
const _: () = assert!(ALL_SIMD_OPS.len() <= 256);

/// Packs a SIMD operator, its lane immediate and slot `a`; `None` if `a` does not fit.
pub(crate) fn pack_simd(op: SimdOp, lane: u8, a: Slot) -> Option<u32> {
    (a < 1 << SIMD_SLOT_BITS && lane < 16)
        .then_some(a | (op as u32) << SIMD_SLOT_BITS | (lane as u32) << (SIMD_SLOT_BITS + 8))
}

/// [`unpack_simd`] with the operator as its index (`SimdOp as usize`).
#[inline(always)]
pub(crate) fn unpack_simd_index(head: u32) -> (usize, u8, Slot) {
    (
        ((head >> SIMD_SLOT_BITS) & 0xff) as usize,
        (head >> (SIMD_SLOT_BITS + 8)) as u8,
        head & ((1 << SIMD_SLOT_BITS) - 1),
    )
}

/// The inverse of [`pack_simd`].
#[inline(always)]
pub(crate) fn unpack_simd(head: u32) -> (SimdOp, u8, Slot) {
    let op = ALL_SIMD_OPS[((head >> SIMD_SLOT_BITS) & 0xff) as usize];
    (op, (head >> (SIMD_SLOT_BITS + 8)) as u8, head & ((1 << SIMD_SLOT_BITS) - 1))
}
