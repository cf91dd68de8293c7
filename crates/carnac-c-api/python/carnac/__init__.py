"""Carnac, a WebAssembly runtime, embedded in Python.

A small binding over libcarnac's standard C API (wasm.h) and its extensions
(carnac.h), with ctypes::

    import carnac
    engine = carnac.Engine()
    module = carnac.Module(engine, '(module (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))')
    instance = carnac.Instance(carnac.Store(engine), module)
    print(instance.exports["add"](2, 3))  # 5

The library is found at ``$CARNAC_LIB`` if set, else in the repository's
``target/release/`` or ``target/debug/`` (build it with
``cargo build --release -p carnac-c-api``).
"""

import ctypes
import os
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    Union,
    byref,
    c_bool,
    c_char,
    c_char_p,
    c_double,
    c_float,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path

__all__ = [
    "Engine",
    "Store",
    "Module",
    "Instance",
    "Func",
    "Memory",
    "Global",
    "Table",
    "Error",
    "Trap",
    "ValType",
]


def _find_library():
    env = os.environ.get("CARNAC_LIB")
    if env:
        return env
    repo = Path(__file__).resolve().parents[4]
    target = Path(os.environ.get("CARGO_TARGET_DIR", repo / "target"))
    for profile in ("release", "debug"):
        candidate = target / profile / "libcarnac.so"
        if candidate.exists():
            return str(candidate)
    raise ImportError(
        "libcarnac.so not found: build it with `cargo build --release -p carnac-c-api` "
        "or set CARNAC_LIB to its path"
    )


_lib = ctypes.CDLL(_find_library())


class _ByteVec(Structure):
    _fields_ = [("size", c_size_t), ("data", POINTER(c_char))]


class _Of(Union):
    _fields_ = [("i32", c_int32), ("i64", c_int64), ("f32", c_float), ("f64", c_double), ("ref", c_void_p)]


class _Val(Structure):
    _fields_ = [("kind", c_uint8), ("of", _Of)]


class _ValVec(Structure):
    _fields_ = [("size", c_size_t), ("data", POINTER(_Val))]


class _PtrVec(Structure):
    _fields_ = [("size", c_size_t), ("data", POINTER(c_void_p))]


class _Limits(Structure):
    _fields_ = [("min", c_uint32), ("max", c_uint32)]


