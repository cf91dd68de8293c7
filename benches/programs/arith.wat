;; A tight integer loop: a xorshift generator mixed into a multiply-accumulate, n rounds.
(module
  (func (export "run") (param $n i32) (result i32)
    (local $x i32) (local $acc i32) (local $i i32)
    (local.set $x (i32.const 2463534242))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 13))))
        (local.set $x (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 17))))
        (local.set $x (i32.xor (local.get $x) (i32.shl (local.get $x) (i32.const 5))))
        (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (local.get $x)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $acc)))
