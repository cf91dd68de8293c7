//! The process-wide registry of compiled code: which address ranges hold
//! compiled code, and for each, what traps where.
//!
//! The signal handler must decide, from nothing but a faulting pc, whether the
//! fault is a trap of compiled code (and which) or someone else's crash. So the
//! registry is global, and its read path must be async-signal-safe: the handler
//! may interrupt a thread anywhere, including inside a registration, so it
//! cannot take a lock (the interrupted thread may hold it, and waiting would
//! deadlock), nor allocate or free.
//!
//! **The scheme.** Readers see an immutable *snapshot*, a sorted boxed slice of
//! `(range, info)` entries, through one `AtomicPtr`. Writers (registration and
//! unregistration, never from a signal handler) serialize on a mutex, build a
//! new snapshot, swap the pointer, and *retire* the old one. A retired snapshot
//! may still be in use by a reader that loaded the pointer just before the swap,
//! so it is freed only once no reader is active: readers bracket their use with
//! an increment and a decrement of one global counter, and a writer frees the
//! retired snapshots when it sees the counter at zero *after* its swap (all
//! `SeqCst`: a reader that loaded the old pointer incremented the counter before
//! its load, which preceded the swap, which precedes the writer's check; so a
//! zero count means that reader is done, and any later reader loads the new
//! pointer). When readers are active at every write, retired snapshots wait for
//! a later write; they are never freed early. Reads are wait-free: an increment,
//! a load, a binary search and a decrement. Writes copy the snapshot (O(number of
//! registered modules)), which is rare (once per module load and unload).
//!
//! Wasmtime's registry is a `BTreeMap` behind a global `RwLock` that the handler
//! read-locks; a `std::sync::RwLock` may block or allocate, which is why this
//! one is lock-free instead.

use std::ops::Range;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use crate::module::SharedBytes;

/// What the trap machinery needs to know about one registered range of code.
///
/// Called from a signal handler: implementations must be async-signal-safe (no
/// locks, no allocation, no panics; plain reads of immutable tables only).
pub(crate) trait CodeInfo: Send + Sync {
    /// The trap code (a Cranelift `TrapCode` as its raw byte) of the instruction
    /// at absolute address `pc`, if that instruction may trap.
    fn trap_at(&self, pc: usize) -> Option<u8>;
    /// Whether `pc` (absolute) is inside the body of a WebAssembly function, as
    /// opposed to a trampoline: the frame walker follows frames while this holds.
    fn is_wasm_function(&self, pc: usize) -> bool;
}

/// A ready-made trap table: the trap sites of a code range, sorted by offset,
/// found by binary search (allocation-free, so usable from [`CodeInfo::trap_at`]).
///
/// The sites are kept as an artifact stores them (`super::super::artifact`):
/// 5-byte records, a little-endian u32 offset then the trap code, so that a
/// loaded artifact's table is used where it lies, not copied.
pub(crate) struct TrapTable {
    base: usize,
    /// Records (offset from `base`, trap code), sorted by offset.
    sites: SharedBytes,
}

/// The size of one trap site's record.
pub(crate) const TRAP_RECORD: usize = 5;

impl TrapTable {
    /// A table for code at `base` from `(offset, code)` pairs in any order.
    pub(crate) fn new(base: usize, mut sites: Vec<(u32, u8)>) -> TrapTable {
        sites.sort_unstable_by_key(|&(offset, _)| offset);
        let mut records = Vec::with_capacity(sites.len() * TRAP_RECORD);
        for (offset, code) in sites {
            records.extend(offset.to_le_bytes());
            records.push(code);
        }
        TrapTable { base, sites: records.into() }
    }

    /// A table for code at `base` from records as [`TrapTable`] keeps them,
    /// which the caller has checked are sorted by offset (and whole).
    pub(crate) fn from_records(base: usize, records: SharedBytes) -> TrapTable {
        debug_assert!(records.len().is_multiple_of(TRAP_RECORD));
        TrapTable { base, sites: records }
    }

    /// The trap sites, (offset, code), sorted by offset.
    pub(crate) fn sites(&self) -> impl ExactSizeIterator<Item = (u32, u8)> + '_ {
        self.sites.chunks_exact(TRAP_RECORD).map(|r| (u32::from_le_bytes([r[0], r[1], r[2], r[3]]), r[4]))
    }

    /// The trap code at absolute address `pc`, if it is a trap site.
    pub(crate) fn lookup(&self, pc: usize) -> Option<u8> {
        let offset = u32::try_from(pc.checked_sub(self.base)?).ok()?;
        let sites: &[u8] = &self.sites;
        // Binary search over the records; `get` keeps it panic-free for the signal handler.
        let (mut lo, mut hi) = (0, sites.len() / TRAP_RECORD);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let r = sites.get(mid * TRAP_RECORD..mid * TRAP_RECORD + TRAP_RECORD)?;
            let at = u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
            match at.cmp(&offset) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(r[4]),
            }
        }
        None
    }
}

