//! The guest programs the containerd test puts in its images, in the text
//! format (compiled to `.wasm` by the test with the `wat` crate).
// Shared by the tests, each of which uses part of it.
#![allow(dead_code)]

/// Shared imports (every program imports all of them) and helpers: `$write(fd, ptr, len)`, `$print_u32(n)` to
/// stdout (decimal), `$nul_to_nl(ptr, len)`.
macro_rules! prelude {
    () => {
        r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  ;; decimal digits written backwards from 511, then printed
  (func $print_u32 (param $n i32) (local $p i32)
    (local.set $p (i32.const 512))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (i32.ne (local.get $n) (i32.const 0))))
    (call $write (i32.const 1) (local.get $p) (i32.sub (i32.const 512) (local.get $p))))
  (func $nul_to_nl (param $p i32) (param $n i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (local.get $n)))
      (if (i32.eqz (i32.load8_u (local.get $p))) (then (i32.store8 (local.get $p) (i32.const 10))))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $l))))
"#
    };
}

/// Prints a line on stdout and one on stderr, then exits with status 7.
pub const HELLO: &str = concat!(
    "(module",
    prelude!(),
    r#"
  (memory (export "memory") 1)
  (data (i32.const 1024) "hello from carnac\n")
  (data (i32.const 1100) "a line on stderr\n")
  (func (export "_start")
    (call $write (i32.const 1) (i32.const 1024) (i32.const 18))
    (call $write (i32.const 2) (i32.const 1100) (i32.const 17))
    (call $proc_exit (i32.const 7))))"#
);

/// Prints `ARGS`, its arguments one per line, `ENV`, its environment one per line.
pub const ECHO: &str = concat!(
    "(module",
    prelude!(),
    r#"
  (memory (export "memory") 2)
  (data (i32.const 600) "ARGS\n")
  (data (i32.const 610) "ENV\n")
  (func (export "_start")
    (call $write (i32.const 1) (i32.const 600) (i32.const 5))
    (drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $args_get (i32.const 1024) (i32.const 8192)))
    (call $nul_to_nl (i32.const 8192) (i32.load (i32.const 20)))
    (call $write (i32.const 1) (i32.const 8192) (i32.load (i32.const 20)))
    (call $write (i32.const 1) (i32.const 610) (i32.const 4))
    (drop (call $environ_sizes_get (i32.const 16) (i32.const 20)))
    (drop (call $environ_get (i32.const 4096) (i32.const 65536)))
    (call $nul_to_nl (i32.const 65536) (i32.load (i32.const 20)))
    (call $write (i32.const 1) (i32.const 65536) (i32.load (i32.const 20)))))"#
);

/// Prints the name of its first preopened directory (fd 3), a newline, then
/// the contents of `data/message.txt` read through it. A failing call exits
/// with 100 + its errno.
pub const CAT: &str = concat!(
    "(module",
    prelude!(),
    r#"
  (memory (export "memory") 1)
  (data (i32.const 700) "data/message.txt")
  (data (i32.const 720) "\n")
  (func $check (param $errno i32)
    (if (local.get $errno) (then (call $proc_exit (i32.add (i32.const 100) (local.get $errno))))))
  (func (export "_start") (local $fd i32) (local $n i32)
    (call $check (call $fd_prestat_get (i32.const 3) (i32.const 16)))
    (call $check (call $fd_prestat_dir_name (i32.const 3) (i32.const 800) (i32.load (i32.const 20))))
    (call $write (i32.const 1) (i32.const 800) (i32.load (i32.const 20)))
    (call $write (i32.const 1) (i32.const 720) (i32.const 1))
    ;; path_open(dirfd 3, lookup 0, path, len 16, oflags 0, rights read, inheriting 0, fdflags 0, &fd)
    (call $check (call $path_open (i32.const 3) (i32.const 0) (i32.const 700) (i32.const 16)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 24)))
    (local.set $fd (i32.load (i32.const 24)))
    (loop $more
      (i32.store (i32.const 32) (i32.const 4096))
      (i32.store (i32.const 36) (i32.const 4096))
      (call $check (call $fd_read (local.get $fd) (i32.const 32) (i32.const 1) (i32.const 40)))
      (local.set $n (i32.load (i32.const 40)))
      (if (local.get $n) (then
        (call $write (i32.const 1) (i32.const 4096) (local.get $n))
        (br $more))))))"#
);

/// Prints `spinning` and loops forever.
pub const SPIN: &str = concat!(
    "(module",
    prelude!(),
    r#"
  (memory (export "memory") 1)
  (data (i32.const 1024) "spinning\n")
  (func (export "_start") (local $i i32)
    (call $write (i32.const 1) (i32.const 1024) (i32.const 9))
    (loop $forever
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $forever))))"#
);

/// Grows its memory a MiB at a time, touching every page; when a grow is
/// refused, prints `refused after N MiB` and exits with status 42.
pub const BOMB: &str = concat!(
    "(module",
    prelude!(),
    r#"
  (memory (export "memory") 1)
  (data (i32.const 1024) "refused after ")
  (data (i32.const 1040) " MiB\n")
  (func (export "_start") (local $mib i32) (local $old i32) (local $p i32) (local $end i32)
    (loop $grow
      (local.set $old (memory.grow (i32.const 16)))
      (if (i32.eq (local.get $old) (i32.const -1)) (then
        (call $write (i32.const 1) (i32.const 1024) (i32.const 14))
        (call $print_u32 (local.get $mib))
        (call $write (i32.const 1) (i32.const 1040) (i32.const 5))
        (call $proc_exit (i32.const 42))))
      (local.set $mib (i32.add (local.get $mib) (i32.const 1)))
      (local.set $p (i32.mul (local.get $old) (i32.const 65536)))
      (local.set $end (i32.add (local.get $p) (i32.const 1048576)))
      (loop $touch
        (i32.store (local.get $p) (i32.const 1))
        (local.set $p (i32.add (local.get $p) (i32.const 4096)))
        (br_if $touch (i32.lt_u (local.get $p) (local.get $end))))
      (br $grow))))"#
);

/// Traps (`unreachable`) in a function called from `_start`.
pub const TRAP: &str = concat!(
    "(module",
    prelude!(),
    r#"
  (memory (export "memory") 1)
  (func $fail (unreachable))
  (func (export "_start") (call $fail)))"#
);

/// Recurses without end: the call stack runs out (a trap, not a crash).
pub const RECURSE: &str = concat!(
    "(module",
    prelude!(),
    r#"
  (memory (export "memory") 1)
  (func $deeper (param $n i32) (result i32)
    (i32.add (call $deeper (i32.add (local.get $n) (i32.const 1))) (i32.const 1)))
  (func (export "_start") (drop (call $deeper (i32.const 0)))))"#
);
