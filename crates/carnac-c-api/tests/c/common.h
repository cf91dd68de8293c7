// Helpers shared by the C test programs: compiling text modules, checking
// conditions, printing traps.
#ifndef CARNAC_TEST_COMMON_H
#define CARNAC_TEST_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm.h"
#include "carnac.h"

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      exit(1);                                                             \
    }                                                                      \
  } while (0)

// Compiles WebAssembly text through the standard wasm_module_new.
static inline wasm_module_t* compile_wat(wasm_store_t* store, const char* wat) {
  wasm_byte_vec_t binary;
  carnac_error_t* err = carnac_wat2wasm(wat, strlen(wat), &binary);
  if (err) {
    wasm_name_t msg;
    carnac_error_message(err, &msg);
    fprintf(stderr, "wat2wasm: %.*s\n", (int)msg.size, msg.data);
    wasm_byte_vec_delete(&msg);
    carnac_error_delete(err);
    exit(1);
  }
  wasm_module_t* module = wasm_module_new(store, &binary);
  wasm_byte_vec_delete(&binary);
  CHECK(module != NULL);
  return module;
}

// Calls `f` (i32) -> i32 with `arg`; on success stores the result in `*out`
// (when `out` is not NULL). Returns the trap, if any.
static inline wasm_trap_t* call_i32(wasm_func_t* f, int32_t arg, int32_t* out) {
  wasm_val_t a[1] = {WASM_I32_VAL(arg)};
  wasm_val_t r[1] = {WASM_INIT_VAL};
  wasm_val_vec_t args = WASM_ARRAY_VEC(a);
  wasm_val_vec_t res = WASM_ARRAY_VEC(r);
  wasm_trap_t* trap = wasm_func_call(f, &args, &res);
  if (!trap && out) *out = r[0].of.i32;
  return trap;
}

// Prints "trap: <message>" and deletes the trap.
static inline void print_trap(wasm_trap_t* trap) {
  wasm_message_t msg;
  wasm_trap_message(trap, &msg);
  CHECK(msg.size > 0 && msg.data[msg.size - 1] == '\0');
  printf("trap: %s\n", msg.data);
  wasm_byte_vec_delete(&msg);
  wasm_trap_delete(trap);
}

// Prints "error: <message>" and deletes the error.
static inline void print_error(carnac_error_t* err) {
  wasm_name_t msg;
  carnac_error_message(err, &msg);
  printf("error: %.*s\n", (int)msg.size, msg.data);
  wasm_byte_vec_delete(&msg);
  carnac_error_delete(err);
}

// The export at `index` of an instance's exports (borrowed from `exports`).
static inline wasm_func_t* export_func(const wasm_extern_vec_t* exports, size_t index) {
  CHECK(index < exports->size);
  wasm_func_t* f = wasm_extern_as_func(exports->data[index]);
  CHECK(f != NULL);
  return f;
}

#endif
