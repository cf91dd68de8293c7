// Refusals and misuse: malformed and invalid modules, failed links, calls
// with wrong arguments, null and wrong-kind arguments everywhere. Each gives
// a null result or a trap with a message, never a crash.
#include "common.h"

static void try_module(wasm_engine_t* engine, wasm_store_t* store, const char* label, const char* bytes, size_t len) {
  wasm_byte_vec_t binary;
  wasm_byte_vec_new(&binary, len, bytes);
  printf("%s: validate %d, new %s\n", label, wasm_module_validate(store, &binary),
         wasm_module_new(store, &binary) ? "module" : "null");
  wasm_byte_vec_delete(&binary);
  wasm_module_t* module = NULL;
  carnac_error_t* err = carnac_module_new(engine, (const uint8_t*)bytes, len, &module);
  CHECK(err && !module);
  print_error(err);
}

int main(void) {
  wasm_engine_t* engine = wasm_engine_new();
  wasm_store_t* store = wasm_store_new(engine);

  try_module(engine, store, "garbage", "\0asm\x02\0\0\0", 8);
  // (module (func (result i32))): a body that leaves nothing on the stack.
  const char invalid[] = "\0asm\x01\0\0\0\x01\x05\x01\x60\0\x01\x7f\x03\x02\x01\0\x0a\x04\x01\x02\0\x0b";
  try_module(engine, store, "invalid", invalid, sizeof invalid - 1);
  const char* text = "(module (func (export \"f\") (result i32) i32.const 1))";
  wasm_byte_vec_t text_bytes;
  wasm_byte_vec_new(&text_bytes, strlen(text), text);
  printf("text through wasm_module_new: %s\n", wasm_module_new(store, &text_bytes) ? "module" : "null");
  wasm_byte_vec_delete(&text_bytes);
  wasm_module_t* from_text = NULL;
  CHECK(carnac_module_new(engine, (const uint8_t*)text, strlen(text), &from_text) == NULL && from_text);

  // A feature turned off: SIMD code is refused by an engine without it.
  wasm_config_t* no_simd = wasm_config_new();
  carnac_config_wasm_simd(no_simd, false);
  wasm_engine_t* scalar = wasm_engine_new_with_config(no_simd);
  const char* simd = "(module (func (result v128) (v128.const i64x2 1 2)))";
  wasm_module_t* simd_module = NULL;
  carnac_error_t* simd_err = carnac_module_new(scalar, (const uint8_t*)simd, strlen(simd), &simd_module);
  CHECK(simd_err && !simd_module);
  print_error(simd_err);
  CHECK(carnac_module_new(engine, (const uint8_t*)simd, strlen(simd), &simd_module) == NULL && simd_module);
  wasm_module_delete(simd_module);
  wasm_engine_delete(scalar);

  // Failed links: a missing import, an import of the wrong type.
  wasm_module_t* importer = compile_wat(store,
    "(module (import \"env\" \"f\" (func (param i32))) (import \"env\" \"g\" (global i32)))");
  wasm_trap_t* trap = NULL;
  CHECK(wasm_instance_new(store, importer, NULL, &trap) == NULL);
  print_trap(trap);
  wasm_instance_t* exporter = wasm_instance_new(store, from_text, NULL, NULL);
  wasm_extern_vec_t exports;
  wasm_instance_exports(exporter, &exports);
  wasm_extern_t* wrong[2] = {exports.data[0], exports.data[0]};
  wasm_extern_vec_t wrong_imports = WASM_ARRAY_VEC(wrong);
  CHECK(wasm_instance_new(store, importer, &wrong_imports, &trap) == NULL);
  print_trap(trap);
  wasm_extern_t* nulls[2] = {NULL, NULL};
  wasm_extern_vec_t null_imports = WASM_ARRAY_VEC(nulls);
  CHECK(wasm_instance_new(store, importer, &null_imports, &trap) == NULL);
  print_trap(trap);
  // An extern of another store.
  wasm_store_t* other = wasm_store_new(engine);
  wasm_instance_t* other_instance = wasm_instance_new(other, from_text, NULL, NULL);
  CHECK(other_instance);
  wasm_extern_vec_t other_exports;
  wasm_instance_exports(other_instance, &other_exports);
  wasm_globaltype_t* gt = wasm_globaltype_new(wasm_valtype_new_i32(), WASM_CONST);
  wasm_val_t zero = WASM_I32_VAL(0);
  wasm_global_t* g = wasm_global_new(store, gt, &zero);
  wasm_globaltype_delete(gt);
  wasm_functype_t* ft = wasm_functype_new_1_0(wasm_valtype_new_i32());
  wasm_func_t* other_func = wasm_func_new(other, ft, NULL);  // a null callback: refused
  CHECK(other_func == NULL);
  wasm_functype_delete(ft);
  wasm_extern_t* cross[2] = {other_exports.data[0], wasm_global_as_extern(g)};
  wasm_extern_vec_t cross_imports = WASM_ARRAY_VEC(cross);
  CHECK(wasm_instance_new(store, importer, &cross_imports, &trap) == NULL);
  print_trap(trap);

  // Calls with the wrong arguments or results.
  wasm_func_t* f = wasm_extern_as_func(exports.data[0]);
  wasm_val_t arg[1] = {WASM_I32_VAL(1)};
  wasm_val_vec_t one_arg = WASM_ARRAY_VEC(arg);
  wasm_val_t res[1] = {WASM_INIT_VAL};
  wasm_val_vec_t one_res = WASM_ARRAY_VEC(res);
  wasm_val_vec_t none = WASM_EMPTY_VEC;
  print_trap(wasm_func_call(f, &one_arg, &one_res));
  print_trap(wasm_func_call(f, &none, &none));
  print_trap(wasm_func_call(f, &none, NULL));
  print_trap(wasm_func_call(NULL, &none, &one_res));
  print_trap(wasm_func_call(wasm_global_as_extern(g) ? (wasm_func_t*)wasm_global_as_ref(g) : NULL, &none, &one_res));
  CHECK(wasm_func_call(f, &none, &one_res) == NULL && res[0].of.i32 == 1);

  // Null and wrong-kind arguments give null, false, zero or empty results.
  CHECK(wasm_store_new(NULL) == NULL);
  CHECK(wasm_module_new(NULL, NULL) == NULL && !wasm_module_validate(store, NULL));
  CHECK(wasm_instance_new(NULL, NULL, NULL, NULL) == NULL);
  CHECK(wasm_extern_as_global(exports.data[0]) == NULL);
  CHECK(wasm_ref_as_memory(wasm_global_as_ref(g)) == NULL);
  CHECK(wasm_ref_as_func(NULL) == NULL && wasm_func_as_extern(NULL) == NULL);
  CHECK(wasm_func_type(NULL) == NULL && wasm_func_param_arity(NULL) == 0);
  CHECK(wasm_global_type(NULL) == NULL && wasm_table_size(NULL) == 0 && !wasm_table_grow(NULL, 1, NULL));
  CHECK(wasm_memory_data(NULL) == NULL && wasm_memory_size(NULL) == 0 && !wasm_memory_grow(NULL, 1));
  CHECK(wasm_table_get((wasm_table_t*)wasm_global_as_ref(g), 0) == NULL);
  CHECK(wasm_memory_data((wasm_memory_t*)wasm_global_as_ref(g)) == NULL);
  CHECK(wasm_valtype_new(99) == NULL && wasm_functype_new(NULL, NULL) == NULL);
  CHECK(wasm_globaltype_new(wasm_valtype_new_i32(), 5) == NULL);
  CHECK(wasm_tabletype_new(wasm_valtype_new_i32(), &(wasm_limits_t){1, 2}) == NULL);
  CHECK(wasm_externtype_as_functype(wasm_memorytype_as_externtype(NULL)) == NULL);
  CHECK(wasm_trap_new(store, NULL) == NULL && wasm_trap_origin(NULL) == NULL);
  CHECK(!wasm_ref_same(NULL, NULL) && wasm_ref_get_host_info(NULL) == NULL);
  wasm_val_t v;
  wasm_global_get(NULL, &v);
  CHECK(v.kind == WASM_I32 && v.of.i32 == 0);
  wasm_global_set(NULL, &v);
  wasm_name_t empty;
  wasm_trap_message(NULL, &empty);
  CHECK(empty.size == 1 && empty.data[0] == 0);
  wasm_byte_vec_delete(&empty);
  wasm_importtype_vec_t no_imports;
  wasm_module_imports(NULL, &no_imports);
  CHECK(no_imports.size == 0);
  wasm_importtype_vec_delete(&no_imports);
  wasm_byte_vec_delete(NULL);
  wasm_module_delete(NULL);
  wasm_store_delete(NULL);
  wasm_val_delete(NULL);
  printf("null and wrong-kind arguments: ok\n");

  wasm_global_delete(g);
  wasm_extern_vec_delete(&other_exports);
  wasm_instance_delete(other_instance);
  wasm_store_delete(other);
  wasm_extern_vec_delete(&exports);
  wasm_instance_delete(exporter);
  wasm_module_delete(importer);
  wasm_module_delete(from_text);
  wasm_store_delete(store);
  wasm_engine_delete(engine);
  return 0;
}
