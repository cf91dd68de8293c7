//! The handler template: `handlers!` turns each arm of the handler list into a
//! handler function (one per accumulator form) and builds the tables over all
//! of them (`Table::handler`, `ACC_FORMS`, `acc_form`, `mark_acc`...,
//! `threaded_instrs!`); `collect_handlers!` gathers the arms from the category
//! modules (`control`, `variables`, `numeric`, `fused`, `memory`) into that one
//! invocation.
//!
//! Why one invocation, expanded in `threaded` (mod.rs): the tables are single
//! `match`es over every instruction, and the handlers stay functions of one
//! module, as they were in one file (same code, same symbol names, which the
//! tail-call test reads). Each category module defines a macro that appends
//! its group of arms (with the names of the handler's arguments, which must
//! come from the same macro as the arms that use them: macro hygiene) and
//! passes the list on.

/// Calls each category macro in `[...]` in turn, each appending its group of
/// arms, then `handlers!` with all of them. `$d` is `$` (for the helper macros
/// that `handlers!` defines inside each handler).
macro_rules! collect_handlers {
    ($d:tt [$next:ident $($rest:ident)*] $($done:tt)*) => {
        $next! { $d [$($rest)*] $($done)* }
    };
    ($d:tt [] $($done:tt)*) => {
        handlers! { $($done)* }
    };
}
pub(super) use collect_handlers;