_CALLBACK = CFUNCTYPE(c_void_p, POINTER(_ValVec), POINTER(_ValVec))


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_P = c_void_p
_engine_new = _fn("wasm_engine_new_with_config", _P, _P)
_engine_delete = _fn("wasm_engine_delete", None, _P)
_config_new = _fn("wasm_config_new", _P)
_config_strategy = _fn("carnac_config_strategy", c_bool, _P, c_uint8)
_config_consume_fuel = _fn("carnac_config_consume_fuel", None, _P, c_bool)
_store_new = _fn("wasm_store_new", _P, _P)
_store_delete = _fn("wasm_store_delete", None, _P)
_store_set_fuel = _fn("carnac_store_set_fuel", _P, _P, c_uint64)
_store_get_fuel = _fn("carnac_store_get_fuel", _P, _P, POINTER(c_uint64))
_error_message = _fn("carnac_error_message", None, _P, POINTER(_ByteVec))
_error_delete = _fn("carnac_error_delete", None, _P)
_byte_vec_delete = _fn("wasm_byte_vec_delete", None, POINTER(_ByteVec))
_byte_vec_new = _fn("wasm_byte_vec_new", None, POINTER(_ByteVec), c_size_t, c_char_p)
_module_new = _fn("carnac_module_new", _P, _P, c_char_p, c_size_t, POINTER(_P))
_module_delete = _fn("wasm_module_delete", None, _P)
_module_exports = _fn("wasm_module_exports", None, _P, POINTER(_PtrVec))
_exporttype_vec_delete = _fn("wasm_exporttype_vec_delete", None, POINTER(_PtrVec))
_exporttype_name = _fn("wasm_exporttype_name", POINTER(_ByteVec), _P)
_instance_new = _fn("wasm_instance_new", _P, _P, _P, POINTER(_PtrVec), POINTER(_P))
_instance_delete = _fn("wasm_instance_delete", None, _P)
_instance_exports = _fn("wasm_instance_exports", None, _P, POINTER(_PtrVec))
_extern_vec_delete = _fn("wasm_extern_vec_delete", None, POINTER(_PtrVec))
_extern_copy = _fn("wasm_extern_copy", _P, _P)
_extern_delete = _fn("wasm_extern_delete", None, _P)
_extern_kind = _fn("wasm_extern_kind", c_uint8, _P)
_extern_as_func = _fn("wasm_extern_as_func", _P, _P)
_extern_as_global = _fn("wasm_extern_as_global", _P, _P)
_extern_as_memory = _fn("wasm_extern_as_memory", _P, _P)
_extern_as_table = _fn("wasm_extern_as_table", _P, _P)
_func_as_extern = _fn("wasm_func_as_extern", _P, _P)
_func_new = _fn("wasm_func_new", _P, _P, _P, _CALLBACK)
_func_delete = _fn("wasm_func_delete", None, _P)
_func_type = _fn("wasm_func_type", _P, _P)
_func_call = _fn("wasm_func_call", _P, _P, POINTER(_ValVec), POINTER(_ValVec))
_functype_new = _fn("wasm_functype_new", _P, POINTER(_PtrVec), POINTER(_PtrVec))
_functype_delete = _fn("wasm_functype_delete", None, _P)
_functype_params = _fn("wasm_functype_params", POINTER(_PtrVec), _P)
_functype_results = _fn("wasm_functype_results", POINTER(_PtrVec), _P)
_valtype_new = _fn("wasm_valtype_new", _P, c_uint8)
_valtype_kind = _fn("wasm_valtype_kind", c_uint8, _P)
_valtype_vec_new = _fn("wasm_valtype_vec_new", None, POINTER(_PtrVec), c_size_t, POINTER(_P))
_trap_new = _fn("wasm_trap_new", _P, _P, POINTER(_ByteVec))
_trap_message = _fn("wasm_trap_message", None, _P, POINTER(_ByteVec))
_trap_delete = _fn("wasm_trap_delete", None, _P)
_trap_code = _fn("carnac_trap_code", c_uint8, _P)
_global_get = _fn("wasm_global_get", None, _P, POINTER(_Val))
_global_set = _fn("wasm_global_set", None, _P, POINTER(_Val))
_global_type = _fn("wasm_global_type", _P, _P)
_globaltype_content = _fn("wasm_globaltype_content", _P, _P)
_globaltype_mutability = _fn("wasm_globaltype_mutability", c_uint8, _P)
_globaltype_delete = _fn("wasm_globaltype_delete", None, _P)
_memory_data = _fn("wasm_memory_data", _P, _P)
_memory_data_size = _fn("wasm_memory_data_size", c_size_t, _P)
_memory_size = _fn("wasm_memory_size", c_uint32, _P)
_memory_grow = _fn("wasm_memory_grow", c_bool, _P, c_uint32)
_table_size = _fn("wasm_table_size", c_uint32, _P)


class ValType:
    """Value kinds of wasm.h."""

    I32 = 0
    I64 = 1
    F32 = 2
    F64 = 3
    EXTERNREF = 128
    FUNCREF = 129


_KIND_NAMES = {"i32": 0, "i64": 1, "f32": 2, "f64": 3}


class Error(Exception):
    """A module refused, a limit hit, a misuse: Carnac's message."""


class Trap(Exception):
    """A wasm trap: ``message`` is Carnac's message, ``code`` a CARNAC_TRAP_* value."""

    def __init__(self, message, code):
        super().__init__(message)
        self.message = message
        self.code = code


def _take_error(err):
    if not err:
        return None
    vec = _ByteVec()
    _error_message(err, byref(vec))
    message = ctypes.string_at(vec.data, vec.size).decode("utf-8", "replace")
    _byte_vec_delete(byref(vec))
    _error_delete(err)
    return Error(message)


def _take_trap(trap):
    vec = _ByteVec()
    _trap_message(trap, byref(vec))
    message = ctypes.string_at(vec.data, max(vec.size - 1, 0)).decode("utf-8", "replace")
    _byte_vec_delete(byref(vec))
    code = _trap_code(trap)
    _trap_delete(trap)
    return Trap(message, code)


def _kind(k):
    if isinstance(k, str):
        return _KIND_NAMES[k]
    return int(k)


def _to_val(kind, value):
    v = _Val()
    v.kind = kind
    if kind == ValType.I32:
        v.of.i32 = int(value)
    elif kind == ValType.I64:
        v.of.i64 = int(value)
    elif kind == ValType.F32:
        v.of.f32 = float(value)
    elif kind == ValType.F64:
        v.of.f64 = float(value)
    elif value is None:
        v.of.ref = None
    else:
        raise TypeError("only null references can be passed from Python")
    return v


