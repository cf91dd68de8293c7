// Every standard function family, systematically: the five vector functions
// of each of the twelve vector types, copies and conversions of every type,
// and the reference functions (copy, same, host info with and without a
// finalizer, views to and from wasm_ref_t, const variants) of every kind of
// reference. Run under valgrind too, so ownership mistakes show as leaks or
// invalid accesses.
#include "common.h"

static int finalized = 0;
static void count_finalizer(void* p) { finalized += *(int*)p; }
static int one = 1;
static int marker = 7;

static wasm_limits_t limits = {1, 4};

static wasm_valtype_t* make_valtype(void) { return wasm_valtype_new_i64(); }
static wasm_functype_t* make_functype(void) { return wasm_functype_new_1_1(wasm_valtype_new_f32(), wasm_valtype_new_f64()); }
static wasm_globaltype_t* make_globaltype(void) { return wasm_globaltype_new(wasm_valtype_new_i32(), WASM_VAR); }
static wasm_tabletype_t* make_tabletype(void) { return wasm_tabletype_new(wasm_valtype_new_funcref(), &limits); }
static wasm_memorytype_t* make_memorytype(void) { return wasm_memorytype_new(&limits); }
static wasm_externtype_t* make_externtype(void) { return wasm_globaltype_as_externtype(make_globaltype()); }
static wasm_importtype_t* make_importtype(void) {
  wasm_name_t m, n;
  wasm_name_new_from_string(&m, "mod");
  wasm_name_new_from_string(&n, "name");
  return wasm_importtype_new(&m, &n, wasm_tabletype_as_externtype(make_tabletype()));
}
static wasm_exporttype_t* make_exporttype(void) {
  wasm_name_t n;
  wasm_name_new_from_string(&n, "export");
  return wasm_exporttype_new(&n, wasm_functype_as_externtype(make_functype()));
}
static wasm_frame_t* the_frame;
static wasm_frame_t* make_frame(void) { return wasm_frame_copy(the_frame); }
static wasm_extern_t* the_extern;
static wasm_extern_t* make_extern(void) { return wasm_extern_copy(the_extern); }

