;; Message passing through wait/notify: $T1 waits until the flag is set
;; (memory.atomic.wait32 with no timeout), then reads the data that $T2
;; wrote before setting the flag and notifying.

(module $Mem
  (memory (export "shared") 1 1 shared)
)
(register "mem" $Mem)

(thread $T1 (shared (module $Mem))
  (register "mem" $Mem)
  (module
    (memory (import "mem" "shared") 1 1 shared)
    (func (export "run") (result i32)
      (block $done
        (loop $retry
          (br_if $done (i32.atomic.load (i32.const 0)))
          ;; 0 (woken) or 1 (the flag changed first); never 2 (no timeout)
          (drop (memory.atomic.wait32 (i32.const 0) (i32.const 0) (i64.const -1)))
          (br $retry)))
      (i32.load (i32.const 8))
    )
  )
  (assert_return (invoke "run") (i32.const 42))
)

(thread $T2 (shared (module $Mem))
  (register "mem" $Mem)
  (module
    (memory (import "mem" "shared") 1 1 shared)
    (func (export "run")
      (i32.store (i32.const 8) (i32.const 42))
      (i32.atomic.store (i32.const 0) (i32.const 1))
      (drop (memory.atomic.notify (i32.const 0) (i32.const 1)))
    )
  )
  (invoke "run")
)

(wait $T1)
(wait $T2)

(module $Check
  (memory (import "mem" "shared") 1 1 shared)
  (func (export "flag") (result i32) (i32.atomic.load (i32.const 0)))
)
(assert_return (invoke $Check "flag") (i32.const 1))