def _from_val(v):
    if v.kind == ValType.I32:
        return v.of.i32
    if v.kind == ValType.I64:
        return v.of.i64
    if v.kind == ValType.F32:
        return v.of.f32
    if v.kind == ValType.F64:
        return v.of.f64
    return None


class Engine:
    """Compiles and runs modules; ``strategy`` is "auto", "interpreter" or "cranelift"."""

    _STRATEGIES = {"auto": 0, "interpreter": 1, "cranelift": 2}

    def __init__(self, strategy="auto", consume_fuel=False):
        config = _config_new()
        if not _config_strategy(config, self._STRATEGIES[strategy]):
            _engine_delete(_engine_new(config))
            raise Error(f"the {strategy} strategy is not available in this build")
        _config_consume_fuel(config, consume_fuel)
        self._ptr = _engine_new(config)

    def __del__(self):
        if getattr(self, "_ptr", None):
            _engine_delete(self._ptr)
            self._ptr = None


class Store:
    """Where instances and their state live."""

    def __init__(self, engine):
        self.engine = engine
        self._ptr = _store_new(engine._ptr)
        self._callbacks = []

    @property
    def fuel(self):
        out = c_uint64()
        err = _take_error(_store_get_fuel(self._ptr, byref(out)))
        if err:
            raise err
        return out.value

    @fuel.setter
    def fuel(self, value):
        err = _take_error(_store_set_fuel(self._ptr, value))
        if err:
            raise err

    def __del__(self):
        if getattr(self, "_ptr", None):
            _store_delete(self._ptr)
            self._ptr = None


class Module:
    """A compiled module, from text (str or bytes) or a binary (bytes)."""

    def __init__(self, engine, source):
        if isinstance(source, str):
            source = source.encode("utf-8")
        self.engine = engine
        out = c_void_p()
        err = _take_error(_module_new(engine._ptr, source, len(source), byref(out)))
        if err:
            raise err
        self._ptr = out.value

    @property
    def export_names(self):
        vec = _PtrVec()
        _module_exports(self._ptr, byref(vec))
        names = []
        for i in range(vec.size):
            name = _exporttype_name(vec.data[i]).contents
            names.append(ctypes.string_at(name.data, name.size).decode("utf-8"))
        _exporttype_vec_delete(byref(vec))
        return names

    def __del__(self):
        if getattr(self, "_ptr", None):
            _module_delete(self._ptr)
            self._ptr = None


class _Extern:
    def __init__(self, store, ptr):
        self.store = store
        self._ptr = ptr  # an owned wasm_extern_t*

    def __del__(self):
        if getattr(self, "_ptr", None):
            _extern_delete(self._ptr)
            self._ptr = None


class Func(_Extern):
    """A function: exported by an instance, or made from a Python callable.

    ``Func(store, ["i32"], ["i32"], lambda x: x + 1)`` makes a host function;
    an exception it raises becomes a trap in the calling wasm.
    """

    def __init__(self, store, params, results, callable_):
        params = [_kind(p) for p in params]
        results = [_kind(r) for r in results]

        def trampoline(args_ptr, results_ptr):
            try:
                args = args_ptr.contents
                values = [_from_val(args.data[i]) for i in range(args.size)]
                out = callable_(*values)
                if len(results) == 0:
                    outs = []
                elif len(results) == 1:
                    outs = [out]
                else:
                    outs = list(out)
                if len(outs) != len(results):
                    raise TypeError(f"expected {len(results)} results, got {len(outs)}")
                res = results_ptr.contents
                for i, (kind, value) in enumerate(zip(results, outs)):
                    res.data[i] = _to_val(kind, value)
                return None
            except BaseException as e:  # noqa: BLE001 - every failure becomes a trap
                message = f"{type(e).__name__}: {e}".encode("utf-8")
                vec = _ByteVec()
                _byte_vec_new(byref(vec), len(message), message)
                trap = _trap_new(store._ptr, byref(vec))
                _byte_vec_delete(byref(vec))
                return trap

        callback = _CALLBACK(trampoline)
        store._callbacks.append(callback)  # lives as long as the store's function
        ty = _functype(params, results)
        func = _func_new(store._ptr, ty, callback)
        _functype_delete(ty)
        super().__init__(store, _extern_copy(_func_as_extern(func)))
        _func_delete(func)

    def _func(self):
        return _extern_as_func(self._ptr)

    @property
    def type(self):
        ty = _func_type(self._func())
        kinds = lambda vec: [_valtype_kind(vec.data[i]) for i in range(vec.size)]  # noqa: E731
        params, results = kinds(_functype_params(ty).contents), kinds(_functype_results(ty).contents)
        _functype_delete(ty)
        return params, results

    def __call__(self, *args):
        params, results = self.type
        if len(args) != len(params):
            raise TypeError(f"expected {len(params)} arguments, got {len(args)}")
        arg_array = (_Val * max(len(args), 1))(*[_to_val(k, a) for k, a in zip(params, args)])
        res_array = (_Val * max(len(results), 1))()
        arg_vec = _ValVec(len(args), arg_array)
        res_vec = _ValVec(len(results), res_array)
        trap = _func_call(self._func(), byref(arg_vec), byref(res_vec))
        if trap:
            raise _take_trap(trap)
        values = [_from_val(res_array[i]) for i in range(len(results))]
        if not values:
            return None
        return values[0] if len(values) == 1 else tuple(values)