// new_empty, new_uninitialized (nulls, one filled), new (moving two), copy (deep), delete.
#define CHECK_PTR_VEC(name)                                                    \
  do {                                                                         \
    wasm_##name##_vec_t e, u, v, c;                                            \
    wasm_##name##_vec_new_empty(&e);                                           \
    CHECK(e.size == 0);                                                        \
    wasm_##name##_vec_delete(&e);                                              \
    wasm_##name##_vec_new_uninitialized(&u, 3);                                \
    CHECK(u.size == 3 && u.data[0] == NULL && u.data[2] == NULL);              \
    u.data[1] = make_##name();                                                 \
    wasm_##name##_vec_delete(&u);                                              \
    wasm_##name##_t* elems[2] = {make_##name(), make_##name()};                \
    wasm_##name##_vec_new(&v, 2, elems);                                       \
    wasm_##name##_vec_copy(&c, &v);                                            \
    CHECK(c.size == 2 && c.data[0] != v.data[0] && c.data[1] != NULL);         \
    wasm_##name##_t* single = wasm_##name##_copy(c.data[1]);                   \
    CHECK(single != NULL);                                                     \
    wasm_##name##_delete(single);                                              \
    wasm_##name##_vec_delete(&v);                                              \
    wasm_##name##_vec_delete(&c);                                              \
    printf("vec %s: ok\n", #name);                                             \
  } while (0)

// The reference functions of one kind, on `obj` (which keeps the shared host
// info alive: its finalizer runs only when `obj` is deleted too).
#define CHECK_REF(name, obj)                                                   \
  do {                                                                         \
    wasm_##name##_t* c = wasm_##name##_copy(obj);                              \
    CHECK(c && wasm_##name##_same(c, obj));                                    \
    wasm_##name##_set_host_info(c, &marker);                                   \
    CHECK(wasm_##name##_get_host_info(obj) == &marker);                        \
    wasm_##name##_set_host_info_with_finalizer(c, &one, count_finalizer);      \
    CHECK(wasm_##name##_get_host_info(obj) == &one);                           \
    wasm_ref_t* r = wasm_##name##_as_ref(obj);                                 \
    CHECK(r && wasm_ref_as_##name(r) == obj);                                  \
    CHECK(wasm_##name##_as_ref_const(obj) == r);                               \
    CHECK(wasm_ref_as_##name##_const(r) == obj);                               \
    CHECK(wasm_ref_get_host_info(r) == &one);                                  \
    wasm_ref_t* rc = wasm_ref_copy(r);                                         \
    CHECK(wasm_ref_same(rc, r));                                               \
    wasm_ref_delete(rc);                                                       \
    int before = finalized;                                                    \
    wasm_##name##_delete(c);                                                   \
    CHECK(finalized == before);                                                \
    printf("ref %s: ok\n", #name);                                             \
  } while (0)

int main(void) {
  wasm_config_t* unused_config = wasm_config_new();
  wasm_config_delete(unused_config);
  wasm_engine_t* engine = wasm_engine_new();
  wasm_store_t* store = wasm_store_new(engine);
  wasm_module_t* module = compile_wat(store,
    "(module\n"
    "  (func (export \"f\") (param i32) (result i32) (if (local.get 0) (then unreachable)) (local.get 0))\n"
    "  (global (export \"g\") (mut i32) (i32.const 1))\n"
    "  (table (export \"t\") 2 funcref)\n"
    "  (memory (export \"m\") 1))\n");
  wasm_instance_t* instance = wasm_instance_new(store, module, NULL, NULL);
  CHECK(instance);
  wasm_extern_vec_t exports;
  wasm_instance_exports(instance, &exports);
  CHECK(exports.size == 4);
  wasm_func_t* func = wasm_extern_as_func(exports.data[0]);
  wasm_global_t* global = wasm_extern_as_global(exports.data[1]);
  wasm_table_t* table = wasm_extern_as_table(exports.data[2]);
  wasm_memory_t* memory = wasm_extern_as_memory(exports.data[3]);
  CHECK(func && global && table && memory);

  // Extern views, mutable and const, both ways; extern types.
  CHECK(wasm_func_as_extern(func) == exports.data[0] && wasm_func_as_extern_const(func) == exports.data[0]);
  CHECK(wasm_global_as_extern(global) == exports.data[1] && wasm_global_as_extern_const(global) == exports.data[1]);
  CHECK(wasm_table_as_extern(table) == exports.data[2] && wasm_table_as_extern_const(table) == exports.data[2]);
  CHECK(wasm_memory_as_extern(memory) == exports.data[3] && wasm_memory_as_extern_const(memory) == exports.data[3]);
  CHECK(wasm_extern_as_func_const(exports.data[0]) == func && wasm_extern_as_global_const(exports.data[1]) == global);
  CHECK(wasm_extern_as_table_const(exports.data[2]) == table && wasm_extern_as_memory_const(exports.data[3]) == memory);
  CHECK(wasm_extern_as_table_const(exports.data[0]) == NULL && wasm_extern_as_memory(exports.data[0]) == NULL);
  for (size_t i = 0; i < 4; i++) {
    wasm_externtype_t* t = wasm_extern_type(exports.data[i]);
    CHECK(wasm_externtype_kind(t) == wasm_extern_kind(exports.data[i]));
    wasm_externtype_delete(t);
  }
  printf("extern views and types: ok\n");

  // Type conversions, const and not, and copies.
  wasm_functype_t* ft = make_functype();
  wasm_globaltype_t* gt = make_globaltype();
  wasm_tabletype_t* tt = make_tabletype();
  wasm_memorytype_t* mt = make_memorytype();
  CHECK(wasm_externtype_as_functype(wasm_functype_as_externtype(ft)) == ft);
  CHECK(wasm_externtype_as_globaltype(wasm_globaltype_as_externtype(gt)) == gt);
  CHECK(wasm_externtype_as_tabletype(wasm_tabletype_as_externtype(tt)) == tt);
  CHECK(wasm_externtype_as_memorytype(wasm_memorytype_as_externtype(mt)) == mt);
  CHECK(wasm_externtype_as_functype_const(wasm_functype_as_externtype_const(ft)) == ft);
  CHECK(wasm_externtype_as_globaltype_const(wasm_globaltype_as_externtype_const(gt)) == gt);
  CHECK(wasm_externtype_as_tabletype_const(wasm_tabletype_as_externtype_const(tt)) == tt);
  CHECK(wasm_externtype_as_memorytype_const(wasm_memorytype_as_externtype_const(mt)) == mt);
  CHECK(wasm_externtype_as_memorytype(wasm_functype_as_externtype(ft)) == NULL);
  wasm_valtype_t* vt = wasm_valtype_copy(wasm_globaltype_content(gt));
  CHECK(wasm_valtype_kind(vt) == WASM_I32);
  wasm_valtype_delete(vt);
  wasm_functype_t* ft2 = wasm_functype_copy(ft);
  CHECK(wasm_valtype_kind(wasm_functype_results(ft2)->data[0]) == WASM_F64);
  wasm_functype_delete(ft2);
  wasm_functype_delete(ft);
  wasm_globaltype_delete(gt);
  wasm_tabletype_delete(tt);
  wasm_memorytype_delete(mt);
  printf("type views and copies: ok\n");

  // A frame to copy, from a trap.
  wasm_val_t a[1] = {WASM_I32_VAL(1)};
  wasm_val_t r[1] = {WASM_INIT_VAL};
  wasm_val_vec_t args = WASM_ARRAY_VEC(a), results = WASM_ARRAY_VEC(r);
  wasm_trap_t* trap = wasm_func_call(func, &args, &results);
  CHECK(trap);
  the_frame = wasm_trap_origin(trap);
  CHECK(the_frame && wasm_frame_func_index(the_frame) == 0);
  printf("frame offsets: in function %s, in module %s\n", wasm_frame_func_offset(the_frame) > 0 ? "yes" : "no",
         wasm_frame_module_offset(the_frame) > wasm_frame_func_offset(the_frame) ? "yes" : "no");
  the_extern = exports.data[2];

  CHECK_PTR_VEC(valtype);
  CHECK_PTR_VEC(functype);
  CHECK_PTR_VEC(globaltype);
  CHECK_PTR_VEC(tabletype);
  CHECK_PTR_VEC(memorytype);
  CHECK_PTR_VEC(externtype);
  CHECK_PTR_VEC(importtype);
  CHECK_PTR_VEC(exporttype);
  CHECK_PTR_VEC(frame);
  CHECK_PTR_VEC(extern);

  // Byte vectors.
  wasm_byte_vec_t be, bu, bv, bc;
  wasm_byte_vec_new_empty(&be);
  CHECK(be.size == 0);
  wasm_byte_vec_delete(&be);
  wasm_byte_vec_new_uninitialized(&bu, 5);
  CHECK(bu.size == 5);
  memcpy(bu.data, "bytes", 5);
  wasm_byte_vec_copy(&bc, &bu);
  CHECK(bc.size == 5 && memcmp(bc.data, "bytes", 5) == 0 && bc.data != bu.data);
  wasm_byte_vec_new(&bv, 3, "abc");
  CHECK(bv.size == 3 && memcmp(bv.data, "abc", 3) == 0);
  wasm_byte_vec_delete(&bu);
  wasm_byte_vec_delete(&bc);
  wasm_byte_vec_delete(&bv);
  printf("vec byte: ok\n");

  // Value vectors, with references inside: copies own their references.
  wasm_val_vec_t ve, vu, vv, vc;
  wasm_val_vec_new_empty(&ve);
  wasm_val_vec_delete(&ve);
  wasm_val_vec_new_uninitialized(&vu, 2);
  CHECK(vu.size == 2);
  vu.data[0].kind = WASM_FUNCREF;
  vu.data[0].of.ref = wasm_func_as_ref(wasm_func_copy(func));
  vu.data[1].kind = WASM_I64;
  vu.data[1].of.i64 = 5;
  wasm_val_vec_copy(&vc, &vu);
  CHECK(vc.data[0].of.ref != vu.data[0].of.ref && wasm_ref_same(vc.data[0].of.ref, vu.data[0].of.ref));
  wasm_val_t single;
  wasm_val_copy(&single, &vc.data[0]);
  CHECK(wasm_ref_as_func(single.of.ref) != NULL);
  wasm_val_delete(&single);
  wasm_val_t moved[2] = {vc.data[0], WASM_F32_VAL(1.5f)};
  vc.data[0].kind = WASM_I32;  // ownership moved out
  wasm_val_vec_new(&vv, 2, moved);
  wasm_val_vec_delete(&vu);
  wasm_val_vec_delete(&vc);
  wasm_val_vec_delete(&vv);
  printf("vec val: ok\n");

  // Reference functions for every kind of reference.
  wasm_table_t* host_table = NULL;
  {
    wasm_tabletype_t* htt = make_tabletype();
    host_table = wasm_table_new(store, htt, wasm_func_as_ref(func));
    wasm_tabletype_delete(htt);
    CHECK(host_table && wasm_table_size(host_table) == 1);
    wasm_ref_t* first = wasm_table_get(host_table, 0);
    CHECK(first && wasm_func_same(wasm_ref_as_func(first), func));
    wasm_ref_delete(first);
  }
  wasm_foreign_t* foreign = wasm_foreign_new(store);
  wasm_func_t* func_h = wasm_func_copy(func);
  wasm_global_t* global_h = wasm_global_copy(global);
  wasm_memory_t* memory_h = wasm_memory_copy(memory);
  wasm_extern_t* extern_h = wasm_extern_copy(exports.data[0]);
  wasm_instance_t* instance_h = wasm_instance_copy(instance);
  wasm_module_t* module_h = wasm_module_copy(module);
  wasm_trap_t* trap_h = wasm_trap_copy(trap);
  CHECK_REF(func, func_h);
  CHECK_REF(global, global_h);
  CHECK_REF(table, host_table);
  CHECK_REF(memory, memory_h);
  CHECK_REF(extern, extern_h);
  CHECK_REF(instance, instance_h);
  CHECK_REF(module, module_h);
  CHECK_REF(trap, trap_h);
  CHECK_REF(foreign, foreign);
  CHECK(wasm_instance_same(instance_h, instance) && wasm_module_same(module_h, module));
  CHECK(wasm_table_same(host_table, host_table) && !wasm_table_same(host_table, table));
  CHECK(wasm_memory_same(memory_h, memory) && wasm_extern_same(extern_h, exports.data[0]));
  // A function's reference seen as an extern is the function's extern view.
  CHECK(wasm_ref_as_extern(wasm_func_as_ref(func)) == wasm_func_as_extern(func));
  CHECK(wasm_ref_as_extern_const(wasm_global_as_ref(global)) == wasm_global_as_extern_const(global));
  CHECK(wasm_ref_as_extern(wasm_extern_as_ref(exports.data[0])) == exports.data[0]);
  CHECK(wasm_ref_as_extern_const(wasm_extern_as_ref_const(exports.data[0])) == exports.data[0]);
  CHECK(wasm_ref_as_extern(wasm_module_as_ref(module)) == NULL && wasm_ref_as_instance(wasm_trap_as_ref(trap)) == NULL);
  wasm_ref_set_host_info(wasm_foreign_as_ref(foreign), &marker);
  CHECK(wasm_foreign_get_host_info(foreign) == &marker);
  wasm_ref_set_host_info_with_finalizer(wasm_foreign_as_ref(foreign), &one, count_finalizer);
  printf("finalized before deleting the handles: %d\n", finalized);
  wasm_func_delete(func_h);
  wasm_global_delete(global_h);
  wasm_table_delete(host_table);
  wasm_memory_delete(memory_h);
  wasm_extern_delete(extern_h);
  wasm_instance_delete(instance_h);
  wasm_module_delete(module_h);
  wasm_trap_delete(trap_h);
  wasm_foreign_delete(foreign);
  // Copies share their original's host info: those of copies of live
  // objects (the exports, the instance, the module, the trap) wait for them.
  printf("finalized after deleting the handles: %d\n", finalized);

  wasm_frame_delete(the_frame);
  wasm_trap_delete(trap);
  wasm_extern_vec_delete(&exports);
  wasm_instance_delete(instance);
  wasm_module_delete(module);
  wasm_store_delete(store);
  wasm_engine_delete(engine);
  printf("finalized at the end: %d\n", finalized);
  return 0;
}
