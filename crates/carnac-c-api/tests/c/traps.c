// Traps: messages, codes, origin and backtrace frames; traps made by the
// host; fuel exhaustion, interruption and stack exhaustion through carnac.h.
#include "common.h"

static const char* WAT =
  "(module\n"
  "  (func $inner (param i32) (result i32) (if (local.get 0) (then unreachable)) (i32.const 0))\n"
  "  (func $middle (param i32) (result i32) (call $inner (local.get 0)))\n"
  "  (func (export \"nested\") (param i32) (result i32) (call $middle (local.get 0)))\n"
  "  (func (export \"div\") (param i32) (result i32) (i32.div_s (i32.const 1) (local.get 0)))\n"
  "  (func (export \"spin\") (param i32) (result i32) (loop $l (br $l)) (i32.const 0))\n"
  "  (func $rec (export \"recurse\") (param i32) (result i32) (call $rec (i32.add (local.get 0) (i32.const 1)))))\n";

int main(void) {
  wasm_config_t* config = wasm_config_new();
  CHECK(carnac_config_strategy(config, CARNAC_STRATEGY_INTERPRETER));
  CHECK(!carnac_config_strategy(config, 77));
  carnac_config_consume_fuel(config, true);
  carnac_config_interruptible(config, true);
  carnac_config_max_call_depth(config, 500);
  wasm_engine_t* engine = wasm_engine_new_with_config(config);
  wasm_store_t* store = wasm_store_new(engine);
  CHECK(carnac_store_set_fuel(store, 1000000) == NULL);
  wasm_module_t* module = compile_wat(store, WAT);
  wasm_instance_t* instance = wasm_instance_new(store, module, NULL, NULL);
  CHECK(instance);
  wasm_extern_vec_t exports;
  wasm_instance_exports(instance, &exports);
  wasm_func_t* nested = export_func(&exports, 0);
  wasm_func_t* div = export_func(&exports, 1);
  wasm_func_t* spin = export_func(&exports, 2);
  wasm_func_t* recurse = export_func(&exports, 3);

  CHECK(call_i32(nested, 0, NULL) == NULL);
  wasm_trap_t* trap = call_i32(nested, 1, NULL);
  CHECK(trap);
  wasm_frame_t* origin = wasm_trap_origin(trap);
  CHECK(origin);
  printf("origin: func %u, instance %p\n", wasm_frame_func_index(origin), (void*)wasm_frame_instance(origin));
  CHECK(wasm_frame_module_offset(origin) > 0);
  wasm_frame_t* origin_copy = wasm_frame_copy(origin);
  CHECK(wasm_frame_func_index(origin_copy) == wasm_frame_func_index(origin));
  wasm_frame_delete(origin_copy);
  wasm_frame_delete(origin);
  wasm_frame_vec_t trace;
  wasm_trap_trace(trap, &trace);
  printf("trace:");
  for (size_t i = 0; i < trace.size; i++) printf(" %u", wasm_frame_func_index(trace.data[i]));
  printf("\n");
  wasm_frame_vec_delete(&trace);
  printf("code %d: ", carnac_trap_code(trap));
  print_trap(trap);

  trap = call_i32(div, 0, NULL);
  printf("code %d: ", carnac_trap_code(trap));
  print_trap(trap);

  // A trap made by the host: its message, no frames.
  wasm_message_t msg;
  wasm_name_new_from_string_nt(&msg, "made by the host");
  trap = wasm_trap_new(store, &msg);
  wasm_name_delete(&msg);
  CHECK(wasm_trap_origin(trap) == NULL);
  wasm_trap_t* copy = wasm_trap_copy(trap);
  CHECK(wasm_trap_same(copy, trap));
  wasm_trap_delete(copy);
  printf("code %d: ", carnac_trap_code(trap));
  print_trap(trap);

  // Stack exhaustion.
  trap = call_i32(recurse, 0, NULL);
  printf("code %d: ", carnac_trap_code(trap));
  print_trap(trap);

  // Fuel: the spinning loop runs until it is gone.
  trap = call_i32(spin, 0, NULL);
  printf("code %d: ", carnac_trap_code(trap));
  print_trap(trap);
  uint64_t fuel = 1;
  CHECK(carnac_store_get_fuel(store, &fuel) == NULL);
  printf("fuel left: %llu\n", (unsigned long long)fuel);

  // Interruption: set before the call, so the loop stops at once.
  CHECK(carnac_store_set_fuel(store, 1000000000) == NULL);
  carnac_interrupt_handle_t* handle = carnac_interrupt_handle_new(store);
  CHECK(handle);
  carnac_interrupt_handle_interrupt(handle);
  trap = call_i32(spin, 0, NULL);
  printf("code %d: ", carnac_trap_code(trap));
  print_trap(trap);
  carnac_store_clear_interrupt(store);
  CHECK(call_i32(nested, 0, NULL) == NULL);
  carnac_interrupt_handle_delete(handle);

  // Epochs: a deadline one tick away, two ticks elapse, the loop stops.
  wasm_config_t* epoch_config = wasm_config_new();
  carnac_config_epoch_interruption(epoch_config, true);
  wasm_engine_t* epoch_engine = wasm_engine_new_with_config(epoch_config);
  wasm_store_t* epoch_store = wasm_store_new(epoch_engine);
  wasm_module_t* epoch_module = compile_wat(epoch_store, WAT);
  wasm_instance_t* epoch_instance = wasm_instance_new(epoch_store, epoch_module, NULL, NULL);
  CHECK(epoch_instance);
  wasm_extern_t* epoch_spin = carnac_instance_get_export(epoch_instance, "spin");
  carnac_store_set_epoch_deadline(epoch_store, 1);
  carnac_engine_increment_epoch(epoch_engine);
  carnac_engine_increment_epoch(epoch_engine);
  trap = call_i32(wasm_extern_as_func(epoch_spin), 0, NULL);
  printf("epoch: code %d: ", carnac_trap_code(trap));
  print_trap(trap);
  wasm_extern_delete(epoch_spin);
  wasm_instance_delete(epoch_instance);
  wasm_module_delete(epoch_module);
  wasm_store_delete(epoch_store);
  wasm_engine_delete(epoch_engine);

  // An engine without fuel refuses fuel settings, with a reason.
  wasm_engine_t* plain = wasm_engine_new();
  wasm_store_t* plain_store = wasm_store_new(plain);
  carnac_error_t* err = carnac_store_set_fuel(plain_store, 10);
  CHECK(err);
  carnac_error_delete(err);
  CHECK(carnac_interrupt_handle_new(plain_store) == NULL);
  wasm_store_delete(plain_store);
  wasm_engine_delete(plain);

  wasm_extern_vec_delete(&exports);
  wasm_instance_delete(instance);
  wasm_module_delete(module);
  wasm_store_delete(store);
  wasm_engine_delete(engine);
  return 0;
}
