// Several stores on several threads sharing one engine and one module
// (wasm_module_share / wasm_module_obtain), each with its own host callback
// environment and its own state.
#include <pthread.h>
#include "common.h"

#define THREADS 4
#define CALLS 200

static wasm_engine_t* engine;
static wasm_shared_module_t* shared;

struct job {
  int id;
  int64_t result;
  int callbacks;
};

static wasm_trap_t* add_id(void* env, const wasm_val_vec_t* args, wasm_val_vec_t* results) {
  struct job* job = env;
  job->callbacks++;
  results->data[0].kind = WASM_I64;
  results->data[0].of.i64 = args->data[0].of.i64 + job->id;
  return NULL;
}

static void* run(void* arg) {
  struct job* job = arg;
  wasm_store_t* store = wasm_store_new(engine);
  wasm_module_t* module = wasm_module_obtain(store, shared);
  CHECK(module);
  wasm_functype_t* ft = wasm_functype_new_1_1(wasm_valtype_new_i64(), wasm_valtype_new_i64());
  wasm_func_t* host = wasm_func_new_with_env(store, ft, add_id, job, NULL);
  wasm_functype_delete(ft);
  wasm_extern_t* imports_data[1] = {wasm_func_as_extern(host)};
  wasm_extern_vec_t imports = WASM_ARRAY_VEC(imports_data);
  wasm_instance_t* instance = wasm_instance_new(store, module, &imports, NULL);
  CHECK(instance);
  wasm_extern_vec_t exports;
  wasm_instance_exports(instance, &exports);
  wasm_func_t* step = export_func(&exports, 0);
  for (int i = 0; i < CALLS; i++) {
    wasm_val_t a[1] = {WASM_I64_VAL(i)};
    wasm_val_t r[1] = {WASM_INIT_VAL};
    wasm_val_vec_t args = WASM_ARRAY_VEC(a);
    wasm_val_vec_t res = WASM_ARRAY_VEC(r);
    CHECK(wasm_func_call(step, &args, &res) == NULL);
    job->result = r[0].of.i64;
  }
  wasm_extern_vec_delete(&exports);
  wasm_instance_delete(instance);
  wasm_func_delete(host);
  wasm_module_delete(module);
  wasm_store_delete(store);
  return NULL;
}

int main(void) {
  engine = wasm_engine_new();
  wasm_store_t* store = wasm_store_new(engine);
  wasm_module_t* module = compile_wat(store,
    "(module\n"
    "  (import \"host\" \"add_id\" (func $add_id (param i64) (result i64)))\n"
    "  (global $total (mut i64) (i64.const 0))\n"
    "  (func (export \"step\") (param i64) (result i64)\n"
    "    (global.set $total (i64.add (global.get $total) (call $add_id (local.get 0))))\n"
    "    (global.get $total)))\n");
  shared = wasm_module_share(module);
  wasm_module_delete(module);
  wasm_store_delete(store);

  pthread_t threads[THREADS];
  struct job jobs[THREADS];
  for (int i = 0; i < THREADS; i++) {
    jobs[i] = (struct job){.id = i + 1, .result = 0, .callbacks = 0};
    CHECK(pthread_create(&threads[i], NULL, run, &jobs[i]) == 0);
  }
  for (int i = 0; i < THREADS; i++) CHECK(pthread_join(threads[i], NULL) == 0);
  for (int i = 0; i < THREADS; i++) {
    // sum(0..CALLS) + CALLS * id
    printf("store %d: total %lld after %d callbacks\n", jobs[i].id, (long long)jobs[i].result, jobs[i].callbacks);
  }
  wasm_shared_module_delete(shared);
  wasm_engine_delete(engine);
  return 0;
}