/// Defines one handler per listed instruction (each arm's body is written as
/// in a `match` over the instruction, with the helper macros below in scope),
/// the handler tables, and `threaded_instrs!()`, the pattern matching exactly
/// the instructions that have a handler (which `exec` hands to [`run`]).
macro_rules! handlers {
    (special { $( $sv:ident { $($sf:ident),* } ),* $(,)? }
     $( group $d:tt ($ip:ident, $fp:ident, $mem_base:ident, $mem_len:ident, $acc:ident, $chunk_map:ident, $cx:ident) {
        $( $([$($form:literal),*])? $v:ident { $($f:ident),* } => $body:expr ),* $(,)?
     } )*) => {
        $( $(
            #[allow(non_snake_case, unused_mut, unused_variables, unused_macros, unused_unsafe, unused_assignments, unreachable_code)]
            unsafe fn $v<const TRACK: bool, const F: u8>(
                $ip: *const Cell,
                $fp: *mut u64,
                $mem_base: *mut u8,
                $mem_len: usize,
                $acc: u64,
                $cx: *mut CallCx,
            ) -> usize {
                // SAFETY: `handler_for` gives this handler to this variant only.
                let Instr::$v { $($f),* } = (unsafe { (*$ip).instr }) else {
                    unsafe { std::hint::unreachable_unchecked() }
                };
                let branch_from = $ip;
                // The accumulator as the handler received it, kept by an
                // out-of-bounds trap so that `exec` can run the instruction again
                // when another thread grew a shared memory meanwhile.
                let acc_in = $acc;
                let mut $acc = $acc;
                let mut $ip = unsafe { $ip.add(1) };
                let $chunk_map = $mem_base.wrapping_sub(CHUNK_MAP_OFFSET);
                macro_rules! trap {
                    ($d kind:expr) => {
                        {
                            // SAFETY: `cx` is valid for the whole run.
                            unsafe {
                                (*$cx).trap = $d kind;
                                (*$cx).trap_at = branch_from;
                                if matches!($d kind, TrapKind::MemoryOutOfBounds) {
                                    (*$cx).acc = acc_in;
                                }
                            }
                            return TRAP;
                        }
                    };
                }
                // A divisor, trapping if it is zero.
                macro_rules! divisor {
                    ($d b:expr) => {{
                        let b = $d b;
                        if b == 0 {
                            trap!(TrapKind::IntegerDivisionByZero);
                        }
                        b
                    }};
                }
                macro_rules! tri {
                    ($d e:expr) => {
                        match $d e {
                            Ok(v) => v,
                            Err(kind) => trap!(kind),
                        }
                    };
                }
                // SAFETY (all slot accesses): slot operands are below the frame size.
                // A field named as an operand (`lhs`...) or the result (`dst`) is the
                // accumulator instead of a slot when this handler's form `F` says so
                // (decided at compile time: `acc_bit` of the field's name); other
                // operands are slots. Arguments are token trees so that a field's
                // name reaches `rd!`/`wr!` (an expression would hide it); a result in a
                // packed half is written `(ds & 0xffff)`, one token tree.
                macro_rules! rd {
                    // Halves of a packed field (`PACKED_ACC`).
                    ($d f:ident & 0xffff) => {
                        if const { F & packed_bit(stringify!($d f), false) & (ACC_A | ACC_B) != 0 } {
                            $acc
                        } else {
                            unsafe { *$fp.add(($d f & 0xffff) as usize) }
                        }
                    };
                    ($d f:ident >> 16) => {
                        if const { F & packed_bit(stringify!($d f), true) & (ACC_A | ACC_B) != 0 } {
                            $acc
                        } else {
                            unsafe { *$fp.add(($d f >> 16) as usize) }
                        }
                    };
                    ($d s:ident) => {
                        if const { F & acc_bit(stringify!($d s)) & (ACC_A | ACC_B) != 0 } {
                            $acc
                        } else {
                            debug_assert_eq!($d s as u32 & ACC, 0, "an accumulator mark this form does not read");
                            unsafe { *$fp.add($d s as usize) }
                        }
                    };
                    ($d s:expr) => {{
                        // Only fields named as operands can be the accumulator.
                        debug_assert_eq!(($d s) as u32 & ACC, 0, "an accumulator mark in an unnamed operand");
                        unsafe { *$fp.add($d s as usize) }
                    }};
                }
                macro_rules! wr {
                    // The result half of a packed field, written in parentheses.
                    (($d f:ident & 0xffff), $d v:expr) => {{
                        let v: u64 = $d v;
                        if const { F & packed_bit(stringify!($d f), false) & ACC_DST != 0 } {
                            $acc = v;
                        } else {
                            unsafe { *$fp.add(($d f & 0xffff) as usize) = v }
                        }
                    }};
                    ($d s:ident, $d v:expr) => {{
                        let v: u64 = $d v;
                        if const { F & acc_bit(stringify!($d s)) & ACC_DST != 0 } {
                            $acc = v;
                        } else {
                            debug_assert_eq!($d s as u32 & ACC, 0, "an accumulator mark this form does not write");
                            unsafe { *$fp.add($d s as usize) = v }
                        }
                    }};
                    ($d s:expr, $d v:expr) => {{
                        let v: u64 = $d v;
                        debug_assert_eq!(($d s) as u32 & ACC, 0, "an accumulator mark in an unnamed result");
                        unsafe { *$fp.add($d s as usize) = v }
                    }};
                }
                macro_rules! u32_ { ($d($d s:tt)+) => { rd!($d($d s)+) as u32 }; }
                macro_rules! i32_ { ($d($d s:tt)+) => { rd!($d($d s)+) as u32 as i32 }; }
                macro_rules! i64_ { ($d($d s:tt)+) => { rd!($d($d s)+) as i64 }; }
                macro_rules! f32_ { ($d($d s:tt)+) => { f32::from_bits(rd!($d($d s)+) as u32) }; }
                macro_rules! f64_ { ($d($d s:tt)+) => { f64::from_bits(rd!($d($d s)+)) }; }
                macro_rules! w32 { ($d d:tt, $d v:expr) => { wr!($d d, ($d v) as u32 as u64) }; }
                macro_rules! w64 { ($d d:tt, $d v:expr) => { wr!($d d, ($d v) as u64) }; }
                macro_rules! wf32 { ($d d:tt, $d v:expr) => { wr!($d d, f32::to_bits($d v) as u64) }; }
                macro_rules! wf64 { ($d d:tt, $d v:expr) => { wr!($d d, f64::to_bits($d v)) }; }
                macro_rules! wbool { ($d d:tt, $d v:expr) => { wr!($d d, ($d v) as u64) }; }
                // A taken branch dispatches right here, so that it has an indirect jump
                // of its own (predicted apart from the fall-through one) instead of
                // selecting the next address with a conditional move.
                macro_rules! jump {
                    ($d target:expr) => {
                        // SAFETY: branch targets are the byte distance from the branch to an
                        // instruction of the current function's code (`Translator::cell`).
                        return unsafe {
                            let to = branch_from.byte_offset($d target as i32 as isize);
                            next::<TRACK>(to, $fp, $mem_base, $mem_len, $acc, $cx)
                        }
                    };
                }
                macro_rules! effective {
                    ($d addr:tt, $d offset:expr, $d n:expr) => {{
                        let ea = rd!($d addr) as u32 as usize + $d offset as usize;
                        if ea + $d n > $mem_len {
                            trap!(TrapKind::MemoryOutOfBounds);
                        }
                        ea
                    }};
                }
                // A load from `(b + i) mod 2^32 + offset`, `bi` packing the slots of b and i.
                macro_rules! load_idx {
                    ($d dst:tt, $d bi:ident, $d offset:expr, $d n:literal, |$d b:ident| $d conv:expr) => {{
                        let ea = u32_!($d bi & 0xffff).wrapping_add(u32_!($d bi >> 16)) as usize + $d offset as usize;
                        if ea + $d n > $mem_len {
                            trap!(TrapKind::MemoryOutOfBounds);
                        }
                        // SAFETY: ea + n <= $mem_len, checked just above.
                        let $d b: [u8; $d n] = unsafe { ptr::read_unaligned($mem_base.add(ea) as *const [u8; $d n]) };
                        wr!($d dst, $d conv);
                    }};
                }
                macro_rules! load {
                    ($d dst:tt, $d addr:tt, $d offset:expr, $d n:literal, |$d b:ident| $d conv:expr) => {{
                        let ea = effective!($d addr, $d offset, $d n);
                        // SAFETY: ea + n <= $mem_len, checked just above.
                        let $d b: [u8; $d n] = unsafe { ptr::read_unaligned($mem_base.add(ea) as *const [u8; $d n]) };
                        wr!($d dst, $d conv);
                    }};
                }
                // Copies n bytes from `src + src_offset` to `dst + dst_offset`, `addrs`
                // packing the slots of src and dst; traps as a load then a store would.
                macro_rules! copy_word {
                    ($d addrs:expr, $d src_offset:expr, $d dst_offset:expr, $d n:literal) => {{
                        let from = effective!(($d addrs & 0xffff), $d src_offset, $d n);
                        let to = effective!(($d addrs >> 16), $d dst_offset, $d n);
                        // SAFETY: both accesses are inside the memory (`effective!`); the
                        // chunk map holds a byte for every 4 KiB of it (as in `store!`).
                        unsafe {
                            let v: [u8; $d n] = ptr::read_unaligned($mem_base.add(from) as *const [u8; $d n]);
                            if TRACK {
                                *$chunk_map.add(to >> CHUNK_SHIFT) = 1;
                            }
                            ptr::write_unaligned($mem_base.add(to) as *mut [u8; $d n], v);
                        }
                    }};
                }
                macro_rules! store_at {
                    ($d value:tt, $d ea:expr, $d n:literal, |$d v:ident| $d bytes:expr) => {{
                        let ea = $d ea as usize;
                        if ea + $d n > $mem_len {
                            trap!(TrapKind::MemoryOutOfBounds);
                        }
                        let $d v = rd!($d value);
                        let bytes: [u8; $d n] = $d bytes;
                        // SAFETY: as in `store!`.
                        unsafe {
                            if TRACK {
                                *$chunk_map.add(ea >> CHUNK_SHIFT) = 1;
                            }
                            ptr::write_unaligned($mem_base.add(ea) as *mut [u8; $d n], bytes);
                        }
                    }};
                }
                macro_rules! store {
                    ($d addr:tt, $d value:tt, $d offset:expr, $d n:literal, |$d v:ident| $d bytes:expr) => {{
                        let ea = effective!($d addr, $d offset, $d n);
                        let $d v = rd!($d value);
                        let bytes: [u8; $d n] = $d bytes;
                        // SAFETY: ea + n <= $mem_len, checked just above; every mapped memory has
                        // its chunk map CHUNK_MAP_OFFSET below its base (`runtime::memory`), one
                        // byte per 4 KiB, so ea's byte is in it.
                        unsafe {
                            if TRACK {
                                *$chunk_map.add(ea >> CHUNK_SHIFT) = 1;
                            }
                            ptr::write_unaligned($mem_base.add(ea) as *mut [u8; $d n], bytes);
                        }
                    }};
                }
                $body;
                // SAFETY: `$ip` is the next instruction (or a branch target) of the same code.
                unsafe { next::<TRACK>($ip, $fp, $mem_base, $mem_len, $acc, $cx) }
            }
        )* )*

        impl<const TRACK: bool> Table<TRACK> {
            /// The handler of `instr` in `form` (`ACC_*` bits); `exit` for a form
            /// the instruction lacks. A `match` rather than a table of function
            /// pointers: the compiler turns it into a jump table of relative
            /// offsets and `lea`s, so the binary carries no table that the loader
            /// must relocate at start-up (a table was 7,000 relocated pointers:
            /// 170 KB of relocation records and 57 KB of dirty pages per process).
            fn handler(instr: &Instr, form: u8) -> Handler {
                match (instr, form) {
                    $( $( (Instr::$v { .. }, 0) => $v::<TRACK, 0>, )* )*
                    $( $( $( $( (Instr::$v { .. }, $form) => $v::<TRACK, $form>, )* )? )* )*
                    $( (Instr::$sv { .. }, 0) => $sv::<TRACK>, )*
                    _ => exit,
                }
            }
        }

        /// The accumulator forms each instruction has, by tag (bit `f` for form `f`).
        const ACC_FORMS: [u8; Instr::NUM_TAGS] = {
            let mut t = [0u8; Instr::NUM_TAGS];
            $( $( {
                let _tag = Instr::$v { $($f: 0),* }.tag();
                $( $( t[_tag] |= 1 << $form; )* )?
            } )* )*
            t
        };

        /// Which of the instruction's operand and result fields name the
        /// accumulator (`ACC_*` bits; see [`ACC`]).
        pub(super) fn acc_form(instr: &Instr) -> u8 {
            match instr {
                $( $( Instr::$v { $($f),* } => 0 $( | $f.acc_bits(const { acc_bit(stringify!($f)) }) )*, )* )*
                _ => 0,
            }
        }

        /// Clears the accumulator mark of every operand and result field of the
        /// instruction that names `ACC | slot`, which then names `slot` again.
        pub(super) fn clear_acc(instr: &mut Instr, slot: u32) {
            match instr {
                $( $( Instr::$v { $($f),* } => { $( $f.clear_acc(const { acc_bit(stringify!($f)) }, slot); )* } )* )*
                _ => {}
            }
        }

        /// Calls `visit` with the form bit and the slot of every field marked as
        /// the accumulator.
        pub(super) fn acc_marks(instr: &Instr, mut visit: impl FnMut(u8, u32)) {
            acc_marks_dyn(instr, &mut visit)
        }

        /// `acc_marks`, compiled once (a match over every instruction: 21 KB).
        fn acc_marks_dyn(instr: &Instr, visit: &mut dyn FnMut(u8, u32)) {
            match instr {
                $( $( Instr::$v { $($f),* } => { $( $f.visit_acc(const { acc_bit(stringify!($f)) }, visit); )* } )* )*
                _ => {}
            }
        }

        /// The form bits (`ACC_A`, `ACC_B`) of the operand fields that read `slot`.
        pub(super) fn operands_reading(instr: &Instr, slot: u32) -> u8 {
            match instr {
                $( $( Instr::$v { $($f),* } => 0 $( | $f.reads(const { acc_bit(stringify!($f)) }, slot) )*, )* )*
                _ => 0,
            }
        }

        /// Marks the fields whose form bit is `bit` and which name `slot` as the
        /// accumulator.
        pub(super) fn mark_acc(instr: &mut Instr, bit: u8, slot: u32) {
            match instr {
                $( $( Instr::$v { $($f),* } => { $( $f.mark(const { acc_bit(stringify!($f)) }, bit, slot); )* } )* )*
                _ => {}
            }
        }

        /// The pattern of every instruction whose handler never ends a run (the
        /// `special` ones sometimes do, and `exec` then runs them itself).
        macro_rules! threaded_instrs {
            () => { $( $( Instr::$v { .. } )|* )|* };
        }
        pub(super) use threaded_instrs;
    };
}
pub(super) use handlers;
