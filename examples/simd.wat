;; SIMD at the command line: v128 arguments and results are written as one
;; 128-bit number, lane 0 in the least significant bits (`0x` hex or decimal).
;;   carnac run --invoke reverse examples/simd.wat 0x0f0e0d0c0b0a09080706050403020100
;;   carnac run --invoke dot examples/simd.wat 0x00040003000200010004000300020001
(module
  ;; The 16 bytes in reverse order, and the bitmask of the input's top bits.
  (func (export "reverse") (param v128) (result v128 i32)
    (i8x16.shuffle 15 14 13 12 11 10 9 8 7 6 5 4 3 2 1 0 (local.get 0) (local.get 0))
    (i8x16.bitmask (local.get 0)))

  ;; Dot product of the eight i16 lanes of a vector with itself, as one i32.
  (func (export "dot") (param v128) (result i32)
    (local $d v128)
    (local.set $d (i32x4.dot_i16x8_s (local.get 0) (local.get 0)))
    (i32.add
      (i32.add (i32x4.extract_lane 0 (local.get $d)) (i32x4.extract_lane 1 (local.get $d)))
      (i32.add (i32x4.extract_lane 2 (local.get $d)) (i32x4.extract_lane 3 (local.get $d))))))
