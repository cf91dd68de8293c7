#!/usr/bin/env python3
"""Which interpreter instructions run after which: counts of handler pairs.

Each interpreter handler ends by jumping to the next instruction's handler, and
callgrind records those jumps as calls, so a callgrind profile of a release
build holds the exact count of every (instruction, next instruction) pair. The
top pairs are the candidates for one fused instruction (see interp/translate/fuse.rs).

    valgrind --tool=callgrind --callgrind-out-file=cg.out \\
        target/release/carnac run target/bench-programs/wasm32-wasip1/release/json.wasm 2000
    python3 benches/pairs.py cg.out 30

Handlers with identical machine code are folded by the linker and share one
symbol (an `F32Load` pair may be an `I32Load` one): read the names as "this
handler's code". Pairs outside the interpreter (the validator, the host) are
listed too; they are rare in a long run.
"""
import collections
import re
import sys


def pairs(path):
    names = {}

    def name(tok):
        m = re.match(r"\((\d+)\)(?: (.*))?", tok)
        if not m:
            return tok
        if m.group(2):
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), m.group(1))

    def short(s):
        # A build with `-C symbol-mangling-version=v0` names each handler's
        # accumulator form (`I32Add::<false, 3>`): kept as `I32Add[3]`.
        s = re.sub(r"::<(?:false|true), (\d)>", r"[\1]", s)
        return re.sub(r"carnac::interp::threaded::(?:calls::)?|'\d+|(?:::)?<.*?>", "", s)

    counts = collections.Counter()
    fn = cfn = None
    with open(path) as f:
        for line in f:
            if line.startswith("fn="):
                fn = name(line[3:].strip())
            elif line.startswith("cfn="):
                cfn = name(line[4:].strip())
            elif line.startswith("calls=") and fn and cfn:
                counts[(short(fn), short(cfn))] += int(line[6:].split()[0])
    return counts


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    counts = pairs(sys.argv[1])
    total = sum(counts.values()) or 1
    for (a, b), n in counts.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 40):
        print(f"{n:>12} {100 * n / total:6.2f}%  {a} -> {b}")


if __name__ == "__main__":
    main()
