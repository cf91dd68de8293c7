// Tables: a funcref table read, written, grown from C and called through by
// wasm; an externref table holding a foreign object with its host info.
#include "common.h"

static wasm_trap_t* seven(const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  (void)args;
  results->data[0].kind = WASM_I32;
  results->data[0].of.i32 = 7;
  return NULL;
}

int main(void) {
  wasm_engine_t* engine = wasm_engine_new();
  wasm_store_t* store = wasm_store_new(engine);
  wasm_module_t* module = compile_wat(store,
    "(module\n"
    "  (type $t (func (result i32)))\n"
    "  (table (export \"funcs\") 2 10 funcref)\n"
    "  (table (export \"things\") 1 externref)\n"
    "  (elem (i32.const 0) $one)\n"
    "  (func $one (result i32) (i32.const 1))\n"
    "  (func (export \"call\") (param i32) (result i32) (call_indirect (type $t) (local.get 0)))\n"
    "  (func (export \"keep\") (param externref) (table.set 1 (i32.const 0) (local.get 0)))\n"
    "  (func (export \"give\") (result externref) (table.get 1 (i32.const 0))))\n");
  wasm_instance_t* instance = wasm_instance_new(store, module, NULL, NULL);
  CHECK(instance);
  wasm_extern_vec_t exports;
  wasm_instance_exports(instance, &exports);
  wasm_table_t* funcs = wasm_extern_as_table(exports.data[0]);
  wasm_table_t* things = wasm_extern_as_table(exports.data[1]);
  wasm_func_t* call = export_func(&exports, 2);
  CHECK(funcs && things);

  wasm_tabletype_t* tt = wasm_table_type(funcs);
  printf("funcs: element kind %d, limits %u..%u, size %u\n", wasm_valtype_kind(wasm_tabletype_element(tt)),
         wasm_tabletype_limits(tt)->min, wasm_tabletype_limits(tt)->max, wasm_table_size(funcs));
  wasm_tabletype_delete(tt);

  int32_t r;
  CHECK(call_i32(call, 0, &r) == NULL);
  printf("call(0) = %d\n", r);
  wasm_trap_t* trap = call_i32(call, 1, &r);
  CHECK(trap);
  print_trap(trap);
  trap = call_i32(call, 5, &r);
  CHECK(trap);
  print_trap(trap);

  // Read element 0 (a function), call it from C.
  wasm_ref_t* elem = wasm_table_get(funcs, 0);
  CHECK(elem);
  wasm_func_t* one = wasm_ref_as_func(elem);
  CHECK(one);
  wasm_val_vec_t no_args = WASM_EMPTY_VEC;
  wasm_val_t res_vals[1] = {WASM_INIT_VAL};
  wasm_val_vec_t res = WASM_ARRAY_VEC(res_vals);
  CHECK(wasm_func_call(one, &no_args, &res) == NULL);
  printf("table[0]() = %d\n", res_vals[0].of.i32);
  wasm_ref_delete(elem);
  CHECK(wasm_table_get(funcs, 1) == NULL);  // null element
  CHECK(wasm_table_get(funcs, 2) == NULL);  // out of bounds

  // Put a host function in slot 1, then call it through the table.
  wasm_functype_t* ft = wasm_functype_new_0_1(wasm_valtype_new_i32());
  wasm_func_t* host = wasm_func_new(store, ft, seven);
  wasm_functype_delete(ft);
  CHECK(wasm_table_set(funcs, 1, wasm_func_as_ref(host)));
  CHECK(call_i32(call, 1, &r) == NULL);
  printf("call(1) after set = %d\n", r);
  CHECK(!wasm_table_set(funcs, 2, wasm_func_as_ref(host)));

  // Grow with the host function as the initial value.
  CHECK(wasm_table_grow(funcs, 3, wasm_func_as_ref(host)));
  printf("size after grow = %u\n", wasm_table_size(funcs));
  CHECK(call_i32(call, 4, &r) == NULL);
  printf("call(4) = %d\n", r);
  CHECK(!wasm_table_grow(funcs, 6, NULL));
  printf("size after refused grow = %u\n", wasm_table_size(funcs));

  // A foreign object through an externref table: identity and host info survive.
  wasm_foreign_t* foreign = wasm_foreign_new(store);
  static int marker = 1234;
  wasm_foreign_set_host_info(foreign, &marker);
  wasm_val_t arg[1] = {WASM_REF_VAL(wasm_foreign_as_ref(foreign))};
  wasm_val_vec_t args = WASM_ARRAY_VEC(arg);
  wasm_val_vec_t none = WASM_EMPTY_VEC;
  CHECK(wasm_func_call(export_func(&exports, 3), &args, &none) == NULL);
  wasm_val_t out[1] = {WASM_INIT_VAL};
  wasm_val_vec_t outv = WASM_ARRAY_VEC(out);
  CHECK(wasm_func_call(export_func(&exports, 4), &no_args, &outv) == NULL);
  CHECK(out[0].kind == WASM_EXTERNREF && out[0].of.ref != NULL);
  printf("externref same: %d, host info: %d\n", wasm_ref_same(out[0].of.ref, wasm_foreign_as_ref(foreign)),
         *(int*)wasm_ref_get_host_info(out[0].of.ref));
  wasm_foreign_t* back = wasm_ref_as_foreign(out[0].of.ref);
  CHECK(back && wasm_foreign_same(back, foreign));
  CHECK(wasm_ref_as_func(out[0].of.ref) == NULL);
  wasm_val_delete(&out[0]);
  wasm_ref_t* in_table = wasm_table_get(things, 0);
  CHECK(in_table && wasm_ref_same(in_table, wasm_foreign_as_ref(foreign)));
  wasm_ref_delete(in_table);
  // A foreign object is not a funcref element (any reference is an externref).
  CHECK(!wasm_table_set(funcs, 0, wasm_foreign_as_ref(foreign)));

  wasm_foreign_delete(foreign);
  wasm_func_delete(host);
  wasm_extern_vec_delete(&exports);
  wasm_instance_delete(instance);
  wasm_module_delete(module);
  wasm_store_delete(store);
  wasm_engine_delete(engine);
  return 0;
}
