// A host callback called from wasm, with and without an environment; a
// callback's trap propagates; the environment's finalizer runs.
#include "common.h"

static wasm_trap_t* hello_callback(const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  printf("hello from the host: %d\n", args->data[0].of.i32);
  results->data[0].kind = WASM_I32;
  results->data[0].of.i32 = args->data[0].of.i32 * 2;
  return NULL;
}

static int finalized = 0;
static void finalize(void* env) { finalized += *(int*)env; }

static wasm_store_t* the_store;
static wasm_func_t* the_run;  // the instance's "run", for the re-entrant callback
static wasm_global_t* the_counter;

// A finalizer that uses the store: it runs once the call it was released in
// has returned (never while the store is in use).
static void call_run_finalizer(void* data) {
  wasm_val_t a[1] = {WASM_I32_VAL(*(int*)data)};
  wasm_val_t r[1] = {WASM_INIT_VAL};
  wasm_val_vec_t args = WASM_ARRAY_VEC(a);
  wasm_val_vec_t results = WASM_ARRAY_VEC(r);
  CHECK(wasm_func_call(the_run, &args, &results) == NULL);
  printf("finalizer: run(%d) = %d\n", a[0].of.i32, r[0].of.i32);
}

// Calls back into wasm and reads a global of the same store, from inside a
// call; releases a foreign object whose finalizer calls wasm too.
static wasm_trap_t* reenter(const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  wasm_val_t a[1] = {WASM_I32_VAL(args->data[0].of.i32 + 100)};
  wasm_val_t r[1] = {WASM_INIT_VAL};
  wasm_val_vec_t inner_args = WASM_ARRAY_VEC(a);
  wasm_val_vec_t inner_results = WASM_ARRAY_VEC(r);
  wasm_trap_t* trap = wasm_func_call(the_run, &inner_args, &inner_results);
  if (trap) return trap;
  wasm_val_t counter;
  wasm_global_get(the_counter, &counter);
  results->data[0].kind = WASM_I32;
  results->data[0].of.i32 = r[0].of.i32 + counter.of.i32;
  static int one = 1;
  wasm_foreign_t* foreign = wasm_foreign_new(the_store);
  wasm_foreign_set_host_info_with_finalizer(foreign, &one, call_run_finalizer);
  wasm_foreign_delete(foreign);
  printf("foreign released in the callback\n");
  return NULL;
}

static wasm_trap_t* env_callback(void* env, const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  int* counter = env;
  *counter += 1;
  if (args->data[0].of.i64 < 0) {
    wasm_message_t msg;
    wasm_name_new_from_string_nt(&msg, "negative input");
    wasm_trap_t* trap = wasm_trap_new(the_store, &msg);
    wasm_name_delete(&msg);
    return trap;
  }
  results->data[0].kind = WASM_I64;
  results->data[0].of.i64 = args->data[0].of.i64 + 1;
  results->data[1].kind = WASM_F64;
  results->data[1].of.f64 = 0.5;
  return NULL;
}

// Deletes, from inside a call, every handle of the store the call runs in,
// including the function being called: the call still completes.
static wasm_store_t* victim_store;
static wasm_func_t* victim_func;
static wasm_instance_t* victim_instance;
static wasm_module_t* victim_module;
static wasm_trap_t* delete_everything(const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  (void)args;
  (void)results;
  wasm_func_delete(victim_func);
  wasm_instance_delete(victim_instance);
  wasm_module_delete(victim_module);
  wasm_store_delete(victim_store);
  return NULL;
}

static void delete_during_call(wasm_engine_t* engine) {
  victim_store = wasm_store_new(engine);
  victim_module = compile_wat(victim_store,
    "(module (import \"host\" \"drop_all\" (func $drop_all))\n"
    "  (func (export \"go\") (result i32) (call $drop_all) (i32.const 99)))");
  wasm_functype_t* type = wasm_functype_new_0_0();
  wasm_func_t* drop_all = wasm_func_new(victim_store, type, delete_everything);
  wasm_functype_delete(type);
  wasm_extern_t* imported[1] = {wasm_func_as_extern(drop_all)};
  wasm_extern_vec_t imports = WASM_ARRAY_VEC(imported);
  victim_instance = wasm_instance_new(victim_store, victim_module, &imports, NULL);
  wasm_func_delete(drop_all);
  CHECK(victim_instance);
  victim_func = wasm_extern_as_func(carnac_instance_get_export(victim_instance, "go"));
  wasm_val_t r[1] = {WASM_INIT_VAL};
  wasm_val_vec_t none = WASM_EMPTY_VEC, results = WASM_ARRAY_VEC(r);
  CHECK(wasm_func_call(victim_func, &none, &results) == NULL);
  printf("go() after deleting every handle = %d\n", r[0].of.i32);
}

