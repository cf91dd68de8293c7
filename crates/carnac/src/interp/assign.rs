//! Definite assignment of locals: which declared locals a function may read
//! before writing them. Only those need zeroing when a call enters the function;
//! in code compiled from Rust or C most locals are written first on every path,
//! and zeroing all of them was a fifth of the cost of a call.
//!
//! Runs alongside translation, on the same validated operators, one forward
//! pass over wasm's structured control flow (the rules are the ones a compiler
//! uses for "definitely assigned"): the set of assigned locals only grows along
//! a path; a block's end gets the intersection of the sets of every branch to it
//! and of its fall-through; a loop's start keeps the set it was entered with
//! (every back edge comes from inside the loop, so carries a superset); an `if`
//! without `else` merges the set before it; code after an unconditional branch
//! is unreachable and reads nothing. A `local.get` of a local outside the set
//! marks the local as read-before-written.
//!
//! What it must not touch: the translator's own state. It sees operators only,
//! and gives up (every local read-before-written) on any control operator it
//! does not model, so a new proposal cannot make it unsound.

use wasmparser::Operator;

/// Functions with more locals than this are not analysed (every local is
/// zeroed): the pass copies a bit set per branch, so it stays linear in the body.
const MAX_LOCALS: u32 = 4096;

/// A set of local indices.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Set(Vec<u64>);

impl Set {
    fn empty(n: u32) -> Set {
        Set(vec![0; (n as usize).div_ceil(64)])
    }
    fn contains(&self, i: u32) -> bool {
        self.0[i as usize / 64] & (1 << (i % 64)) != 0
    }
    fn insert(&mut self, i: u32) {
        self.0[i as usize / 64] |= 1 << (i % 64);
    }
    fn intersect(&mut self, other: &Set) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= b;
        }
    }
}

/// One enclosing block, loop or `if`.
#[derive(Debug)]
struct Frame {
    is_loop: bool,
    /// The set on entry (an `if`'s `else` starts from it; a loop's branches
    /// target its start, so they merge nothing).
    entry: Set,
    /// For an `if` without `else` so far: its false path falls to the end with `entry`.
    open_if: bool,
    /// The intersection of the sets at every branch to the end so far (`None`: none yet).
    at_end: Option<Set>,
}

/// The analysis state for one function body.
#[derive(Debug, Default)]
pub(super) struct Assignment {
    num_locals: u32,
    /// The set at the current point, `None` where the code is unreachable.
    current: Option<Set>,
    frames: Vec<Frame>,
    /// Locals that some path may read before writing (`None`: gave up, all).
    read_first: Option<Set>,
}

impl Assignment {
    /// Starts a body with `num_locals` locals in all, the first `num_params`
    /// of them parameters (assigned on entry).
    pub fn start(&mut self, num_params: u32, num_locals: u32) {
        self.num_locals = num_locals;
        self.frames.clear();
        if num_locals > MAX_LOCALS {
            self.current = None;
            self.read_first = None;
            return;
        }
        let mut set = Set::empty(num_locals);
        for p in 0..num_params {
            set.insert(p);
        }
        self.read_first = Some(Set::empty(num_locals));
        // The function body is a block whose end is the return.
        self.frames.push(Frame { is_loop: false, entry: set.clone(), open_if: false, at_end: None });
        self.current = Some(set);
    }

    /// Whether local `index` may be read before it is written (once the whole
    /// body has been seen).
    pub fn read_first(&self, index: u32) -> bool {
        self.read_first.as_ref().is_none_or(|s| s.contains(index))
    }

    fn give_up(&mut self) {
        self.read_first = None;
        self.frames.clear();
    }

    /// Merges the current set into the end of the block `depth` levels out.
    fn branch(&mut self, depth: u32) {
        let Some(current) = &self.current else { return };
        let Some(at) = self.frames.len().checked_sub(1 + depth as usize) else {
            return self.give_up();
        };
        let frame = &mut self.frames[at];
        if frame.is_loop {
            return;
        }
        match &mut frame.at_end {
            Some(s) => s.intersect(current),
            None => frame.at_end = Some(current.clone()),
        }
    }

