// Globals: imported from the host (const and var), exported, read and
// written from both sides; setting a const global or a wrong kind is refused.
#include "common.h"

int main(void) {
  wasm_engine_t* engine = wasm_engine_new();
  wasm_store_t* store = wasm_store_new(engine);
  wasm_module_t* module = compile_wat(store,
    "(module\n"
    "  (global $c (import \"host\" \"const\") f32)\n"
    "  (global $v (import \"host\" \"var\") (mut i64))\n"
    "  (global $own (export \"counter\") (mut i32) (i32.const 7))\n"
    "  (global (export \"pi\") f64 (f64.const 3.25))\n"
    "  (func (export \"bump\") (result i32)\n"
    "    (global.set $own (i32.add (global.get $own) (i32.const 1)))\n"
    "    (global.set $v (i64.mul (global.get $v) (i64.const 2)))\n"
    "    (global.get $own))\n"
    "  (func (export \"read_const\") (result f32) (global.get $c)))\n");

  wasm_globaltype_t* const_type = wasm_globaltype_new(wasm_valtype_new_f32(), WASM_CONST);
  wasm_globaltype_t* var_type = wasm_globaltype_new(wasm_valtype_new_i64(), WASM_VAR);
  wasm_val_t c_val = WASM_F32_VAL(1.5f);
  wasm_val_t v_val = WASM_I64_VAL(21);
  wasm_global_t* c = wasm_global_new(store, const_type, &c_val);
  wasm_global_t* v = wasm_global_new(store, var_type, &v_val);
  CHECK(c && v);
  // A value of the wrong kind makes no global.
  CHECK(wasm_global_new(store, var_type, &c_val) == NULL);
  wasm_globaltype_delete(const_type);
  wasm_globaltype_delete(var_type);

  wasm_extern_t* externs[2] = {wasm_global_as_extern(c), wasm_global_as_extern(v)};
  wasm_extern_vec_t imports = WASM_ARRAY_VEC(externs);
  wasm_instance_t* instance = wasm_instance_new(store, module, &imports, NULL);
  CHECK(instance);
  wasm_extern_vec_t exports;
  wasm_instance_exports(instance, &exports);
  CHECK(exports.size == 4);
  wasm_global_t* counter = wasm_extern_as_global(exports.data[0]);
  wasm_global_t* pi = wasm_extern_as_global(exports.data[1]);
  CHECK(counter && pi);
  CHECK(wasm_extern_as_func(exports.data[0]) == NULL);
  CHECK(wasm_extern_kind(exports.data[0]) == WASM_EXTERN_GLOBAL);

  wasm_globaltype_t* ty = wasm_global_type(counter);
  printf("counter: kind %d, mutability %d\n", wasm_valtype_kind(wasm_globaltype_content(ty)),
         wasm_globaltype_mutability(ty));
  wasm_globaltype_delete(ty);

  wasm_val_t val;
  wasm_global_get(counter, &val);
  printf("counter = %d\n", val.of.i32);
  wasm_global_get(pi, &val);
  printf("pi = %.2f\n", val.of.f64);

  wasm_val_t results[1] = {WASM_INIT_VAL};
  wasm_val_vec_t no_args = WASM_EMPTY_VEC;
  wasm_val_vec_t res = WASM_ARRAY_VEC(results);
  CHECK(wasm_func_call(export_func(&exports, 2), &no_args, &res) == NULL);
  printf("bump() = %d\n", results[0].of.i32);
  wasm_global_get(v, &val);
  printf("host var after bump = %lld\n", (long long)val.of.i64);

  // Host writes, seen by wasm.
  wasm_val_t forty = WASM_I32_VAL(40);
  wasm_global_set(counter, &forty);
  CHECK(wasm_func_call(export_func(&exports, 2), &no_args, &res) == NULL);
  printf("bump() after set = %d\n", results[0].of.i32);

  // Refused writes: a const global, a value of the wrong kind.
  wasm_val_t two = WASM_F64_VAL(2.0);
  wasm_global_set(pi, &two);
  wasm_global_get(pi, &val);
  printf("pi after refused set = %.2f\n", val.of.f64);
  wasm_global_set(counter, &two);
  wasm_global_get(counter, &val);
  printf("counter after wrong-kind set = %d (kind %d)\n", val.of.i32, val.kind);

  CHECK(wasm_func_call(export_func(&exports, 3), &no_args, &res) == NULL);
  printf("read_const() = %.1f\n", results[0].of.f32);

  // Copies are the same global; different globals are not.
  wasm_global_t* copy = wasm_global_copy(counter);
  CHECK(wasm_global_same(copy, counter));
  CHECK(!wasm_global_same(copy, pi));
  wasm_global_delete(copy);

  wasm_extern_vec_delete(&exports);
  wasm_instance_delete(instance);
  wasm_global_delete(c);
  wasm_global_delete(v);
  wasm_module_delete(module);
  wasm_store_delete(store);
  wasm_engine_delete(engine);
  return 0;
}
