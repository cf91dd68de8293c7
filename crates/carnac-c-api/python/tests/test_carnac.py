"""Tests of the Python binding (run by `cargo test -p carnac-c-api`, or
`python3 -m pytest crates/carnac-c-api/python` after building libcarnac)."""

import pytest

import carnac

ADD = '(module (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))'


def test_five_line_example():
    engine = carnac.Engine()
    module = carnac.Module(engine, ADD)
    instance = carnac.Instance(carnac.Store(engine), module)
    assert instance.exports["add"](2, 3) == 5
    assert instance.exports["add"](2**31 - 1, 1) == -(2**31)


def test_multi_value_and_types():
    engine = carnac.Engine(strategy="interpreter")
    wat = '(module (func (export "f") (param i64) (result f64 i64) (f64.convert_i64_s (local.get 0)) (local.get 0)))'
    instance = carnac.Instance(carnac.Store(engine), carnac.Module(engine, wat))
    f = instance.exports["f"]
    assert f.type == ([carnac.ValType.I64], [carnac.ValType.F64, carnac.ValType.I64])
    assert f(-7) == (-7.0, -7)


def test_module_refused_with_message():
    engine = carnac.Engine()
    with pytest.raises(carnac.Error, match="type mismatch"):
        carnac.Module(engine, "(module (func (result i32)))")
    with pytest.raises(carnac.Error):
        carnac.Module(engine, b"\0asm\x02\0\0\0")


def test_trap_is_an_exception():
    engine = carnac.Engine()
    module = carnac.Module(engine, '(module (func (export "boom") (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0))))')
    instance = carnac.Instance(carnac.Store(engine), module)
    assert instance.exports["boom"](1) == 1
    with pytest.raises(carnac.Trap) as info:
        instance.exports["boom"](0)
    assert info.value.message == "integer divide by zero"
    assert info.value.code == 6


def test_host_function_and_its_exception():
    engine = carnac.Engine()
    store = carnac.Store(engine)
    seen = []

    def log(x):
        seen.append(x)
        if x < 0:
            raise ValueError("negative")
        return x * 10

    host = carnac.Func(store, ["i32"], ["i32"], log)
    module = carnac.Module(engine, '(module (import "py" "log" (func $log (param i32) (result i32))) (func (export "run") (param i32) (result i32) (i32.add (call $log (local.get 0)) (i32.const 1))))')
    instance = carnac.Instance(store, module, [host])
    assert instance.exports["run"](4) == 41
    with pytest.raises(carnac.Trap, match="ValueError: negative"):
        instance.exports["run"](-1)
    assert seen == [4, -1]
    assert host(2) == 20


def test_memory_and_globals():
    engine = carnac.Engine()
    module = carnac.Module(engine, """(module
        (memory (export "memory") 1 2)
        (data (i32.const 8) "carnac")
        (global (export "count") (mut i32) (i32.const 5))
        (global (export "fixed") i64 (i64.const 9))
        (table (export "table") 3 funcref)
        (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0))))""")
    instance = carnac.Instance(carnac.Store(engine), module)
    memory = instance.exports["memory"]
    assert memory.read(8, 6) == b"carnac"
    memory.write(100, b"\x2a")
    assert instance.exports["load"](100) == 42
    assert memory.pages == 1 and len(memory) == 65536
    memory.grow(1)
    assert memory.pages == 2
    with pytest.raises(carnac.Error):
        memory.grow(1)
    with pytest.raises(IndexError):
        memory.read(2 * 65536 - 1, 2)
    count = instance.exports["count"]
    assert count.value == 5
    count.value = 6
    assert count.value == 6
    with pytest.raises(carnac.Error):
        instance.exports["fixed"].value = 1
    assert len(instance.exports["table"]) == 3


def test_fuel():
    engine = carnac.Engine(strategy="interpreter", consume_fuel=True)
    store = carnac.Store(engine)
    store.fuel = 1000
    module = carnac.Module(engine, '(module (func (export "spin") (loop $l (br $l))))')
    instance = carnac.Instance(store, module)
    with pytest.raises(carnac.Trap) as info:
        instance.exports["spin"]()
    assert info.value.message == "all fuel consumed"
    assert store.fuel == 0


def test_missing_import_is_an_error():
    engine = carnac.Engine()
    module = carnac.Module(engine, '(module (import "env" "f" (func)))')
    with pytest.raises(carnac.Error, match="needs 1 imports"):
        carnac.Instance(carnac.Store(engine), module)
