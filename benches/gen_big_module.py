#!/usr/bin/env python3
"""Writes a large synthetic module (about 1 MiB of wasm with the default count)
for the start-up benchmark: many functions of varied, realistic shape (loops,
branches, locals, integer and float arithmetic, memory traffic, calls), of which
`run` calls only a few, as in a real program where most code is cold.

    python3 benches/gen_big_module.py OUT.wat [FUNCTIONS]
"""
import random
import sys

def func(i, rnd):
    body = []
    ops = ["i32.add", "i32.sub", "i32.mul", "i32.xor", "i32.and", "i32.or", "i32.shl", "i32.shr_u", "i32.rotl"]
    for k in range(rnd.randint(6, 14)):
        kind = rnd.randrange(6)
        a, b = rnd.randrange(4), rnd.randrange(4)
        if kind == 0:
            body.append(f"(local.set {a} ({rnd.choice(ops)} (local.get {a}) (i32.const {rnd.randrange(1 << 20)})))")
        elif kind == 1:
            body.append(f"(i32.store offset={rnd.randrange(4096) * 4} (i32.and (local.get {a}) (i32.const 0xfffc)) (local.get {b}))")
        elif kind == 2:
            body.append(f"(local.set {b} (i32.add (local.get {b}) (i32.load offset={rnd.randrange(4096) * 4} (i32.and (local.get {a}) (i32.const 0xfffc)))))")
        elif kind == 3:
            body.append(f"""(block $b{k} (loop $l{k}
                (br_if $b{k} (i32.ge_u (local.get 3) (i32.const {rnd.randrange(2, 9)})))
                (local.set {a} ({rnd.choice(ops)} (local.get {a}) (local.get {b})))
                (local.set 3 (i32.add (local.get 3) (i32.const 1)))
                (br $l{k})))""")
        elif kind == 4:
            body.append(f"""(if (i32.lt_s (local.get {a}) (local.get {b}))
                (then (local.set {a} (i32.sub (local.get {b}) (local.get {a}))))
                (else (local.set {b} (i32.trunc_f64_s (f64.mul (f64.convert_i32_s (i32.and (local.get {a}) (i32.const 1023))) (f64.const 1.5))))))""")
        elif kind == 5 and i > 0:
            body.append(f"(local.set {a} (call $f{rnd.randrange(max(0, i - 50), i)} (local.get {b}) (local.get {a})))")
    return f"""  (func $f{i} (param i32 i32) (result i32) (local i32 i32)
    {chr(10).join('    ' + b for b in body)}
    (i32.add (local.get 0) (local.get 1)))"""

def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 4800
    rnd = random.Random(42)
    with open(out, "w") as f:
        f.write("(module\n  (memory 2)\n")
        for i in range(n):
            f.write(func(i, rnd) + "\n")
        f.write(f"  (func (export \"run\") (param i32) (result i32) (call $f0 (local.get 0) (i32.const 7)))\n)\n")

main()