struct Entry {
    range: Range<usize>,
    info: Arc<dyn CodeInfo>,
}

/// One immutable version of the registry: disjoint entries sorted by start.
type Snapshot = Box<[Entry]>;

/// The current snapshot (`Box::into_raw` of a `Box<Snapshot>`), or null when
/// nothing is registered.
static CURRENT: AtomicPtr<Snapshot> = AtomicPtr::new(std::ptr::null_mut());
/// Readers between their increment and decrement (see the module docs).
static READERS: AtomicUsize = AtomicUsize::new(0);
/// Serializes writers; holds the snapshots retired but not yet freed. Boxed as
/// they were published: readers may still hold the box's address (CURRENT's old
/// value), so the box itself, not just the slice it points to, must live on.
#[allow(clippy::vec_box)]
static WRITER: Mutex<Vec<Box<Snapshot>>> = Mutex::new(Vec::new());

/// Keeps a range registered; unregisters it when dropped.
#[must_use = "the code is unregistered when the registration is dropped"]
pub(crate) struct CodeRegistration {
    /// The range's start, or `None` for an empty range (never registered).
    start: Option<usize>,
}

/// Registers `range` (absolute addresses of compiled code) with the trap
/// handler, described by `info`, until the returned guard drops. Drop it before
/// the code memory is unmapped.
///
/// # Panics
/// If `range` overlaps a range already registered (two live modules cannot
/// occupy the same addresses: that is a bug in the caller).
pub(crate) fn register(range: Range<usize>, info: Arc<dyn CodeInfo>) -> CodeRegistration {
    if range.is_empty() {
        return CodeRegistration { start: None };
    }
    let start = range.start;
    update(|entries| {
        let at = entries.partition_point(|e| e.range.start < range.start);
        let before = at.checked_sub(1).map(|i| &entries[i]);
        let after = entries.get(at);
        assert!(
            before.is_none_or(|e| e.range.end <= range.start) && after.is_none_or(|e| range.end <= e.range.start),
            "compiled code at {range:#x?} overlaps code already registered"
        );
        let mut new: Vec<Entry> =
            entries.iter().map(|e| Entry { range: e.range.clone(), info: e.info.clone() }).collect();
        new.insert(at, Entry { range, info });
        new
    });
    CodeRegistration { start: Some(start) }
}

impl Drop for CodeRegistration {
    fn drop(&mut self) {
        let Some(start) = self.start else { return };
        update(|entries| {
            entries
                .iter()
                .filter(|e| e.range.start != start)
                .map(|e| Entry { range: e.range.clone(), info: e.info.clone() })
                .collect()
        });
    }
}

/// Replaces the snapshot with `f(current entries)`, then frees what no reader can see.
fn update(f: impl FnOnce(&[Entry]) -> Vec<Entry>) {
    let mut freed = Vec::new();
    {
        let mut retired = WRITER.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let current = CURRENT.load(SeqCst);
        // SAFETY: only writers replace or free snapshots, and we are the only writer
        // (the lock); `current` is either null or the live snapshot, which no one
        // frees while we hold the lock.
        let entries: &[Entry] = if current.is_null() { &[] } else { unsafe { &*current } };
        let new = f(entries);
        let new = if new.is_empty() { std::ptr::null_mut() } else { Box::into_raw(Box::new(new.into_boxed_slice())) };
        let old = CURRENT.swap(new, SeqCst);
        if !old.is_null() {
            // SAFETY: `old` came from `Box::into_raw` in an earlier update and was just
            // unpublished; it is owned here and no longer reachable through CURRENT.
            retired.push(unsafe { Box::from_raw(old) });
        }
        if READERS.load(SeqCst) == 0 {
            freed = std::mem::take(&mut *retired);
        }
    }
    // Dropped outside the lock: the last reference to a `CodeInfo` may go with
    // them, and its destructor may do anything, registrations included.
    drop(freed);
}

/// Counts a reader in for as long as it lives.
struct ReadGuard;

impl ReadGuard {
    fn new() -> ReadGuard {
        READERS.fetch_add(1, SeqCst);
        ReadGuard
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        READERS.fetch_sub(1, SeqCst);
    }
}

/// Calls `f` with the info of the registered range containing `pc`, if any.
///
/// Async-signal-safe (lock-free, allocation-free) as long as `f` is.
pub(crate) fn with_code_at<R>(pc: usize, f: impl FnOnce(&dyn CodeInfo) -> R) -> Option<R> {
    let _reading = ReadGuard::new();
    let current = CURRENT.load(SeqCst);
    if current.is_null() {
        return None;
    }
    // SAFETY: loaded after the reader count was raised, so no writer frees this
    // snapshot before `_reading` drops (see the module docs); snapshots are never
    // mutated once published.
    let entries: &[Entry] = unsafe { &*current };
    let i = entries.partition_point(|e| e.range.start <= pc).checked_sub(1)?;
    let entry = &entries[i];
    if pc < entry.range.end {
        Some(f(&*entry.info))
    } else {
        None
    }
}