int main(void) {
  wasm_engine_t* engine = wasm_engine_new();
  wasm_store_t* store = wasm_store_new(engine);
  the_store = store;
  wasm_module_t* module = compile_wat(store,
    "(module\n"
    "  (import \"host\" \"hello\" (func $hello (param i32) (result i32)))\n"
    "  (import \"host\" \"pair\" (func $pair (param i64) (result i64 f64)))\n"
    "  (import \"host\" \"reenter\" (func $reenter (param i32) (result i32)))\n"
    "  (func (export \"run\") (param i32) (result i32)\n"
    "    (i32.add (call $hello (local.get 0)) (i32.const 1)))\n"
    "  (global $calls (export \"calls\") (mut i32) (i32.const 0))\n"
    "  (func (export \"pair\") (param i64) (result i64 f64)\n"
    "    (call $pair (local.get 0)))\n"
    "  (func (export \"outer\") (param i32) (result i32)\n"
    "    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))\n"
    "    (call $reenter (local.get 0))))\n");

  wasm_functype_t* hello_type = wasm_functype_new_1_1(wasm_valtype_new_i32(), wasm_valtype_new_i32());
  wasm_func_t* hello = wasm_func_new(store, hello_type, hello_callback);
  wasm_functype_delete(hello_type);

  wasm_valtype_vec_t params, results;
  wasm_valtype_t* ps[1] = {wasm_valtype_new_i64()};
  wasm_valtype_t* rs[2] = {wasm_valtype_new_i64(), wasm_valtype_new_f64()};
  wasm_valtype_vec_new(&params, 1, ps);
  wasm_valtype_vec_new(&results, 2, rs);
  wasm_functype_t* pair_type = wasm_functype_new(&params, &results);
  int* counter = malloc(sizeof(int));
  *counter = 0;
  wasm_func_t* pair = wasm_func_new_with_env(store, pair_type, env_callback, counter, NULL);
  static int weight = 10;
  wasm_func_t* unused = wasm_func_new_with_env(store, pair_type, env_callback, &weight, finalize);
  CHECK(wasm_func_param_arity(pair) == 1 && wasm_func_result_arity(pair) == 2);
  wasm_functype_delete(pair_type);

  wasm_functype_t* reenter_type = wasm_functype_new_1_1(wasm_valtype_new_i32(), wasm_valtype_new_i32());
  wasm_func_t* reenter_func = wasm_func_new(store, reenter_type, reenter);
  wasm_functype_delete(reenter_type);
  wasm_extern_t* externs[3] = {wasm_func_as_extern(hello), wasm_func_as_extern(pair), wasm_func_as_extern(reenter_func)};
  wasm_extern_vec_t imports = WASM_ARRAY_VEC(externs);
  wasm_trap_t* trap = NULL;
  wasm_instance_t* instance = wasm_instance_new(store, module, &imports, &trap);
  CHECK(instance != NULL && trap == NULL);

  wasm_extern_vec_t exports;
  wasm_instance_exports(instance, &exports);
  CHECK(exports.size == 4);
  wasm_func_t* run = export_func(&exports, 0);

  wasm_val_t arg_vals[1] = {WASM_I32_VAL(20)};
  wasm_val_t res_vals[1] = {WASM_INIT_VAL};
  wasm_val_vec_t args = WASM_ARRAY_VEC(arg_vals);
  wasm_val_vec_t res = WASM_ARRAY_VEC(res_vals);
  trap = wasm_func_call(run, &args, &res);
  CHECK(trap == NULL);
  printf("run(20) = %d\n", res_vals[0].of.i32);

  wasm_func_t* pair_export = export_func(&exports, 2);
  wasm_val_t a2[1] = {WASM_I64_VAL(41)};
  wasm_val_t r2[2] = {WASM_INIT_VAL, WASM_INIT_VAL};
  wasm_val_vec_t args2 = WASM_ARRAY_VEC(a2);
  wasm_val_vec_t res2 = WASM_ARRAY_VEC(r2);
  trap = wasm_func_call(pair_export, &args2, &res2);
  CHECK(trap == NULL);
  CHECK(r2[0].kind == WASM_I64 && r2[1].kind == WASM_F64);
  printf("pair(41) = %lld, %.1f\n", (long long)r2[0].of.i64, r2[1].of.f64);

  a2[0].of.i64 = -1;
  trap = wasm_func_call(pair_export, &args2, &res2);
  CHECK(trap != NULL);
  print_trap(trap);
  printf("callback calls: %d\n", *counter);

  // Calling the host function directly from C.
  wasm_val_t a3[1] = {WASM_I32_VAL(5)};
  wasm_val_t r3[1] = {WASM_INIT_VAL};
  wasm_val_vec_t args3 = WASM_ARRAY_VEC(a3);
  wasm_val_vec_t res3 = WASM_ARRAY_VEC(r3);
  CHECK(wasm_func_call(hello, &args3, &res3) == NULL);
  printf("hello(5) = %d\n", r3[0].of.i32);

  // Re-entrance: wasm calls the host, which calls wasm again and reads a global.
  the_run = run;
  the_counter = wasm_extern_as_global(exports.data[1]);
  CHECK(the_counter);
  CHECK(wasm_func_call(export_func(&exports, 3), &args3, &res3) == NULL);
  printf("outer(5) = %d\n", r3[0].of.i32);

  wasm_extern_vec_delete(&exports);
  wasm_instance_delete(instance);
  wasm_func_delete(hello);
  wasm_func_delete(pair);
  wasm_func_delete(unused);
  wasm_func_delete(reenter_func);
  wasm_module_delete(module);
  printf("finalized before store delete: %d\n", finalized);
  wasm_store_delete(store);
  printf("finalized after store delete: %d\n", finalized);
  delete_during_call(engine);
  wasm_engine_delete(engine);
  free(counter);
  return 0;
}