def _functype(params, results):
    def vec(kinds):
        v = _PtrVec()
        arr = (c_void_p * max(len(kinds), 1))(*[_valtype_new(k) for k in kinds])
        _valtype_vec_new(byref(v), len(kinds), arr)
        return v

    p, r = vec(params), vec(results)
    return _functype_new(byref(p), byref(r))


class Global(_Extern):
    """An exported global; ``value`` reads and (if mutable) writes it."""

    def _kind_and_mut(self):
        ty = _global_type(_extern_as_global(self._ptr))
        kind = _valtype_kind(_globaltype_content(ty))
        mut = _globaltype_mutability(ty)
        _globaltype_delete(ty)
        return kind, mut

    @property
    def value(self):
        v = _Val()
        _global_get(_extern_as_global(self._ptr), byref(v))
        return _from_val(v)

    @value.setter
    def value(self, new):
        kind, mut = self._kind_and_mut()
        if not mut:
            raise Error("the global is immutable")
        v = _to_val(kind, new)
        _global_set(_extern_as_global(self._ptr), byref(v))


class Memory(_Extern):
    """An exported memory: its size, bounds-checked reads and writes, growth."""

    def _mem(self):
        return _extern_as_memory(self._ptr)

    @property
    def pages(self):
        return _memory_size(self._mem())

    def __len__(self):
        return _memory_data_size(self._mem())

    def read(self, offset, length):
        if offset < 0 or length < 0 or offset + length > len(self):
            raise IndexError("out of bounds memory access")
        return ctypes.string_at(_memory_data(self._mem()) + offset, length)

    def write(self, offset, data):
        data = bytes(data)
        if offset < 0 or offset + len(data) > len(self):
            raise IndexError("out of bounds memory access")
        ctypes.memmove(_memory_data(self._mem()) + offset, data, len(data))

    def grow(self, pages):
        if not _memory_grow(self._mem(), pages):
            raise Error("memory cannot grow by %d pages" % pages)


class Table(_Extern):
    """An exported table (its size)."""

    def __len__(self):
        return _table_size(_extern_as_table(self._ptr))


_WRAPPERS = {0: Func, 1: Global, 2: Table, 3: Memory}


class Instance:
    """An instantiated module; ``exports`` maps export names to wrappers.

    ``imports`` are the externs (e.g. ``Func``) in the module's import order.
    """

    def __init__(self, store, module, imports=()):
        self.store = store
        self.module = module
        arr = (c_void_p * max(len(imports), 1))(*[i._ptr for i in imports])
        vec = _PtrVec(len(imports), arr)
        trap = c_void_p()
        self._ptr = _instance_new(store._ptr, module._ptr, byref(vec), byref(trap))
        if not self._ptr:
            t = _take_trap(trap.value)
            raise Error(t.message) if t.code == 11 else t
        exports = _PtrVec()
        _instance_exports(self._ptr, byref(exports))
        self.exports = {}
        for name, i in zip(module.export_names, range(exports.size)):
            ext = exports.data[i]
            cls = _WRAPPERS[_extern_kind(ext)]
            obj = cls.__new__(cls)
            _Extern.__init__(obj, store, _extern_copy(ext))
            self.exports[name] = obj
        _extern_vec_delete(byref(exports))

    def __del__(self):
        if getattr(self, "_ptr", None):
            _instance_delete(self._ptr)
            self._ptr = None
