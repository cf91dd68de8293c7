;; A CGI handler for `carnac serve` with a heavy start-up: `init` builds 32 MiB
;; of state (8M words, 8 rounds of an integer hash each: about 50 ms compiled),
;; then every request prints one word of it. Served with `init = "init"` on its
;; route, the start-up runs once, when the route loads, and each request starts
;; from a copy-on-write snapshot of the state it left:
;;
;;   [[route]]
;;   path = "/warm"
;;   module = "warm-handler.wat"
;;   init = "init"
;;
;; Without `init`, `_start` builds the state in every request.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $ready (mut i32) (i32.const 0))
  (data (i32.const 256) "Content-Type: text/plain\n\nHello from a pre-initialised instance: ")
  (func $init (export "init") (local $i i32) (local $p i32) (local $h i32) (local $r i32)
    (if (global.get $ready) (then (return)))
    (drop (memory.grow (i32.const 512)))
    (local.set $p (i32.const 65536))
    (block $done
      (loop $fill
        (br_if $done (i32.ge_u (local.get $i) (i32.const 8388608)))
        (local.set $h (i32.add (local.get $i) (i32.const 1)))
        (local.set $r (i32.const 8))
        (loop $round
          (local.set $h (i32.mul (i32.xor (local.get $h) (i32.shr_u (local.get $h) (i32.const 16)))
                                 (i32.const 0x7feb352d)))
          (local.set $h (i32.mul (i32.xor (local.get $h) (i32.shr_u (local.get $h) (i32.const 15)))
                                 (i32.const 0x846ca68b)))
          (local.set $r (i32.sub (local.get $r) (i32.const 1)))
          (br_if $round (local.get $r)))
        (i32.store (local.get $p) (local.get $h))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $fill)))
    (global.set $ready (i32.const 1)))
  (func (export "_start") (local $n i32) (local $p i32)
    (call $init)
    ;; The word at the middle of the table, in hex, after the greeting.
    (local.set $n (i32.load (i32.const 16842752)))
    (local.set $p (i32.const 329))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.load8_u offset=192 (i32.and (local.get $n) (i32.const 15))))
      (local.set $n (i32.shr_u (local.get $n) (i32.const 4)))
      (br_if $digit (i32.gt_u (local.get $p) (i32.const 321))))
    (i32.store8 (i32.const 329) (i32.const 10))
    (i32.store (i32.const 0) (i32.const 256))
    (i32.store (i32.const 4) (i32.const 74))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (data (i32.const 192) "0123456789abcdef"))