/// The trap code at `pc` if it is a trap site of registered code.
pub(crate) fn trap_code_at(pc: usize) -> Option<u8> {
    with_code_at(pc, |info| info.trap_at(pc)).flatten()
}

/// Whether `pc` is inside a registered WebAssembly function.
pub(crate) fn is_wasm_function(pc: usize) -> bool {
    with_code_at(pc, |info| info.is_wasm_function(pc)).unwrap_or(false)
}

/// How many snapshots are retired and not yet freed (for tests: nothing leaks).
#[cfg(test)]
pub(crate) fn retired_snapshots() -> usize {
    WRITER.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranges in these tests sit at addresses no real code can have (the top of
    /// the address space), so they cannot collide with the other tests' code.
    const FAR: usize = usize::MAX - (1 << 40);

    struct Info(&'static str, TrapTable);
    impl CodeInfo for Info {
        fn trap_at(&self, pc: usize) -> Option<u8> {
            self.1.lookup(pc)
        }
        fn is_wasm_function(&self, _pc: usize) -> bool {
            self.0 == "wasm"
        }
    }

    fn info(kind: &'static str, base: usize, sites: Vec<(u32, u8)>) -> Arc<dyn CodeInfo> {
        Arc::new(Info(kind, TrapTable::new(base, sites)))
    }

    #[test]
    fn lookups_find_the_containing_range_until_it_is_unregistered() {
        let a = FAR;
        let b = FAR + 0x1000;
        let ra = register(a..a + 0x100, info("wasm", a, vec![(0x10, 3), (0x4, 7)]));
        let rb = register(b..b + 0x100, info("trampoline", b, vec![(0, 9)]));
        assert_eq!(trap_code_at(a + 0x10), Some(3));
        assert_eq!(trap_code_at(a + 0x4), Some(7));
        assert_eq!(trap_code_at(a + 0x5), None);
        assert_eq!(trap_code_at(b), Some(9));
        assert_eq!(trap_code_at(a + 0x100), None, "the end is exclusive");
        assert!(is_wasm_function(a + 0xff));
        assert!(!is_wasm_function(b + 1));
        assert!(!is_wasm_function(a - 1));
        drop(ra);
        assert_eq!(trap_code_at(a + 0x10), None);
        assert_eq!(trap_code_at(b), Some(9));
        drop(rb);
        assert_eq!(trap_code_at(b), None);
        // An empty range registers nothing.
        let empty = register(a..a, info("wasm", a, vec![(0, 1)]));
        assert_eq!(trap_code_at(a), None);
        drop(empty);
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let a = FAR + 0x10_0000;
        let _r = register(a..a + 0x100, info("wasm", a, vec![]));
        let overlap = std::panic::catch_unwind(|| register(a + 0xff..a + 0x200, info("wasm", a, vec![])));
        assert!(overlap.is_err());
        let below = std::panic::catch_unwind(|| register(a - 0x10..a + 1, info("wasm", a, vec![])));
        assert!(below.is_err());
        // Adjacent is fine.
        let _adjacent = register(a + 0x100..a + 0x200, info("wasm", a, vec![]));
    }

    #[test]
    fn readers_racing_writers_see_consistent_snapshots_and_nothing_is_kept() {
        let base = FAR + 0x100_0000;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let _fixed = register(base..base + 0x10, info("wasm", base, vec![(0, 42)]));
        let reads = Arc::new(AtomicUsize::new(0));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (stop, reads) = (stop.clone(), reads.clone());
                std::thread::spawn(move || {
                    while !stop.load(SeqCst) {
                        assert_eq!(trap_code_at(base), Some(42));
                        reads.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        let mut writes = 0;
        while writes < 2000 || reads.load(SeqCst) < 10_000 {
            let at = base + 0x1000 * (1 + writes % 16);
            let r = register(at..at + 0x10, info("wasm", at, vec![(1, 5)]));
            assert_eq!(trap_code_at(at + 1), Some(5));
            drop(r);
            writes += 1;
        }
        stop.store(true, SeqCst);
        for r in readers {
            r.join().unwrap();
        }
        // With no reader left, the next write frees every retired snapshot (other
        // tests may be reading at that moment: then a later write does).
        let freed = (0..1000).any(|_| {
            drop(register(base + 0x20..base + 0x30, info("wasm", base, vec![])));
            retired_snapshots() == 0 || {
                std::thread::sleep(std::time::Duration::from_millis(1));
                false
            }
        });
        assert!(freed, "{} retired snapshots are never freed", retired_snapshots());
    }
}
