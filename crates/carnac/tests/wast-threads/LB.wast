;; Load buffering (after the threads proposal's test/core/threads/LB.wast):
;; two threads each load one cell and store to the other; every outcome but
;; both loads seeing the other's store is allowed.

(module $Mem
  (memory (export "shared") 1 1 shared)
)
(register "mem" $Mem)

(thread $T1 (shared (module $Mem))
  (register "mem" $Mem)
  (module
    (memory (import "mem" "shared") 1 10 shared)
    (func (export "run")
      (local i32)
      (i32.load (i32.const 4))
      (local.set 0)
      (i32.store (i32.const 0) (i32.const 1))
      ;; store the result for checking
      (i32.store (i32.const 24) (local.get 0))
    )
  )
  (invoke "run")
)

(thread $T2 (shared (module $Mem))
  (register "mem" $Mem)
  (module
    (memory (import "mem" "shared") 1 1 shared)
    (func (export "run")
      (local i32)
      (i32.load (i32.const 0))
      (local.set 0)
      (i32.store (i32.const 4) (i32.const 1))
      ;; store the result for checking
      (i32.store (i32.const 32) (local.get 0))
    )
  )
  (invoke "run")
)

(wait $T1)
(wait $T2)

(module $Check
  (memory (import "mem" "shared") 1 1 shared)
  (func (export "check") (result i32)
    (local i32 i32)
    (i32.load (i32.const 24))
    (local.set 0)
    (i32.load (i32.const 32))
    (local.set 1)
    ;; allowed: (L_0 = 0 || L_0 = 1) && (L_1 = 0 || L_1 = 1), not both 1
    (i32.and
      (i32.and
        (i32.le_u (local.get 0) (i32.const 1))
        (i32.le_u (local.get 1) (i32.const 1)))
      (i32.ne (i32.add (local.get 0) (local.get 1)) (i32.const 2)))
  )
)

(assert_return (invoke $Check "check") (i32.const 1))