    pub fn op(&mut self, op: &Operator<'_>) {
        if self.read_first.is_none() {
            return;
        }
        match *op {
            Operator::LocalGet { local_index } => {
                if let (Some(current), Some(read_first)) = (&self.current, &mut self.read_first) {
                    if !current.contains(local_index) {
                        read_first.insert(local_index);
                    }
                }
            }
            Operator::LocalSet { local_index } | Operator::LocalTee { local_index } => {
                if let Some(current) = &mut self.current {
                    current.insert(local_index);
                }
            }
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                // Code that cannot be reached stays so to its `end` (the frame is
                // pushed anyway to pair with that `end`).
                let entry = self.current.clone().unwrap_or_else(|| Set::empty(self.num_locals));
                let is_if = matches!(op, Operator::If { .. });
                let is_loop = matches!(op, Operator::Loop { .. });
                let open_if = is_if && self.current.is_some();
                self.frames.push(Frame { is_loop, entry, open_if, at_end: None });
            }
            Operator::Else => {
                self.branch(0);
                let Some(frame) = self.frames.last_mut() else {
                    return self.give_up();
                };
                self.current = frame.open_if.then(|| frame.entry.clone());
                frame.open_if = false;
            }
            Operator::End => {
                let Some(frame) = self.frames.pop() else {
                    return self.give_up();
                };
                let mut end = frame.at_end;
                let mut merge = |s: &Set| match &mut end {
                    Some(e) => e.intersect(s),
                    None => end = Some(s.clone()),
                };
                if let Some(current) = &self.current {
                    merge(current);
                }
                if frame.open_if {
                    merge(&frame.entry);
                }
                self.current = end;
            }
            Operator::Br { relative_depth } => {
                self.branch(relative_depth);
                self.current = None;
            }
            Operator::BrIf { relative_depth }
            | Operator::BrOnNull { relative_depth }
            | Operator::BrOnNonNull { relative_depth }
            | Operator::BrOnCast { relative_depth, .. }
            | Operator::BrOnCastFail { relative_depth, .. } => self.branch(relative_depth),
            Operator::BrTable { ref targets } => {
                for depth in targets.targets() {
                    let Ok(depth) = depth else {
                        return self.give_up();
                    };
                    self.branch(depth);
                }
                self.branch(targets.default());
                self.current = None;
            }
            Operator::Return
            | Operator::Unreachable
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. }
            | Operator::ReturnCallRef { .. }
            | Operator::Throw { .. }
            | Operator::ThrowRef => self.current = None,
            // Control flow this pass does not model.
            Operator::TryTable { .. }
            | Operator::Try { .. }
            | Operator::Catch { .. }
            | Operator::CatchAll
            | Operator::Delegate { .. }
            | Operator::Rethrow { .. } => self.give_up(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Locals (after `params`) read before written in the body of the single
    /// function of `wat`.
    fn read_first(wat: &str) -> Vec<u32> {
        let bytes = wat::parse_str(wat).unwrap();
        let mut a = Assignment::default();
        for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
            if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
                let mut n = 0;
                for local in body.get_locals_reader().unwrap() {
                    n += local.unwrap().0;
                }
                // Every test function takes one parameter.
                a.start(1, 1 + n);
                for op in body.get_operators_reader().unwrap() {
                    a.op(&op.unwrap());
                }
                return (1..1 + n).filter(|&i| a.read_first(i)).collect();
            }
        }
        unreachable!("no function")
    }

    fn func(body: &str) -> String {
        format!("(module (func (param i32) (local i32 i32 i32) {body}))")
    }

    #[test]
    fn a_local_written_first_on_every_path_is_not_read_first() {
        assert_eq!(read_first(&func("(local.set 1 (i32.const 1)) (drop (local.get 1)) (drop (local.get 0))")), []);
        // Both arms of an if write it.
        assert_eq!(
            read_first(&func(
                "(if (local.get 0) (then (local.set 1 (i32.const 1))) (else (local.set 1 (i32.const 2))))
                 (drop (local.get 1))"
            )),
            []
        );
        // Written before a loop, read inside it.
        assert_eq!(read_first(&func("(local.set 2 (i32.const 0)) (loop (br_if 0 (local.get 2)))")), []);
        // The path that skips the write returns instead of reaching the read.
        assert_eq!(
            read_first(&func(
                "(block (br_if 0 (local.get 0)) (return)) (local.set 3 (i32.const 0)) (drop (local.get 3))"
            )),
            []
        );
        // Reads in unreachable code read nothing.
        assert_eq!(read_first(&func("(return) (drop (local.get 1))")), []);
    }

    #[test]
    fn a_local_some_path_reads_before_writing_is_read_first() {
        // Plainly.
        assert_eq!(read_first(&func("(drop (local.get 2))")), [2]);
        // Only one arm writes it.
        assert_eq!(
            read_first(&func("(if (local.get 0) (then (local.set 1 (i32.const 1)))) (drop (local.get 1))")),
            [1]
        );
        assert_eq!(
            read_first(&func("(if (local.get 0) (then) (else (local.set 1 (i32.const 1)))) (drop (local.get 1))")),
            [1]
        );
        // A branch out of the block skips the write.
        assert_eq!(
            read_first(&func("(block (br_if 0 (local.get 0)) (local.set 1 (i32.const 1))) (drop (local.get 1))")),
            [1]
        );
        assert_eq!(
            read_first(&func(
                "(block (block (br_table 0 1 (local.get 0))) (local.set 3 (i32.const 1))) (drop (local.get 3))"
            )),
            [3]
        );
        // Read at the top of a loop, written at its bottom: the first iteration reads it unwritten.
        assert_eq!(read_first(&func("(loop (drop (local.get 2)) (local.set 2 (i32.const 1)) (br 0))")), [2]);
        // A write inside a loop does not count after it when a branch leaves the loop first.
        assert_eq!(
            read_first(&func(
                "(block (loop (br_if 1 (local.get 0)) (local.set 1 (i32.const 1)) (br 0))) (drop (local.get 1))"
            )),
            [1]
        );
    }

    #[test]
    fn a_function_with_too_many_locals_zeroes_them_all() {
        let wat = format!(
            "(module (func (param i32) (local i32) (local {}) (local.set 1 (i32.const 0)) (drop (local.get 1))))",
            "i32 ".repeat(MAX_LOCALS as usize)
        );
        assert_eq!(read_first(&wat).len(), MAX_LOCALS as usize + 1);
    }
}
