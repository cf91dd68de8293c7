;; A WASI program with a heavy start-up: it builds 32 MiB of state (a table of
;; hashed words, 8 rounds of an integer hash each) and remembers the environment variable GREETING, then prints a
;; checksum sampled from every page of the table and the greeting.
;;
;; Its start-up is the export `wizer.initialize`, which `_start` runs unless it
;; already ran. `carnac snapshot examples/preinit.wat -o preinit.snap.wasm
;; --env GREETING=hello` runs it once and writes a module that starts with the
;; table built: `carnac run preinit.snap.wasm` prints the same lines, without
;; the start-up.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; Memory map: 0..16 iovec and scratch; 64..96 digits; 1024..2048 environ
  ;; pointers; 2048..32768 environ strings; 32768..32896 the greeting; the table
  ;; from 65536, TABLE_WORDS words.
  (global $ready (mut i32) (i32.const 0))
  (global $greeting_len (mut i32) (i32.const 0))
  (global $TABLE i32 (i32.const 65536))
  (global $TABLE_WORDS i32 (i32.const 8388608))

  (func $init (export "wizer.initialize")
    (local $i i32) (local $p i32) (local $n i32) (local $s i32) (local $len i32) (local $h i32) (local $r i32)
    (if (global.get $ready) (then (return)))
    ;; 32 MiB of table.
    (drop (memory.grow (i32.const 512)))
    (local.set $p (global.get $TABLE))
    (block $done
      (loop $fill
        (br_if $done (i32.ge_u (local.get $i) (global.get $TABLE_WORDS)))
        ;; Each word: 8 rounds of an integer hash of its index (what a real
        ;; start-up spends parsing, allocating and linking its state).
        (local.set $h (i32.add (local.get $i) (i32.const 1)))
        (local.set $r (i32.const 8))
        (loop $round
          (local.set $h (i32.mul (i32.xor (local.get $h) (i32.shr_u (local.get $h) (i32.const 16)))
                                 (i32.const 0x7feb352d)))
          (local.set $h (i32.mul (i32.xor (local.get $h) (i32.shr_u (local.get $h) (i32.const 15)))
                                 (i32.const 0x846ca68b)))
          (local.set $r (i32.sub (local.get $r) (i32.const 1)))
          (br_if $round (local.get $r)))
        (i32.store (local.get $p) (i32.or (local.get $h) (i32.const 1)))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $fill)))
    ;; GREETING=... from the environment, copied to 32768.
    (if (i32.eqz (call $environ_sizes_get (i32.const 0) (i32.const 4)))
      (then
        (if (i32.and (i32.le_u (i32.load (i32.const 0)) (i32.const 256))
                     (i32.le_u (i32.load (i32.const 4)) (i32.const 30720)))
          (then
            (drop (call $environ_get (i32.const 1024) (i32.const 2048)))
            (local.set $n (i32.load (i32.const 0)))
            (local.set $i (i32.const 0))
            (block $found
              (loop $each
                (br_if $found (i32.ge_u (local.get $i) (local.get $n)))
                (local.set $s (i32.load (i32.add (i32.const 1024) (i32.shl (local.get $i) (i32.const 2)))))
                ;; "GREETING=" is 0x45455247 0x474e4954 '='
                (if (i32.and (i32.and (i32.eq (i32.load (local.get $s)) (i32.const 0x45455247))
                                      (i32.eq (i32.load offset=4 (local.get $s)) (i32.const 0x474e4954)))
                             (i32.eq (i32.load8_u offset=8 (local.get $s)) (i32.const 61)))
                  (then
                    (local.set $s (i32.add (local.get $s) (i32.const 9)))
                    (local.set $len (i32.const 0))
                    (block $end
                      (loop $copy
                        (br_if $end (i32.eqz (i32.load8_u (i32.add (local.get $s) (local.get $len)))))
                        (br_if $end (i32.ge_u (local.get $len) (i32.const 127)))
                        (i32.store8 (i32.add (i32.const 32768) (local.get $len))
                                    (i32.load8_u (i32.add (local.get $s) (local.get $len))))
                        (local.set $len (i32.add (local.get $len) (i32.const 1)))
                        (br $copy)))
                    (global.set $greeting_len (local.get $len))
                    (br $found)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $each)))))))
    ;; The scratch area is left as it was found (zeros).
    (memory.fill (i32.const 0) (i32.const 0) (i32.const 32768))
    (global.set $ready (i32.const 1)))

  ;; Writes `len` bytes at `ptr` to stdout.
  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  ;; Prints `n` in decimal.
  (func $print_u32 (param $n i32) (local $p i32)
    (local.set $p (i32.const 96))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (local.get $n)))
    (call $print (local.get $p) (i32.sub (i32.const 96) (local.get $p))))

  (data $checksum_label "state checksum: ")
  (data $greeting_label "\ngreeting: ")
  (func $print_data (param $seg i32)
    ;; Copies a passive label to 128.. and prints it.
    (if (i32.eqz (local.get $seg))
      (then (memory.init $checksum_label (i32.const 128) (i32.const 0) (i32.const 16))
            (call $print (i32.const 128) (i32.const 16)))
      (else (memory.init $greeting_label (i32.const 128) (i32.const 0) (i32.const 11))
            (call $print (i32.const 128) (i32.const 11)))))

  (func (export "_start") (local $i i32) (local $sum i32)
    (call $init)
    ;; One word from every 4 KiB of the table.
    (block $done
      (loop $sample
        (br_if $done (i32.ge_u (local.get $i) (i32.const 8192)))
        (local.set $sum
          (i32.add (i32.rotl (local.get $sum) (i32.const 5))
                   (i32.load (i32.add (global.get $TABLE)
                                      (i32.add (i32.shl (local.get $i) (i32.const 12))
                                               (i32.and (i32.shl (local.get $i) (i32.const 2)) (i32.const 4092)))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $sample)))
    (call $print_data (i32.const 0))
    (call $print_u32 (local.get $sum))
    (call $print_data (i32.const 1))
    (call $print (i32.const 32768) (global.get $greeting_len))
    (i32.store8 (i32.const 128) (i32.const 10))
    (call $print (i32.const 128) (i32.const 1))))
