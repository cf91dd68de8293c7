;; Two threads add to one counter with i32.atomic.rmw.add (and one more with
;; 8-byte cmpxchg loops): no increment is lost.

(module $Mem
  (memory (export "shared") 1 1 shared)
)
(register "mem" $Mem)

(module $Adder
  (memory (import "mem" "shared") 1 1 shared)
  (func (export "add") (param $n i32)
    (loop $l
      (drop (i32.atomic.rmw.add (i32.const 16) (i32.const 1)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
  )
  (func (export "cas_add") (param $n i32)
    (local $old i64)
    (loop $l
      (loop $retry
        (local.set $old (i64.atomic.load (i32.const 24)))
        (br_if $retry
          (i64.ne
            (i64.atomic.rmw.cmpxchg (i32.const 24) (local.get $old) (i64.add (local.get $old) (i64.const 1)))
            (local.get $old))))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
  )
)

(thread $T1 (shared (module $Mem))
  (register "mem" $Mem)
  (module
    (memory (import "mem" "shared") 1 1 shared)
    (func (export "run")
      (local $n i32)
      (local.set $n (i32.const 2000))
      (loop $l
        (drop (i32.atomic.rmw.add (i32.const 16) (i32.const 1)))
        (drop (i64.atomic.rmw.add (i32.const 24) (i64.const 1)))
        (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    )
  )
  (invoke "run")
)

(thread $T2 (shared (module $Mem))
  (register "mem" $Mem)
  (module
    (memory (import "mem" "shared") 1 1 shared)
    (func (export "run")
      (local $n i32)
      (local $old i64)
      (local.set $n (i32.const 2000))
      (loop $l
        (drop (i32.atomic.rmw.add (i32.const 16) (i32.const 1)))
        (loop $retry
          (local.set $old (i64.atomic.load (i32.const 24)))
          (br_if $retry
            (i64.ne
              (i64.atomic.rmw.cmpxchg (i32.const 24) (local.get $old) (i64.add (local.get $old) (i64.const 1)))
              (local.get $old))))
        (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    )
  )
  (invoke "run")
)

(invoke $Adder "add" (i32.const 2000))
(invoke $Adder "cas_add" (i32.const 2000))
(wait $T1)
(wait $T2)

(module $Check
  (memory (import "mem" "shared") 1 1 shared)
  (func (export "count32") (result i32) (i32.atomic.load (i32.const 16)))
  (func (export "count64") (result i64) (i64.atomic.load (i32.const 24)))
)
(assert_return (invoke $Check "count32") (i32.const 6000))
(assert_return (invoke $Check "count64") (i64.const 6000))
